// Package ui is Gridlord's window: the grid drawn as a graph, a toolbar,
// wizards, console tabs and a status bar. It only renders what package app
// describes and forwards the user's gestures to it; it holds no grid state
// of its own. Work that may block (anything reaching the engine) runs off
// the UI goroutine and comes back through fyne.Do.
package ui

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// MainWindow is the Gridlord window.
type MainWindow struct {
	fa     fyne.App
	win    fyne.Window
	app    *app.App
	ctx    context.Context
	cancel context.CancelFunc

	canvas    *GridCanvas
	scroll    *container.Scroll
	tabs      *container.DocTabs
	toolbar   *fyne.Container
	paneTools *fyne.Container   // the bottom pane's toggles (Console pane, Events)
	shortcuts map[string]func() // the window's shortcuts by name (bind)
	status    *widget.Label
	detail    *widget.Label
	errButton *widget.Button

	palette    []*paletteItem // the node palette, in images.Roles order
	ghost      *canvas.Rectangle
	ghostText  *canvas.Text
	pane       *bottomPane // the docked console and the events, below the tabs
	eventsPane *eventsView
	// eventsCancel ends the event stream followEvents reads (restartEvents).
	eventsMu     sync.Mutex
	eventsCancel context.CancelFunc
	tip          *cardTip
	jobs         *fyne.Container // the long jobs' rows (ops.go), above the status line
	running      []*job          // UI goroutine only

	// UI goroutine only: the last error's title and details (for its
	// Details button), and the node whose description the detail line
	// shows, kept up to date by every refresh ("" when the line shows
	// something else).
	errTitle, errDetails string
	describing           string
	selected             string // the node shortcuts act on

	view     app.GridView // UI goroutine only
	consoles map[string]*consoleTab

	ops       pending     // background operations, for tests
	refreshes atomic.Bool // a refresh is queued
	refreshMu sync.Mutex  // serialises refreshes

	// uiMu serialises updates from background work (m.ui) with each
	// other and with tests. Fyne's real drivers run handlers and fyne.Do
	// callbacks on one goroutine anyway; the test driver runs fyne.Do
	// callbacks on the calling goroutine, so tests drive the window under
	// this lock (locked) to play the part of that one goroutine.
	uiMu sync.Mutex

	mu       sync.Mutex
	lastErr  error      // last error shown, for tests
	lastMenu *fyne.Menu // last popup menu shown, for tests
}

// NewMainWindow builds the window for a, without showing it.
func NewMainWindow(fa fyne.App, a *app.App) *MainWindow {
	ctx, cancel := context.WithCancel(context.Background())
	m := &MainWindow{
		fa:       fa,
		win:      fa.NewWindow("Gridlord"),
		app:      a,
		ctx:      ctx,
		cancel:   cancel,
		canvas:   NewGridCanvas(),
		status:   widget.NewLabel(""),
		detail:   widget.NewLabel("Tap a node to start or stop it; drag its top-right dot onto another node to wire them."),
		consoles: map[string]*consoleTab{},
	}
	m.detail.Truncation = fyne.TextTruncateEllipsis
	m.canvas.OnTapNode = m.onTapNode
	m.canvas.OnDoubleTapNode = m.onDoubleTapNode
	m.canvas.OnNodeMenu = m.onNodeMenu
	m.canvas.OnMoveNode = m.onMoveNode
	m.canvas.OnWire = m.onWire
	m.canvas.CanWire = m.canWire
	m.canvas.OnLinkMenu = m.onLinkMenu
	m.canvas.OnHoverNode = m.onHoverNode
	m.addShortcuts()
	m.toolbar = container.NewHBox(
		tool("New grid", theme.DocumentCreateIcon(), m.onNewGrid),
		tool("Open", theme.FolderOpenIcon(), m.onOpenGrid),
		tool("Add node", theme.ContentAddIcon(), m.onAddNode),
		widget.NewSeparator(),
		tool("Start all", theme.MediaPlayIcon(), m.onStartAll),
		tool("Stop all", theme.MediaStopIcon(), m.onStopAll),
		widget.NewSeparator(),
		tool("Arrange", theme.GridIcon(), m.onArrange),
		tool("Zoom in", theme.ZoomInIcon(), m.onZoomIn),
		tool("Zoom out", theme.ZoomOutIcon(), m.onZoomOut),
		tool("100%", theme.ZoomFitIcon(), m.onZoomReset),
		tool("Refresh", theme.ViewRefreshIcon(), m.refresh),
	)
	// The bottom pane's toggles sit at the right of the status line: the
	// toolbar already takes the width of a 1024-pixel screen.
	m.paneTools = container.NewHBox(
		tool("Console pane", theme.ComputerIcon(), m.onConsolePane),
		tool("Events", theme.ListIcon(), m.onEventsPane),
	)
	m.errButton = widget.NewButtonWithIcon("Details", theme.ErrorIcon(), m.onErrorDetails)
	m.errButton.Importance = widget.LowImportance
	m.errButton.Hide()
	m.scroll = container.NewScroll(m.canvas)
	m.canvas.Viewport = func() (fyne.Position, fyne.Size) { return m.scroll.Offset, m.scroll.Size() }
	m.scroll.OnScrolled = func(fyne.Position) { m.canvas.Refresh() }
	// The palette scrolls when the bottom pane leaves it less height than
	// its items need, rather than making the window taller.
	gridTab := container.NewBorder(nil, nil, container.NewHBox(container.NewVScroll(m.newPalette()), widget.NewSeparator()), nil, m.scroll)
	m.tabs = container.NewDocTabs(container.NewTabItemWithIcon("Grid", theme.GridIcon(), gridTab))
	m.tabs.CloseIntercept = m.onCloseTab
	m.jobs = container.NewVBox()
	bottom := container.NewVBox(widget.NewSeparator(), m.jobs, container.NewBorder(nil, nil, nil, container.NewHBox(m.errButton, m.paneTools), m.detail), m.status)
	body := container.NewBorder(container.NewVBox(m.toolbar, widget.NewSeparator()), bottom, nil, nil, m.newBottomPane(m.tabs))
	m.win.SetContent(container.NewStack(body, m.newGhost()))
	m.win.Resize(fyne.NewSize(960, 600))
	m.win.SetOnClosed(m.cancel)
	m.refreshNow()
	return m
}

// tool is a toolbar button: an icon and a word, so that every action says
// what it does.
func tool(label string, icon fyne.Resource, fn func()) *widget.Button {
	b := widget.NewButtonWithIcon(label, icon, fn)
	b.Importance = widget.LowImportance
	return b
}

// Window returns the Fyne window.
func (m *MainWindow) Window() fyne.Window { return m.win }

// Canvas returns the grid canvas, for tests.
func (m *MainWindow) Canvas() *GridCanvas { return m.canvas }

// StatusText returns the status bar text, for tests.
func (m *MainWindow) StatusText() string { return m.status.Text }

// DetailText returns the detail line text, for tests.
func (m *MainWindow) DetailText() string { return m.detail.Text }

// Wait waits for background operations started so far, for tests.
func (m *MainWindow) Wait() { m.ops.Wait() }

// refreshNow redraws the grid and the status bar from the app, blocking.
func (m *MainWindow) refreshNow() {
	v, err := m.app.View(m.ctx)
	vs := m.app.Venti(m.ctx)
	m.apply(v, vs, err)
}

// apply shows a fetched view (UI goroutine).
func (m *MainWindow) apply(v app.GridView, vs app.VentiStatus, err error) {
	if err != nil {
		m.status.SetText("engine: " + err.Error())
		return
	}
	if m.view.Dir != "" && v.Dir != m.view.Dir {
		m.restartEvents() // another grid: follow its engine's log
	}
	m.view = v
	m.canvas.SetView(v)
	m.eventsPane.setNodes(v)
	if m.tip.node != "" {
		m.showTip()
	}
	m.status.SetText(statusLine(v, vs))
	if n, ok := v.NodeByName(m.describing); ok {
		m.detail.SetText(describe(n))
	}
	for name, ct := range m.consoles {
		if n, ok := v.NodeByName(name); ok {
			ct.setState(n.State, n.PID)
		}
	}
	if d := m.pane.dock; d != nil {
		if n, ok := v.NodeByName(d.name); ok {
			d.setState(n.State, n.PID)
		}
	}
}

// refresh fetches the view in the background and shows it; refreshes
// asked for while one is queued are merged.
func (m *MainWindow) refresh() {
	if m.refreshes.Swap(true) {
		return
	}
	m.ops.Add(1)
	go func() {
		defer m.ops.Done()
		// One fetch at a time, each handed to the UI goroutine (FIFO)
		// before the next begins, so an older view never lands after a
		// newer one.
		m.refreshMu.Lock()
		defer m.refreshMu.Unlock()
		m.refreshes.Store(false)
		v, err := m.app.View(m.ctx)
		vs := m.app.Venti(m.ctx)
		m.ui(func() { m.apply(v, vs, err) })
	}()
}

// statusLine is the status bar text: grid, node counts and venti.
func statusLine(g app.GridView, v app.VentiStatus) string {
	running := 0
	for _, n := range g.Nodes {
		if n.State == "running" {
			running++
		}
	}
	s := fmt.Sprintf("grid %s · %d nodes, %d running · ", g.Name, len(g.Nodes), running)
	if v.Err != "" {
		return s + "venti: " + v.Err
	}
	return s + fmt.Sprintf("venti %s · %d blocks · %s stored · dedup %.2f×",
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

// node returns the node with the given card ID in the current view.
func (m *MainWindow) node(id string) (app.NodeView, bool) { return m.snapshot().Node(id) }

// snapshot returns the current view (UI goroutine).
func (m *MainWindow) snapshot() app.GridView { return m.view }

// ui runs fn on the UI goroutine (fyne.Do), serialised with every other
// update from background work; see uiMu.
func (m *MainWindow) ui(fn func()) {
	fyne.Do(func() {
		m.uiMu.Lock()
		defer m.uiMu.Unlock()
		fn()
	})
}

// locked runs fn as the UI goroutine would, with background updates held
// off: tests drive the window through it.
func (m *MainWindow) locked(fn func()) {
	m.uiMu.Lock()
	defer m.uiMu.Unlock()
	fn()
}

func (m *MainWindow) onTapNode(id string) {
	n, ok := m.node(id)
	if !ok {
		return
	}
	m.selectNode(n)
	if n.Embedded {
		return // the embedded venti runs with the engine
	}
	m.do("start or stop "+n.Name, func(ctx context.Context) error {
		_, err := m.app.Toggle(ctx, n.Name)
		return err
	})
}

// describe is the detail line's text for a node: what it is and its
// state, kept current while it is the node last tapped.
func describe(n app.NodeView) string {
	text := fmt.Sprintf("%s: %s, %s", n.Name, n.Kind, n.State)
	if n.Pending {
		text += " (restart it to apply its new configuration)"
	}
	if n.IP != "" {
		text += ", " + n.IP
	}
	if n.Measured {
		text += " · " + figures(n)
	}
	for _, p := range n.Problems {
		text += " — " + p
	}
	return text
}

// selectNode makes n the node the shortcuts act on, outlines its card and
// describes it on the detail line.
func (m *MainWindow) selectNode(n app.NodeView) {
	m.selected = n.Name
	m.canvas.SetSelected(n.ID)
	m.say(describe(n))
	m.describing = n.Name
	m.dockFollow()
}

func (m *MainWindow) onDoubleTapNode(id string) {
	if n, ok := m.node(id); ok && !n.Embedded {
		m.selectNode(n)
		m.openConsole(n.Name)
	}
}

func (m *MainWindow) onMoveNode(id string, pos fyne.Position) {
	n, ok := m.node(id)
	if !ok {
		return
	}
	m.do("move "+n.Name, func(ctx context.Context) error { return m.app.Move(ctx, n.Name, pos.X, pos.Y) })
}

func (m *MainWindow) canWire(fromID, toID string) error {
	from, ok1 := m.node(fromID)
	to, ok2 := m.node(toID)
	if !ok1 || !ok2 {
		return fmt.Errorf("no such node")
	}
	return m.app.CanWire(m.ctx, from.Name, to.Name)
}

func (m *MainWindow) onWire(fromID, toID string) {
	from, ok1 := m.node(fromID)
	to, ok2 := m.node(toID)
	if !ok1 || !ok2 {
		return
	}
	m.do(fmt.Sprintf("wire %s to %s", from.Name, to.Name), func(ctx context.Context) error {
		plan, err := m.app.Wire(ctx, from.Name, to.Name)
		if err != nil {
			return err
		}
		text := fmt.Sprintf("Wired %s to %s.", from.Name, to.Name)
		if plan.Replaces != "" {
			text = fmt.Sprintf("%s: its %s link now goes to %s instead of %s.", from.Name, plan.Kind, to.Name, plan.Replaces)
		}
		if from.Up() {
			text += " It keeps its old configuration until it restarts."
		}
		m.ui(func() { m.say(text) })
		return nil
	})
}

func (m *MainWindow) onLinkMenu(l app.LinkView, at fyne.Position) {
	from, ok1 := m.node(l.From)
	to, ok2 := m.node(l.To)
	if !ok1 || !ok2 {
		return
	}
	m.popup(fyne.NewMenu("",
		fyne.NewMenuItem(fmt.Sprintf("Unwire %s → %s (%s)", from.Name, to.Name, l.Kind), func() {
			m.do("unwire", func(ctx context.Context) error { return m.app.Unwire(ctx, from.Name, to.Name) })
		}),
	), at)
}

func (m *MainWindow) onArrange() {
	m.do("arrange", m.app.Arrange)
}

func (m *MainWindow) onStartAll() { m.do("start all", m.app.UpAll) }
func (m *MainWindow) onStopAll()  { m.do("stop all", m.app.DownAll) }

func (m *MainWindow) onZoomIn()    { m.canvas.SetZoom(m.canvas.Zoom() * 1.25) }
func (m *MainWindow) onZoomOut()   { m.canvas.SetZoom(m.canvas.Zoom() / 1.25) }
func (m *MainWindow) onZoomReset() { m.canvas.SetZoom(1) }

// onCloseTab closes console tabs; the grid tab stays.
func (m *MainWindow) onCloseTab(t *container.TabItem) {
	for name, ct := range m.consoles {
		if ct.tab == t {
			ct.close()
			delete(m.consoles, name)
			m.tabs.Remove(t)
			return
		}
	}
}

// popup shows a menu at an absolute position.
func (m *MainWindow) popup(menu *fyne.Menu, at fyne.Position) {
	m.mu.Lock()
	m.lastMenu = menu
	m.mu.Unlock()
	widget.ShowPopUpMenuAtPosition(menu, m.win.Canvas(), at)
}

// LastMenu returns the last popup menu shown, for tests.
func (m *MainWindow) LastMenu() *fyne.Menu {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastMenu
}

// Watch redraws the grid at every change the engine reports, and follows
// the engine's event log in the events pane, until the window closes.
func (m *MainWindow) Watch() {
	go m.app.Watch(m.ctx, m.refresh)
	go m.followEvents()
}

// Close stops the window's background work and closes the window.
func (m *MainWindow) Close() { m.cancel(); m.win.Close() }

// Run shows the window and blocks until it is closed. The grid is redrawn
// whenever the engine reports a change; the venti statistics, which change
// without events, are re-read every 5 seconds.
func Run(fa fyne.App, a *app.App) {
	m := NewMainWindow(fa, a)
	m.Watch()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
				m.refresh()
			}
		}
	}()
	m.win.ShowAndRun()
	m.cancel()
}
