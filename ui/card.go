package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
	"gridlord/assets"
)

// kindColour is the card colour of each node kind (the icons' colours).
var kindColour = map[string]color.NRGBA{
	"venti":       {0x7b, 0x4f, 0xb8, 0xff},
	"fossil":      {0xb8, 0x86, 0x2f, 0xff},
	"fossil+auth": {0xb8, 0x86, 0x2f, 0xff},
	"cpu":         {0x2f, 0x7f, 0xb8, 0xff},
	"auth":        {0x3c, 0x9a, 0x5f, 0xff},
}

// stateColour is the colour of each state badge.
var stateColour = map[string]color.NRGBA{
	"stopped":  {0x80, 0x80, 0x80, 0xff},
	"starting": {0xe0, 0xc0, 0x30, 0xff},
	"running":  {0x40, 0xd0, 0x60, 0xff},
	"stopping": {0xe0, 0x90, 0x30, 0xff},
	"failed":   {0xe0, 0x40, 0x40, 0xff},
}

// nodeCard is one node on the canvas: icon, name, address, state badge and
// a link handle at its top right corner. Tap toggles the node, double tap opens
// its console, secondary tap its menu; dragging the card moves it,
// dragging the handle onto another card wires the two.
type nodeCard struct {
	widget.BaseWidget
	canvas *GridCanvas
	id     string
	node   app.NodeView

	bg      *canvas.Rectangle
	icon    *canvas.Image
	name    *canvas.Text
	ip      *canvas.Text
	badge   *canvas.Circle
	state   *canvas.Text
	problem *canvas.Text
	handle  *linkHandle

	// look is what the card last showed; set redraws only when it changes.
	look cardLook
	// iconFor is the resource and canvas scale the icon was last
	// rasterised for (scale 0: on no canvas): re-reading an SVG is most
	// of a card's refresh.
	iconFor struct {
		res   fyne.Resource
		scale float32
	}
}

// cardLook is everything set puts on a card.
type cardLook struct {
	kind, name, ip, state, problem string
	badge                          color.NRGBA
	noHandle                       bool
	zoom                           float32
}

func newNodeCard(c *GridCanvas, id string) *nodeCard {
	n := &nodeCard{
		canvas:  c,
		id:      id,
		bg:      canvas.NewRectangle(color.Black),
		icon:    &canvas.Image{FillMode: canvas.ImageFillContain},
		name:    canvas.NewText("", color.White),
		ip:      canvas.NewText("", color.NRGBA{0xee, 0xee, 0xee, 0xff}),
		badge:   canvas.NewCircle(color.White),
		state:   canvas.NewText("", color.White),
		problem: canvas.NewText("", color.NRGBA{0xff, 0xd0, 0x40, 0xff}),
	}
	n.handle = newLinkHandle(n)
	n.bg.CornerRadius = 8
	n.name.TextStyle.Bold = true
	n.problem.TextStyle.Bold = true
	n.ExtendBaseWidget(n)
	return n
}

// set updates the card from the view and moves it to the node's position.
func (n *nodeCard) set(v app.NodeView, zoom float32) {
	if n.node.Kind != v.Kind || n.icon.Resource == nil {
		if svg, err := assets.KindIcon(v.Kind); err == nil {
			n.icon.Resource = fyne.NewStaticResource(v.Kind+".svg", svg)
		}
	}
	n.node = v
	n.bg.FillColor = kindColour[v.Kind]
	n.name.Text = v.Name
	n.ip.Text = v.IP
	n.state.Text = v.State
	if v.Pending {
		n.state.Text += " · pending" // restarting applies the new configuration
	}
	n.badge.FillColor = stateColour[v.State]
	n.problem.Text = ""
	if len(v.Problems) > 0 {
		n.problem.Text = "!"
	}
	n.handle.Hidden = v.Kind == "venti" // nothing is wired from a venti
	n.Move(fyne.NewPos(v.X*zoom, v.Y*zoom))
	n.Resize(fyne.NewSize(nodeSize.Width*zoom, nodeSize.Height*zoom))
	look := cardLook{kind: v.Kind, name: n.name.Text, ip: n.ip.Text, state: n.state.Text, problem: n.problem.Text,
		badge: n.badge.FillColor.(color.NRGBA), noHandle: n.handle.Hidden, zoom: zoom}
	// Until its icon was rasterised on a canvas (at that canvas's scale,
	// not a guess), every set refreshes the card.
	if look != n.look || n.icon.Resource != n.iconFor.res || n.iconFor.scale == 0 {
		n.look = look
		n.Refresh()
	}
}

// setSelected outlines the card when it is the selected node.
func (n *nodeCard) setSelected(on bool) {
	w := float32(0)
	if on {
		w = 2
	}
	if n.bg.StrokeWidth != w {
		n.bg.StrokeColor = selectedColour
		n.bg.StrokeWidth = w
		n.bg.Refresh()
	}
}

// selectedColour outlines the selected card.
var selectedColour = color.NRGBA{0xf0, 0xf0, 0xf0, 0xff}

// State is the text of the card's state badge, for tests.
func (n *nodeCard) State() string { return n.state.Text }

// Tapped implements fyne.Tappable.
func (n *nodeCard) Tapped(*fyne.PointEvent) {
	if n.canvas.OnTapNode != nil {
		n.canvas.OnTapNode(n.id)
	}
}

// DoubleTapped implements fyne.DoubleTappable.
func (n *nodeCard) DoubleTapped(*fyne.PointEvent) {
	if n.canvas.OnDoubleTapNode != nil {
		n.canvas.OnDoubleTapNode(n.id)
	}
}

// TappedSecondary implements fyne.SecondaryTappable.
func (n *nodeCard) TappedSecondary(ev *fyne.PointEvent) {
	if n.canvas.OnNodeMenu != nil {
		n.canvas.OnNodeMenu(n.id, ev.AbsolutePosition)
	}
}

// Dragged implements fyne.Draggable: the card follows the pointer.
func (n *nodeCard) Dragged(ev *fyne.DragEvent) {
	p := n.Position().Add(ev.Dragged)
	n.Move(fyne.NewPos(max(p.X, 0), max(p.Y, 0)))
	n.canvas.dragStep(n)
}

// DragEnd implements fyne.Draggable: the new position is reported in
// canvas units.
func (n *nodeCard) DragEnd() {
	n.canvas.endDrag()
	if n.canvas.OnMoveNode != nil {
		z := n.canvas.zoom
		n.canvas.OnMoveNode(n.id, fyne.NewPos(n.Position().X/z, n.Position().Y/z))
	}
}

// CreateRenderer implements fyne.Widget.
func (n *nodeCard) CreateRenderer() fyne.WidgetRenderer {
	return &cardRenderer{n: n, objects: []fyne.CanvasObject{n.bg, n.icon, n.name, n.ip, n.badge, n.state, n.problem, n.handle}}
}

type cardRenderer struct {
	n       *nodeCard
	objects []fyne.CanvasObject
}

// Layout places everything for a card of size s (nodeSize times the zoom).
func (r *cardRenderer) Layout(s fyne.Size) {
	n := r.n
	z := s.Width / nodeSize.Width
	at := func(x, y float32) fyne.Position { return fyne.NewPos(x*z, y*z) }
	n.bg.Resize(s)
	n.icon.Move(at(6, 8))
	n.icon.Resize(fyne.NewSize(40*z, 40*z))
	n.name.TextSize = 14 * z
	n.name.Move(at(52, 6))
	n.ip.TextSize = 11 * z
	n.ip.Move(at(52, 26))
	n.badge.Move(at(52, 46))
	n.badge.Resize(fyne.NewSize(10*z, 10*z))
	n.state.TextSize = 11 * z
	n.state.Move(at(66, 43))
	n.problem.TextSize = 14 * z
	n.problem.Move(at(6, 46))
	n.handle.Move(at(nodeSize.Width-handleSize-4, 4))
	n.handle.Resize(fyne.NewSize(handleSize*z, handleSize*z))
}

func (r *cardRenderer) MinSize() fyne.Size           { return nodeSize }
func (r *cardRenderer) Objects() []fyne.CanvasObject { return r.objects }
func (r *cardRenderer) Destroy()                     {}
func (r *cardRenderer) Refresh() {
	n := r.n
	r.Layout(n.Size())
	for _, o := range r.objects {
		if o == n.icon {
			// The icon is rasterised again only for a new resource or
			// canvas scale (Layout's Resize does it for a new size), or
			// while the card is on no canvas yet.
			scale, shown := shownScale(n)
			if n.icon.Resource == n.iconFor.res && shown && scale == n.iconFor.scale {
				continue
			}
			n.iconFor.res, n.iconFor.scale = n.icon.Resource, scale
		}
		o.Refresh()
	}
}

// handleSize is the link handle's diameter at zoom 1.
const handleSize = 14

// linkHandle is the small circle at a card's top right corner: drag it onto
// another card to wire the two (cpu → fossil, fossil → venti, cpu → auth).
type linkHandle struct {
	widget.BaseWidget
	card   *nodeCard
	circle *canvas.Circle

	dragging bool
	pointer  fyne.Position // in canvas (widget) coordinates
}

func newLinkHandle(card *nodeCard) *linkHandle {
	h := &linkHandle{card: card, circle: canvas.NewCircle(color.NRGBA{0xff, 0xff, 0xff, 0xd0})}
	h.circle.StrokeColor = color.NRGBA{0x20, 0x20, 0x20, 0xff}
	h.circle.StrokeWidth = 1.5
	h.ExtendBaseWidget(h)
	return h
}

// Dragged implements fyne.Draggable: a rubber band follows the pointer.
func (h *linkHandle) Dragged(ev *fyne.DragEvent) {
	if !h.dragging {
		h.dragging = true
		h.pointer = h.centre()
	}
	h.pointer = h.pointer.Add(ev.Dragged)
	h.card.canvas.showRubber(h.card.id, h.centre(), h.pointer)
}

// DragEnd implements fyne.Draggable: dropping on a card asks to wire.
func (h *linkHandle) DragEnd() {
	if !h.dragging {
		return
	}
	h.dragging = false
	c := h.card.canvas
	c.hideRubber()
	target := c.cardAt(h.pointer)
	if target == nil || target == h.card {
		return
	}
	if c.OnWire != nil {
		c.OnWire(h.card.id, target.id)
	}
}

// centre is the handle's centre in canvas coordinates.
func (h *linkHandle) centre() fyne.Position {
	s := h.Size()
	return h.card.Position().Add(h.Position()).Add(fyne.NewPos(s.Width/2, s.Height/2))
}

// CreateRenderer implements fyne.Widget.
func (h *linkHandle) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(h.circle)
}
