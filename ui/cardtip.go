package ui

import (
	"fmt"
	"image/color"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/driver/desktop"

	"gridlord/app"
)

var _ desktop.Hoverable = (*nodeCard)(nil)

// MouseIn implements desktop.Hoverable: the card's tooltip shows.
func (n *nodeCard) MouseIn(ev *desktop.MouseEvent) { n.hover(ev.AbsolutePosition, true) }

// MouseMoved implements desktop.Hoverable: the tooltip follows the pointer.
func (n *nodeCard) MouseMoved(ev *desktop.MouseEvent) { n.hover(ev.AbsolutePosition, true) }

// MouseOut implements desktop.Hoverable: the tooltip goes.
func (n *nodeCard) MouseOut() { n.hover(fyne.Position{}, false) }

func (n *nodeCard) hover(at fyne.Position, in bool) {
	if n.canvas.OnHoverNode != nil {
		n.canvas.OnHoverNode(n.id, at, in)
	}
}

// cardTip is the tooltip of the card under the pointer: the node's live
// figures (uptime, CPU, memory of its QEMU), kept current by refreshes. It
// is drawn in the layer over the window (not an overlay: it takes no
// clicks, the card under it still gets them).
type cardTip struct {
	bg   *canvas.Rectangle
	text *canvas.Text
	node string // the node ID under the pointer, "" when none
	at   fyne.Position
	gen  int // counts cards entered: a late timer of an older one does nothing
}

func (m *MainWindow) newCardTip() []fyne.CanvasObject {
	t := &cardTip{bg: canvas.NewRectangle(color.NRGBA{0x10, 0x12, 0x16, 0xf0}), text: canvas.NewText("", color.NRGBA{0xf0, 0xf0, 0xf0, 0xff})}
	t.bg.CornerRadius = 4
	t.bg.StrokeColor = color.NRGBA{0x70, 0x78, 0x88, 0xff}
	t.bg.StrokeWidth = 1
	t.text.TextSize = 12
	t.bg.Hide()
	t.text.Hide()
	m.tip = t
	return []fyne.CanvasObject{t.bg, t.text}
}

// onHoverNode shows, moves or hides the tooltip of card id.
func (m *MainWindow) onHoverNode(id string, at fyne.Position, in bool) {
	t := m.tip
	if !in {
		if t.node == id {
			t.node = ""
			t.gen++
			t.bg.Hide()
			t.text.Hide()
		}
		return
	}
	if t.node == id {
		t.at = at
		if t.bg.Visible() {
			m.showTip()
		}
		return
	}
	// A new card: the tooltip shows after tipDelay of hovering it.
	t.node, t.at = id, at
	t.gen++
	t.bg.Hide()
	t.text.Hide()
	gen := t.gen
	time.AfterFunc(tipDelay, func() {
		m.ui(func() {
			if t.gen == gen && t.node == id {
				m.showTip()
			}
		})
	})
}

// tipDelay is how long the pointer rests on a card before its tooltip shows.
var tipDelay = 500 * time.Millisecond

// showTip draws the tooltip for t.node from the current view, below and
// right of the pointer, kept inside the window.
func (m *MainWindow) showTip() {
	t := m.tip
	n, ok := m.node(t.node)
	if !ok {
		t.node = ""
		t.bg.Hide()
		t.text.Hide()
		return
	}
	t.text.Text = figuresLine(n)
	ts := t.text.MinSize()
	size := fyne.NewSize(ts.Width+12, ts.Height+8)
	pos := t.at.Add(fyne.NewPos(14, 18))
	if ws := m.win.Canvas().Size(); ws.Width > 0 {
		pos.X = max(0, min(pos.X, ws.Width-size.Width))
		pos.Y = max(0, min(pos.Y, ws.Height-size.Height))
	}
	t.bg.Resize(size)
	t.bg.Move(pos)
	t.text.Move(pos.Add(fyne.NewPos(6, 4)))
	t.bg.Show()
	t.text.Show()
	t.bg.Refresh()
	t.text.Refresh()
}

// TipText is the tooltip's text, "" when hidden, for tests.
func (m *MainWindow) TipText() string {
	if m.tip.node == "" || !m.tip.text.Visible() {
		return ""
	}
	return m.tip.text.Text
}

// figuresLine is a node's name, state and, while its VM runs, the live
// figures of its QEMU process.
func figuresLine(n app.NodeView) string {
	s := n.Name + " · " + n.State
	switch {
	case n.Embedded:
		return s + " · the embedded venti (runs in the engine)"
	case n.Measured:
		return s + " · " + figures(n)
	case n.Up():
		return s + " · figures unknown"
	}
	return s
}

// figures is "up 2m05s · CPU 3.5% · RSS 288.0 MiB".
func figures(n app.NodeView) string {
	return fmt.Sprintf("up %s · CPU %.1f%% · RSS %s", humanDuration(n.Uptime), n.CPU, humanBytes(n.RSS))
}

// humanDuration is d in its two largest units: 45s, 2m05s, 3h07m, 2d04h.
func humanDuration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}
