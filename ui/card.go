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
	"pending":  {0x50, 0xa0, 0xf0, 0xff},
}

// nodeCard is one node on the canvas: icon, name, address and state badge.
type nodeCard struct {
	widget.BaseWidget
	canvas *GridCanvas
	id     string
	node   app.NodeView

	bg    *canvas.Rectangle
	icon  *canvas.Image
	name  *canvas.Text
	ip    *canvas.Text
	badge *canvas.Circle
	state *canvas.Text
}

func newNodeCard(c *GridCanvas, id string) *nodeCard {
	n := &nodeCard{
		canvas: c,
		id:     id,
		bg:     canvas.NewRectangle(color.Black),
		icon:   &canvas.Image{FillMode: canvas.ImageFillContain},
		name:   canvas.NewText("", color.White),
		ip:     canvas.NewText("", color.NRGBA{0xee, 0xee, 0xee, 0xff}),
		badge:  canvas.NewCircle(color.White),
		state:  canvas.NewText("", color.White),
	}
	n.bg.CornerRadius = 8
	n.name.TextStyle.Bold = true
	n.ip.TextSize = 11
	n.state.TextSize = 11
	n.ExtendBaseWidget(n)
	return n
}

// set updates the card from the view and moves it to the node's position.
func (n *nodeCard) set(v app.NodeView) {
	if n.node.Kind != v.Kind {
		if svg, err := assets.KindIcon(v.Kind); err == nil {
			n.icon.Resource = fyne.NewStaticResource(v.Kind+".svg", svg)
		}
	}
	n.node = v
	n.bg.FillColor = kindColour[v.Kind]
	n.name.Text = v.Name
	n.ip.Text = v.IP
	state := v.State
	if v.Pending {
		state += " · pending"
	}
	n.state.Text = state
	key := v.State
	if v.Pending && v.State == "stopped" {
		key = "pending"
	}
	n.badge.FillColor = stateColour[key]
	n.Move(fyne.NewPos(v.X, v.Y))
	n.Refresh()
}

// State is the text of the card's state badge, for tests.
func (n *nodeCard) State() string { return n.state.Text }

// Tapped implements fyne.Tappable.
func (n *nodeCard) Tapped(*fyne.PointEvent) {
	if n.canvas.OnTapNode != nil {
		n.canvas.OnTapNode(n.id)
	}
}

// Dragged implements fyne.Draggable: the card follows the pointer.
func (n *nodeCard) Dragged(ev *fyne.DragEvent) {
	p := n.Position().Add(ev.Dragged)
	n.Move(fyne.NewPos(max(p.X, 0), max(p.Y, 0)))
	n.canvas.Refresh()
}

// DragEnd implements fyne.Draggable: the new position is reported.
func (n *nodeCard) DragEnd() {
	if n.canvas.OnMoveNode != nil {
		n.canvas.OnMoveNode(n.id, n.Position())
	}
}

// CreateRenderer implements fyne.Widget.
func (n *nodeCard) CreateRenderer() fyne.WidgetRenderer {
	return &cardRenderer{n: n, objects: []fyne.CanvasObject{n.bg, n.icon, n.name, n.ip, n.badge, n.state}}
}

type cardRenderer struct {
	n       *nodeCard
	objects []fyne.CanvasObject
}

func (r *cardRenderer) Layout(s fyne.Size) {
	n := r.n
	n.bg.Resize(s)
	n.icon.Move(fyne.NewPos(6, 8))
	n.icon.Resize(fyne.NewSize(40, 40))
	n.name.Move(fyne.NewPos(52, 6))
	n.ip.Move(fyne.NewPos(52, 26))
	n.badge.Move(fyne.NewPos(52, 46))
	n.badge.Resize(fyne.NewSize(10, 10))
	n.state.Move(fyne.NewPos(66, 43))
}

func (r *cardRenderer) MinSize() fyne.Size           { return nodeSize }
func (r *cardRenderer) Objects() []fyne.CanvasObject { return r.objects }
func (r *cardRenderer) Destroy()                     {}
func (r *cardRenderer) Refresh() {
	for _, o := range r.objects {
		o.Refresh()
	}
}
