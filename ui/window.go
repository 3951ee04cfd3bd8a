// Package ui is Gridlord's window: the grid drawn as a graph, a toolbar and
// a status bar. It only renders what package app describes and forwards the
// user's gestures to it; it holds no grid state of its own.
package ui

import (
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// MainWindow is the Gridlord window.
type MainWindow struct {
	win    fyne.Window
	app    *app.App
	canvas *GridCanvas
	status *widget.Label
	detail *widget.Label
}

// NewMainWindow builds the window for a, without showing it.
func NewMainWindow(fa fyne.App, a *app.App) *MainWindow {
	m := &MainWindow{
		win:    fa.NewWindow("Gridlord"),
		app:    a,
		canvas: NewGridCanvas(),
		status: widget.NewLabel(""),
		detail: widget.NewLabel("Tap a node to see its details; drag it to move it."),
	}
	m.canvas.OnTapNode = m.onTapNode
	m.canvas.OnMoveNode = m.onMoveNode
	toolbar := widget.NewToolbar(
		widget.NewToolbarAction(theme.ViewRefreshIcon(), m.refresh),
		widget.NewToolbarAction(theme.GridIcon(), m.onArrange),
	)
	body := container.NewBorder(toolbar, container.NewVBox(widget.NewSeparator(), m.detail, m.status), nil, nil,
		container.NewScroll(m.canvas))
	m.win.SetContent(body)
	m.win.Resize(fyne.NewSize(900, 560))
	m.refresh()
	return m
}

// Window returns the Fyne window.
func (m *MainWindow) Window() fyne.Window { return m.win }

// Canvas returns the grid canvas, for tests.
func (m *MainWindow) Canvas() *GridCanvas { return m.canvas }

// StatusText returns the status bar text, for tests.
func (m *MainWindow) StatusText() string { return m.status.Text }

// DetailText returns the detail line text, for tests.
func (m *MainWindow) DetailText() string { return m.detail.Text }

// refresh redraws the grid and the status bar from the app.
func (m *MainWindow) refresh() {
	m.canvas.SetView(m.app.Grid())
	m.status.SetText(statusLine(m.app.Venti()))
}

// statusLine is the status bar text for the embedded venti.
func statusLine(v app.VentiStatus) string {
	if v.Err != "" {
		return "venti: " + v.Err
	}
	return fmt.Sprintf("venti %s · %d blocks · %s stored · dedup %.2f×",
		v.Addr, v.Blocks, humanBytes(v.StoredBytes), v.DedupRatio())
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (m *MainWindow) onTapNode(id string) {
	n, ok := m.app.Grid().Node(id)
	if !ok {
		return
	}
	text := fmt.Sprintf("%s: %s, %s", n.Name, n.Kind, n.State)
	if n.IP != "" {
		text += ", " + n.IP
	}
	m.detail.SetText(text)
}

func (m *MainWindow) onMoveNode(id string, pos fyne.Position) {
	if err := m.app.MoveNode(id, pos.X, pos.Y); err != nil {
		dialog.ShowError(err, m.win)
	}
	m.refresh()
}

func (m *MainWindow) onArrange() {
	if err := m.app.Arrange(); err != nil {
		dialog.ShowError(err, m.win)
	}
	m.refresh()
}

// Run shows the window and blocks until it is closed. The status bar is
// refreshed every second while the window is open.
func Run(fa fyne.App, a *app.App) {
	m := NewMainWindow(fa, a)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				v := a.Venti()
				fyne.Do(func() { m.status.SetText(statusLine(v)) })
			}
		}
	}()
	m.win.ShowAndRun()
	close(done)
}
