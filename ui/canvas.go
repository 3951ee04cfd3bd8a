package ui

import (
	"image/color"
	"math"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// nodeSize is the size of a node card on the canvas at zoom 1.
var nodeSize = fyne.NewSize(170, 64)

// Zoom limits.
const (
	minZoom = 0.4
	maxZoom = 2.5
)

// GridCanvas draws a grid as a graph: a card per node, an arrow per link
// (cpu → fossil → venti, cpu → auth) with a knob in its middle. It reports
// gestures through its callbacks and never changes the grid itself.
type GridCanvas struct {
	widget.BaseWidget

	view     app.GridView
	selected string // the outlined card's node ID
	cards    map[string]*nodeCard
	links    []*linkView
	zoom     float32

	rubber *canvas.Line

	// Viewport returns the visible part of the canvas (scroll offset and
	// size); only what intersects it is drawn. nil draws everything.
	Viewport func() (fyne.Position, fyne.Size)

	// OnTapNode is called when a node card is tapped.
	OnTapNode func(id string)
	// OnDoubleTapNode is called when a node card is double-tapped.
	OnDoubleTapNode func(id string)
	// OnNodeMenu is called on a secondary tap of a card, at an absolute
	// position.
	OnNodeMenu func(id string, at fyne.Position)
	// OnMoveNode is called when a card has been dragged to a new place
	// (in canvas units, zoom undone).
	OnMoveNode func(id string, pos fyne.Position)
	// OnWire is called when a card's link handle is dropped on another
	// card.
	OnWire func(fromID, toID string)
	// CanWire says, while the user drags, whether a drop would be
	// accepted (nil: always shown as acceptable).
	CanWire func(fromID, toID string) error
	// OnLinkMenu is called when a link's knob is tapped.
	OnLinkMenu func(l app.LinkView, at fyne.Position)
}

// NewGridCanvas returns an empty canvas.
func NewGridCanvas() *GridCanvas {
	c := &GridCanvas{cards: map[string]*nodeCard{}, zoom: 1, rubber: canvas.NewLine(okColour)}
	c.rubber.StrokeWidth = 2
	c.rubber.Hide()
	c.ExtendBaseWidget(c)
	return c
}

// SetView replaces what the canvas shows. Call it on the UI goroutine.
func (c *GridCanvas) SetView(v app.GridView) {
	c.view = v
	seen := make(map[string]bool, len(v.Nodes))
	for _, n := range v.Nodes {
		seen[n.ID] = true
		card, ok := c.cards[n.ID]
		if !ok {
			card = newNodeCard(c, n.ID)
			c.cards[n.ID] = card
		}
		card.set(n, c.zoom)
		card.setSelected(n.ID == c.selected)
	}
	for id := range c.cards {
		if !seen[id] {
			delete(c.cards, id)
		}
	}
	c.links = c.links[:0]
	for _, l := range v.Links {
		c.links = append(c.links, newLinkView(c, l))
	}
	c.Refresh()
}

// SetSelected outlines the card of node id (and no other).
func (c *GridCanvas) SetSelected(id string) {
	c.selected = id
	for cid, card := range c.cards {
		card.setSelected(cid == id)
	}
}

// Zoom returns the zoom factor.
func (c *GridCanvas) Zoom() float32 { return c.zoom }

// SetZoom sets the zoom factor (clamped to 0.4–2.5) and redraws.
func (c *GridCanvas) SetZoom(z float32) {
	c.zoom = float32(math.Max(minZoom, math.Min(maxZoom, float64(z))))
	c.SetView(c.view)
}

// Card returns the card drawn for a node, for tests.
func (c *GridCanvas) Card(id string) fyne.CanvasObject {
	if card, ok := c.cards[id]; ok {
		return card
	}
	return nil
}

// cardAt returns the card under p (canvas coordinates), topmost first.
func (c *GridCanvas) cardAt(p fyne.Position) *nodeCard {
	for i := len(c.view.Nodes) - 1; i >= 0; i-- {
		card := c.cards[c.view.Nodes[i].ID]
		if card == nil {
			continue
		}
		q, s := card.Position(), card.Size()
		if p.X >= q.X && p.Y >= q.Y && p.X < q.X+s.Width && p.Y < q.Y+s.Height {
			return card
		}
	}
	return nil
}

var (
	okColour  = color.NRGBA{0x60, 0xd0, 0x80, 0xff}
	badColour = color.NRGBA{0xe0, 0x40, 0x40, 0xff}
)

// showRubber draws the wiring rubber band from a handle to the pointer, red
// over a card that cannot be wired.
func (c *GridCanvas) showRubber(fromID string, from, to fyne.Position) {
	c.rubber.Position1, c.rubber.Position2 = from, to
	c.rubber.StrokeColor = okColour
	if t := c.cardAt(to); t != nil && t.id != fromID && c.CanWire != nil && c.CanWire(fromID, t.id) != nil {
		c.rubber.StrokeColor = badColour
	}
	c.rubber.Show()
	c.rubber.Refresh()
}

func (c *GridCanvas) hideRubber() { c.rubber.Hide(); c.rubber.Refresh() }

// relayoutLinks moves (and re-clips) the arrows after a card moved.
func (c *GridCanvas) relayoutLinks() { c.Refresh() }

// MinSize is large enough to show every node.
func (c *GridCanvas) MinSize() fyne.Size {
	s := fyne.NewSize(400, 300)
	for _, card := range c.cards {
		p, cs := card.Position(), card.Size()
		s = s.Max(fyne.NewSize(p.X+cs.Width+20, p.Y+cs.Height+20))
	}
	return s
}

// CreateRenderer implements fyne.Widget.
func (c *GridCanvas) CreateRenderer() fyne.WidgetRenderer {
	r := &canvasRenderer{c: c, bg: canvas.NewRectangle(color.NRGBA{0x1b, 0x1e, 0x24, 0xff})}
	r.rebuild()
	return r
}

type canvasRenderer struct {
	c       *GridCanvas
	bg      *canvas.Rectangle
	objects []fyne.CanvasObject
}

// rebuild stacks background, links, cards and the rubber band, leaving out
// what lies outside the viewport and clipping links to it: a 200-node grid
// is mostly off screen, and painting only what shows keeps refreshes and
// drags smooth.
func (r *canvasRenderer) rebuild() {
	clip := func(a, b fyne.Position) (fyne.Position, fyne.Position, bool) { return a, b, true }
	visible := func(fyne.Position, fyne.Position) bool { return true }
	if off, size := r.viewport(); !size.IsZero() {
		// Half a viewport of margin on every side keeps what a scroll or a
		// window resize uncovers drawn until the next rebuild.
		mx, my := size.Width/2, size.Height/2
		x0, y0 := off.X-mx, off.Y-my
		x1, y1 := off.X+size.Width+mx, off.Y+size.Height+my
		visible = func(a, b fyne.Position) bool {
			return max(a.X, b.X) >= x0 && min(a.X, b.X) <= x1 && max(a.Y, b.Y) >= y0 && min(a.Y, b.Y) <= y1
		}
		clip = func(a, b fyne.Position) (fyne.Position, fyne.Position, bool) {
			return clipLine(a, b, x0, y0, x1, y1)
		}
	}
	objs := make([]fyne.CanvasObject, 0, 2+4*len(r.c.links)+len(r.c.cards))
	objs = append(objs, r.bg)
	for _, l := range r.c.links {
		l.layout()
		a, b, ok := clip(l.line.Position1, l.line.Position2)
		if !ok {
			continue
		}
		if a != l.line.Position1 || b != l.line.Position2 {
			l.line.Position1, l.line.Position2 = a, b
			l.line.Refresh()
		}
		objs = append(objs, l.line)
		if visible(l.head1.Position1, l.head1.Position1) {
			objs = append(objs, l.head1, l.head2)
		}
		if k := l.knob.Position(); visible(k, k) {
			objs = append(objs, l.knob)
		}
	}
	for _, n := range r.c.view.Nodes {
		if card, ok := r.c.cards[n.ID]; ok {
			p, s := card.Position(), card.Size()
			if visible(p, p.Add(fyne.NewPos(s.Width, s.Height))) {
				objs = append(objs, card)
			}
		}
	}
	r.objects = append(objs, r.c.rubber)
}

// clipLine clips the segment a–b to the rectangle x0,y0–x1,y1
// (Liang–Barsky); ok is false when nothing of it is inside.
func clipLine(a, b fyne.Position, x0, y0, x1, y1 float32) (fyne.Position, fyne.Position, bool) {
	dx, dy := b.X-a.X, b.Y-a.Y
	t0, t1 := float32(0), float32(1)
	for _, e := range [4][2]float32{{-dx, a.X - x0}, {dx, x1 - a.X}, {-dy, a.Y - y0}, {dy, y1 - a.Y}} {
		p, q := e[0], e[1]
		if p == 0 {
			if q < 0 {
				return a, b, false
			}
			continue
		}
		t := q / p
		if p < 0 {
			t0 = max(t0, t)
		} else {
			t1 = min(t1, t)
		}
		if t0 > t1 {
			return a, b, false
		}
	}
	return fyne.NewPos(a.X+t0*dx, a.Y+t0*dy), fyne.NewPos(a.X+t1*dx, a.Y+t1*dy), true
}

// viewport is the visible area, zero when unknown (not laid out yet).
func (r *canvasRenderer) viewport() (fyne.Position, fyne.Size) {
	if r.c.Viewport == nil {
		return fyne.Position{}, fyne.Size{}
	}
	off, size := r.c.Viewport()
	if size.Width < 1 || size.Height < 1 {
		return fyne.Position{}, fyne.Size{}
	}
	return off, size
}

func (r *canvasRenderer) Layout(s fyne.Size)           { r.bg.Resize(s); r.rebuild() }
func (r *canvasRenderer) MinSize() fyne.Size           { return r.c.MinSize() }
func (r *canvasRenderer) Objects() []fyne.CanvasObject { return r.objects }
func (r *canvasRenderer) Destroy()                     {}
func (r *canvasRenderer) Refresh() {
	r.Layout(r.c.Size())
	canvas.Refresh(r.bg)
}

var linkColour = color.NRGBA{0x9a, 0xa4, 0xb5, 0xff}

// linkView is one drawn link: a line, a two-stroke arrowhead at the target
// and a knob at the middle that opens the link's menu.
type linkView struct {
	c            *GridCanvas
	l            app.LinkView
	line         *canvas.Line
	head1, head2 *canvas.Line
	knob         *linkKnob
}

func newLinkView(c *GridCanvas, l app.LinkView) *linkView {
	mk := func() *canvas.Line { ln := canvas.NewLine(linkColour); ln.StrokeWidth = 2; return ln }
	v := &linkView{c: c, l: l, line: mk(), head1: mk(), head2: mk()}
	v.knob = newLinkKnob(v)
	return v
}

// layout draws the link between its cards' current places, clipped to the
// card edges.
func (v *linkView) layout() {
	from, ok1 := v.c.cards[v.l.From]
	to, ok2 := v.c.cards[v.l.To]
	if !ok1 || !ok2 {
		return
	}
	size := from.Size()
	half := fyne.NewPos(size.Width/2, size.Height/2)
	a, b := from.Position().Add(half), to.Position().Add(half)
	dx, dy := float64(b.X-a.X), float64(b.Y-a.Y)
	length := math.Hypot(dx, dy)
	if length < 1 {
		return
	}
	ux, uy := dx/length, dy/length
	tx, ty := math.Inf(1), math.Inf(1)
	if ux != 0 {
		tx = float64(half.X) / math.Abs(ux)
	}
	if uy != 0 {
		ty = float64(half.Y) / math.Abs(uy)
	}
	d := math.Min(tx, ty)
	start := fyne.NewPos(a.X+float32(ux*d), a.Y+float32(uy*d))
	end := fyne.NewPos(b.X-float32(ux*d), b.Y-float32(uy*d))
	v.line.Position1, v.line.Position2 = start, end
	for i, head := range []*canvas.Line{v.head1, v.head2} {
		side := float64(2*i - 1)
		ang := math.Atan2(uy, ux) + math.Pi + side*math.Pi/6
		head.Position1 = end
		head.Position2 = fyne.NewPos(end.X+float32(10*math.Cos(ang)), end.Y+float32(10*math.Sin(ang)))
	}
	mid := fyne.NewPos((start.X+end.X)/2, (start.Y+end.Y)/2)
	v.knob.Resize(fyne.NewSize(knobSize, knobSize))
	v.knob.Move(mid.Subtract(fyne.NewPos(knobSize/2, knobSize/2)))
	for _, o := range []fyne.CanvasObject{v.line, v.head1, v.head2} {
		o.Refresh()
	}
}

const knobSize = 12

// linkKnob is the tappable dot in the middle of a link.
type linkKnob struct {
	widget.BaseWidget
	v   *linkView
	dot *canvas.Circle
}

func newLinkKnob(v *linkView) *linkKnob {
	k := &linkKnob{v: v, dot: canvas.NewCircle(linkColour)}
	k.ExtendBaseWidget(k)
	return k
}

// Tapped implements fyne.Tappable.
func (k *linkKnob) Tapped(ev *fyne.PointEvent) { k.menu(ev) }

// TappedSecondary implements fyne.SecondaryTappable.
func (k *linkKnob) TappedSecondary(ev *fyne.PointEvent) { k.menu(ev) }

func (k *linkKnob) menu(ev *fyne.PointEvent) {
	if k.v.c.OnLinkMenu != nil {
		k.v.c.OnLinkMenu(k.v.l, ev.AbsolutePosition)
	}
}

// CreateRenderer implements fyne.Widget.
func (k *linkKnob) CreateRenderer() fyne.WidgetRenderer { return widget.NewSimpleRenderer(k.dot) }
