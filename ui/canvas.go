package ui

import (
	"image"
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

	// dragged is the card being dragged, nil between drags; gen counts
	// the changes of view, selection and zoom, which redraw the rasters
	// a drag draws the rest of the canvas from (canvas_cache.go).
	dragged *nodeCard
	gen     int
	rasters map[string]*cardRaster

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
	// OnHoverNode is called when the pointer enters or moves over a card
	// (in, at an absolute position) and when it leaves it (see cardtip.go).
	OnHoverNode func(id string, at fyne.Position, in bool)
}

// NewGridCanvas returns an empty canvas.
func NewGridCanvas() *GridCanvas {
	c := &GridCanvas{cards: map[string]*nodeCard{}, zoom: 1, rubber: canvas.NewLine(okColour), rasters: map[string]*cardRaster{}}
	c.rubber.StrokeWidth = 2
	c.rubber.Hide()
	c.ExtendBaseWidget(c)
	return c
}

// SetView replaces what the canvas shows. Call it on the UI goroutine.
func (c *GridCanvas) SetView(v app.GridView) {
	c.view = v
	c.gen++
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
			delete(c.rasters, id)
		}
	}
	// The links drawn before are kept (with their line pieces and knob)
	// for the links still there.
	old := make(map[app.LinkView]*linkView, len(c.links))
	for _, l := range c.links {
		old[l.l] = l
	}
	c.links = c.links[:0]
	for _, l := range v.Links {
		lv, ok := old[l]
		if !ok {
			lv = newLinkView(c, l)
		}
		c.links = append(c.links, lv)
	}
	c.Refresh()
}

// SetSelected outlines the card of node id (and no other).
func (c *GridCanvas) SetSelected(id string) {
	c.selected = id
	c.gen++
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

// dragStep redraws after card n moved under the pointer: from the first
// step of a drag to its end, the cards and links that do not move are drawn
// from rasters (canvas_cache.go).
func (c *GridCanvas) dragStep(n *nodeCard) {
	c.dragged = n
	c.Refresh()
}

// endDrag draws everything live again after a drag.
func (c *GridCanvas) endDrag() {
	if c.dragged != nil {
		c.dragged = nil
		c.Refresh()
	}
}

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
	r := &canvasRenderer{c: c, bg: &canvas.Image{ScaleMode: canvas.ImageScaleFastest},
		layer: &canvas.Image{ScaleMode: canvas.ImageScaleFastest}, cardImgs: map[string]*canvas.Image{}}
	r.rebuild()
	return r
}

// canvasBackground is the colour behind the cards and links.
var canvasBackground = color.NRGBA{0x1b, 0x1e, 0x24, 0xff}

type canvasRenderer struct {
	c *GridCanvas
	// bg is the background: an opaque image of the visible part of the
	// canvas (not a rectangle: the software painter blends a uniform
	// colour pixel by pixel through the colour interface, more than twice
	// as slow as an image).
	bg      *canvas.Image
	bgPix   *image.NRGBA
	objects []fyne.CanvasObject

	// During a drag (canvas_cache.go): the background and the links that
	// do not move, and an image per card that does not move.
	layer    *canvas.Image
	layerPix *image.RGBA
	layerKey dragLayerKey
	cardImgs map[string]*canvas.Image
}

// cullMargin is how far outside the viewport cards and links are still
// drawn; every scroll and resize rebuilds the drawn set.
const cullMargin = 16

// rebuild stacks background, links, cards and the rubber band, leaving out
// what lies outside the viewport and clipping links to it: a 200-node grid
// is mostly off screen, and painting only what shows keeps refreshes and
// drags smooth.
func (r *canvasRenderer) rebuild() {
	// Without a viewport everything is drawn.
	const far = 1e9
	x0, y0, x1, y1 := float32(-far), float32(-far), float32(far), float32(far)
	if off, size := r.viewport(); !size.IsZero() {
		if r.c.dragged != nil {
			r.rebuildDragging(off, size)
			return
		}
		r.layoutBackground(off, size)
		x0, y0 = off.X-cullMargin, off.Y-cullMargin
		x1, y1 = off.X+size.Width+cullMargin, off.Y+size.Height+cullMargin
	} else {
		r.layoutBackground(fyne.Position{}, r.c.Size())
	}
	visible := func(a, b fyne.Position) bool {
		return max(a.X, b.X) >= x0 && min(a.X, b.X) <= x1 && max(a.Y, b.Y) >= y0 && min(a.Y, b.Y) <= y1
	}
	objs := r.objects[:0]
	objs = append(objs, r.bg)
	for _, l := range r.c.links {
		l.layout()
		if !l.placed {
			continue
		}
		a, b, ok := clipLine(l.start, l.end, x0, y0, x1, y1)
		if !ok {
			continue
		}
		objs = append(objs, l.segment(a, b)...)
		if visible(l.head1.Position1, l.head1.Position1) {
			objs = append(objs, l.head1, l.head2)
		}
		if k := l.knob.Position(); visible(k, k.Add(fyne.NewPos(knobSize, knobSize))) {
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

// layoutBackground places the background over the visible part of the
// canvas, in pixels of the canvas showing it.
func (r *canvasRenderer) layoutBackground(pos fyne.Position, size fyne.Size) {
	scale := canvasScale(r.c)
	w, h := int(math.Ceil(float64(size.Width*scale))), int(math.Ceil(float64(size.Height*scale)))
	if w < 1 || h < 1 {
		r.bg.Hide()
		return
	}
	r.bg.Show()
	if r.bgPix == nil || r.bgPix.Rect.Dx() != w || r.bgPix.Rect.Dy() != h {
		r.bgPix = image.NewNRGBA(image.Rect(0, 0, w, h))
		fillOpaque(r.bgPix.Pix, canvasBackground.R, canvasBackground.G, canvasBackground.B)
		r.bg.Image = r.bgPix
		r.bg.Move(pos)
		r.bg.Resize(size)
		r.bg.Refresh()
		return
	}
	r.bg.Move(pos)
	r.bg.Resize(size)
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

func (r *canvasRenderer) Layout(fyne.Size)             { r.rebuild() }
func (r *canvasRenderer) MinSize() fyne.Size           { return r.c.MinSize() }
func (r *canvasRenderer) Objects() []fyne.CanvasObject { return r.objects }
func (r *canvasRenderer) Destroy()                     {}
func (r *canvasRenderer) Refresh() {
	r.rebuild()
	canvas.Refresh(r.bg)
}

var linkColour = color.NRGBA{0x9a, 0xa4, 0xb5, 0xff}

// segmentLength is the longest piece a link's line is drawn in. The
// software painter rasterises and blends a line's whole bounding box, so a
// long diagonal link costs the area it spans; drawn in pieces (which
// overlap by a pixel, so that no seam shows) it costs about its length.
const segmentLength = 32

// linkView is one drawn link: a line, a two-stroke arrowhead at the target
// and a knob at the middle that opens the link's menu.
type linkView struct {
	c            *GridCanvas
	l            app.LinkView
	line         *canvas.Line   // the line's first piece
	segs         []*canvas.Line // the line's pieces (line is segs[0])
	drawn        []fyne.CanvasObject
	head1, head2 *canvas.Line
	knob         *linkKnob

	// start and end are the ends of the line, on the edges of the cards;
	// placed is false when the link has no line (a card is missing, or
	// the cards overlap).
	start, end fyne.Position
	placed     bool
}

func newLinkLine() *canvas.Line {
	ln := canvas.NewLine(linkColour)
	ln.StrokeWidth = 2
	return ln
}

func newLinkView(c *GridCanvas, l app.LinkView) *linkView {
	v := &linkView{c: c, l: l, line: newLinkLine(), head1: newLinkLine(), head2: newLinkLine()}
	v.segs = []*canvas.Line{v.line}
	v.knob = newLinkKnob(v)
	return v
}

// layout places the link between its cards' current places, clipped to
// the card edges.
func (v *linkView) layout() {
	v.placed = false
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
	v.start, v.end, v.placed = start, end, true
	for i, head := range []*canvas.Line{v.head1, v.head2} {
		side := float64(2*i - 1)
		ang := math.Atan2(uy, ux) + math.Pi + side*math.Pi/6
		setLine(head, end, fyne.NewPos(end.X+float32(10*math.Cos(ang)), end.Y+float32(10*math.Sin(ang))))
	}
	mid := fyne.NewPos((start.X+end.X)/2, (start.Y+end.Y)/2)
	v.knob.Resize(fyne.NewSize(knobSize, knobSize))
	v.knob.Move(mid.Subtract(fyne.NewPos(knobSize/2, knobSize/2)))
}

// segment draws the part a–b of the line in pieces of at most
// segmentLength and returns them.
func (v *linkView) segment(a, b fyne.Position) []fyne.CanvasObject {
	dx, dy := b.X-a.X, b.Y-a.Y
	length := float32(math.Hypot(float64(dx), float64(dy)))
	n := max(1, int(math.Ceil(float64(length/segmentLength))))
	for len(v.segs) < n {
		v.segs = append(v.segs, newLinkLine())
	}
	var ox, oy float32 // half a pixel along the line
	if length > 0 {
		ox, oy = dx/length/2, dy/length/2
	}
	v.drawn = v.drawn[:0]
	for i, seg := range v.segs[:n] {
		t0, t1 := float32(i)/float32(n), float32(i+1)/float32(n)
		p := fyne.NewPos(a.X+t0*dx, a.Y+t0*dy)
		q := fyne.NewPos(a.X+t1*dx, a.Y+t1*dy)
		if i > 0 {
			p = p.Subtract(fyne.NewPos(ox, oy))
		}
		if i < n-1 {
			q = q.Add(fyne.NewPos(ox, oy))
		}
		setLine(seg, p, q)
		v.drawn = append(v.drawn, seg)
	}
	return v.drawn
}

// setLine moves a line's ends, refreshing it only if they moved.
func setLine(l *canvas.Line, a, b fyne.Position) {
	if l.Position1 == a && l.Position2 == b {
		return
	}
	l.Position1, l.Position2 = a, b
	l.Refresh()
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
