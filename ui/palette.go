package ui

import (
	"context"
	"fmt"
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"gridlord/images"
)

// paletteItemSize is the size of one palette item (the strip left of the
// canvas is one item wide).
var paletteItemSize = fyne.NewSize(96, 34)

// paletteTint is a palette item's colour: its kind's card colour, lighter,
// so that an item (a kind to add) never looks like a node on the canvas.
func paletteTint(kind string) color.NRGBA {
	c := kindColour[kind]
	mix := func(v uint8) uint8 { return uint8((int(v)*3 + 0xff*2) / 5) }
	return color.NRGBA{mix(c.R), mix(c.G), mix(c.B), 0xff}
}

// newPalette is the node palette: one item per kind (images.Roles order:
// venti, fossil, cpu, auth, fossil+auth). Drag an item onto the canvas to
// add a node of that kind where it is dropped; click it to add one where
// the engine places it.
func (m *MainWindow) newPalette() fyne.CanvasObject {
	head := widget.NewLabelWithStyle("Add", fyne.TextAlignCenter, fyne.TextStyle{Bold: true})
	objs := []fyne.CanvasObject{head}
	for _, k := range images.Roles() {
		it := newPaletteItem(m, k)
		m.palette = append(m.palette, it)
		objs = append(objs, it)
	}
	// Below the kinds, what nodes are made of: a new seed from a CD.
	seed := widget.NewButton("New seed…", m.onNewSeed)
	seed.Importance = widget.LowImportance
	objs = append(objs, widget.NewSeparator(), seed)
	return container.NewVBox(objs...)
}

// paletteItem is one kind in the palette: a swatch of the kind's colour
// and its name.
type paletteItem struct {
	widget.BaseWidget
	m     *MainWindow
	kind  string
	bg    *canvas.Rectangle
	label *canvas.Text

	dragging bool
	pointer  fyne.Position // the pointer, relative to the item
}

func newPaletteItem(m *MainWindow, kind string) *paletteItem {
	p := &paletteItem{m: m, kind: kind, bg: canvas.NewRectangle(paletteTint(kind)), label: canvas.NewText(kind, color.NRGBA{0x10, 0x10, 0x10, 0xff})}
	p.bg.CornerRadius = 6
	p.label.TextStyle.Bold = true
	p.label.Alignment = fyne.TextAlignCenter
	p.ExtendBaseWidget(p)
	return p
}

// Tapped implements fyne.Tappable: a click adds a node where the engine
// places new nodes.
func (p *paletteItem) Tapped(*fyne.PointEvent) { p.m.addFromPalette(p.kind, nil) }

// Dragged implements fyne.Draggable. ev.Position is the pointer relative
// to the item (Fyne's desktop drivers report where the pointer is now); a
// ghost of the item follows it.
func (p *paletteItem) Dragged(ev *fyne.DragEvent) {
	p.dragging = true
	p.pointer = ev.Position
	abs := fyne.CurrentApp().Driver().AbsolutePositionForObject(p).Add(ev.Position)
	p.m.showGhost(p.kind, abs)
}

// DragEnd implements fyne.Draggable: dropped on the canvas, the item adds
// a node there.
func (p *paletteItem) DragEnd() {
	if !p.dragging {
		return
	}
	p.dragging = false
	p.m.hideGhost()
	abs := fyne.CurrentApp().Driver().AbsolutePositionForObject(p).Add(p.pointer)
	p.m.dropPaletteItem(p.kind, abs)
}

// CreateRenderer implements fyne.Widget.
func (p *paletteItem) CreateRenderer() fyne.WidgetRenderer {
	return &paletteRenderer{p: p}
}

type paletteRenderer struct{ p *paletteItem }

func (r *paletteRenderer) Layout(s fyne.Size) {
	r.p.bg.Resize(s)
	r.p.label.Resize(s)
	r.p.label.Move(fyne.NewPos(0, (s.Height-r.p.label.MinSize().Height)/2))
	r.p.label.Resize(fyne.NewSize(s.Width, r.p.label.MinSize().Height))
}
func (r *paletteRenderer) MinSize() fyne.Size { return paletteItemSize }
func (r *paletteRenderer) Objects() []fyne.CanvasObject {
	return []fyne.CanvasObject{r.p.bg, r.p.label}
}
func (r *paletteRenderer) Destroy() {}
func (r *paletteRenderer) Refresh() {
	r.Layout(r.p.Size())
	r.p.bg.Refresh()
	r.p.label.Refresh()
}

// newGhost is the layer over the window where a dragged palette item's
// ghost and the card tooltip are drawn.
func (m *MainWindow) newGhost() fyne.CanvasObject {
	m.ghost = canvas.NewRectangle(color.Transparent)
	m.ghost.CornerRadius = 8
	m.ghost.StrokeWidth = 2
	m.ghostText = canvas.NewText("", color.White)
	m.ghostText.TextStyle.Bold = true
	m.ghost.Hide()
	m.ghostText.Hide()
	return container.NewWithoutLayout(append([]fyne.CanvasObject{m.ghost, m.ghostText}, m.newCardTip()...)...)
}

// showGhost draws a card-sized outline of the kind being dragged, centred
// on the pointer (at absolute position at).
func (m *MainWindow) showGhost(kind string, at fyne.Position) {
	size := fyne.NewSize(nodeSize.Width*m.canvas.Zoom(), nodeSize.Height*m.canvas.Zoom())
	tl := at.Subtract(fyne.NewPos(size.Width/2, size.Height/2))
	t := paletteTint(kind)
	m.ghost.StrokeColor = t
	m.ghost.FillColor = color.NRGBA{t.R, t.G, t.B, 0x50}
	m.ghost.Resize(size)
	m.ghost.Move(tl)
	m.ghostText.Text = "new " + kind
	m.ghostText.Move(tl.Add(fyne.NewPos(10, 8)))
	m.ghost.Show()
	m.ghostText.Show()
	m.ghost.Refresh()
	m.ghostText.Refresh()
}

func (m *MainWindow) hideGhost() { m.ghost.Hide(); m.ghostText.Hide() }

// dropPaletteItem adds a node of kind centred on the absolute position at,
// when that is over the visible canvas.
func (m *MainWindow) dropPaletteItem(kind string, at fyne.Position) {
	d := fyne.CurrentApp().Driver()
	sp, ss := d.AbsolutePositionForObject(m.scroll), m.scroll.Size()
	if !m.scroll.Visible() || at.X < sp.X || at.Y < sp.Y || at.X >= sp.X+ss.Width || at.Y >= sp.Y+ss.Height {
		m.say("Drop a palette item on the canvas to add a " + kind + " there.")
		return
	}
	rel := at.Subtract(d.AbsolutePositionForObject(m.canvas))
	z := m.canvas.Zoom()
	pos := fyne.NewPos(max(rel.X/z-nodeSize.Width/2, 0), max(rel.Y/z-nodeSize.Height/2, 0))
	m.addFromPalette(kind, &pos)
}

// addFromPalette adds a node of kind, named by the model (cpu2, fossil2,
// …) on the grid's default seed for that kind, as the Add node wizard does
// when its name is left empty; then moves it to pos (canvas units) if
// given.
func (m *MainWindow) addFromPalette(kind string, pos *fyne.Position) {
	m.do("add a "+kind, func(ctx context.Context) error {
		name, err := m.app.AddNode(ctx, kind, "", "")
		if err != nil {
			return err
		}
		if pos != nil {
			if err := m.app.Move(ctx, name, pos.X, pos.Y); err != nil {
				return fmt.Errorf("added %s but could not place it: %w", name, err)
			}
		}
		m.ui(func() { m.say(fmt.Sprintf("Added %s (%s).", name, kind)) })
		return nil
	})
}
