package ui

import (
	"image/color"
	"math"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// nodeSize is the size of a node card on the canvas.
var nodeSize = fyne.NewSize(150, 64)

// GridCanvas draws a grid as a graph: a card per node, an arrow per link.
// Node cards can be tapped and dragged; the canvas reports both through its
// callbacks and never changes the grid itself.
type GridCanvas struct {
	widget.BaseWidget

	view  app.GridView
	cards map[string]*nodeCard

	// OnTapNode is called when a node card is tapped.
	OnTapNode func(id string)
	// OnMoveNode is called when a node card has been dragged to a new place.
	OnMoveNode func(id string, pos fyne.Position)
}

// NewGridCanvas returns an empty canvas.
func NewGridCanvas() *GridCanvas {
	c := &GridCanvas{cards: map[string]*nodeCard{}}
	c.ExtendBaseWidget(c)
	return c
}

// SetView replaces what the canvas shows. Call it on the UI goroutine.
func (c *GridCanvas) SetView(v app.GridView) {
	c.view = v
	seen := map[string]bool{}
	for _, n := range v.Nodes {
		seen[n.ID] = true
		card, ok := c.cards[n.ID]
		if !ok {
			card = newNodeCard(c, n.ID)
			c.cards[n.ID] = card
		}
		card.set(n)
	}
	for id := range c.cards {
		if !seen[id] {
			delete(c.cards, id)
		}
	}
	c.Refresh()
}

// Card returns the card drawn for a node, for tests.
func (c *GridCanvas) Card(id string) fyne.CanvasObject {
	if card, ok := c.cards[id]; ok {
		return card
	}
	return nil
}

// MinSize is large enough to show every node.
func (c *GridCanvas) MinSize() fyne.Size {
	s := fyne.NewSize(400, 300)
	for _, card := range c.cards {
		p := card.Position()
		s = s.Max(fyne.NewSize(p.X+nodeSize.Width+20, p.Y+nodeSize.Height+20))
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

// rebuild lays out links (under) and cards (over) from the current view.
func (r *canvasRenderer) rebuild() {
	objs := []fyne.CanvasObject{r.bg}
	for _, l := range r.c.view.Links {
		from, ok1 := r.c.cards[l.From]
		to, ok2 := r.c.cards[l.To]
		if !ok1 || !ok2 {
			continue
		}
		objs = append(objs, arrow(from.Position(), to.Position())...)
	}
	for _, n := range r.c.view.Nodes {
		if card, ok := r.c.cards[n.ID]; ok {
			card.Resize(nodeSize)
			objs = append(objs, card)
		}
	}
	r.objects = objs
}

func (r *canvasRenderer) Layout(s fyne.Size)           { r.bg.Resize(s); r.rebuild() }
func (r *canvasRenderer) MinSize() fyne.Size           { return r.c.MinSize() }
func (r *canvasRenderer) Refresh()                     { r.rebuild(); r.bg.Refresh(); r.Layout(r.c.Size()) }
func (r *canvasRenderer) Objects() []fyne.CanvasObject { return r.objects }
func (r *canvasRenderer) Destroy()                     {}

var linkColour = color.NRGBA{0x9a, 0xa4, 0xb5, 0xff}

// arrow draws a line between two cards' centres, clipped to the card
// edges, with an arrowhead at the target.
func arrow(fromPos, toPos fyne.Position) []fyne.CanvasObject {
	half := fyne.NewPos(nodeSize.Width/2, nodeSize.Height/2)
	a, b := fromPos.Add(half), toPos.Add(half)
	dx, dy := float64(b.X-a.X), float64(b.Y-a.Y)
	length := math.Hypot(dx, dy)
	if length < 1 {
		return nil
	}
	ux, uy := dx/length, dy/length
	// Clip both ends to the card rectangles.
	clip := func(ux, uy float64) float64 {
		tx := math.Inf(1)
		if ux != 0 {
			tx = float64(half.X) / math.Abs(ux)
		}
		ty := math.Inf(1)
		if uy != 0 {
			ty = float64(half.Y) / math.Abs(uy)
		}
		return math.Min(tx, ty)
	}
	d := clip(ux, uy)
	start := fyne.NewPos(a.X+float32(ux*d), a.Y+float32(uy*d))
	end := fyne.NewPos(b.X-float32(ux*d), b.Y-float32(uy*d))
	line := canvas.NewLine(linkColour)
	line.StrokeWidth = 2
	line.Position1, line.Position2 = start, end
	objs := []fyne.CanvasObject{line}
	for _, side := range []float64{-1, 1} {
		// Two 10px strokes at ±30° back from the tip.
		ang := math.Atan2(uy, ux) + math.Pi + side*math.Pi/6
		head := canvas.NewLine(linkColour)
		head.StrokeWidth = 2
		head.Position1 = end
		head.Position2 = fyne.NewPos(end.X+float32(10*math.Cos(ang)), end.Y+float32(10*math.Sin(ang)))
		objs = append(objs, head)
	}
	return objs
}
