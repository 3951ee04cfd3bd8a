package ui

import (
	"fmt"
	"image"
	"image/draw"
	"math"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/driver/software"
	"github.com/srwiley/rasterx"
	"golang.org/x/image/math/fixed"
)

// While a card is dragged only it and its own links move. The rest of the
// canvas is then drawn from rasters made once at the start of the drag
// (and again only if the grid, the viewport or the zoom changes under
// it): one opaque image of the background and the links that do not touch
// the dragged card, and one image per other card. The dragged card and its
// links stay live objects. The z-order is the same as without a drag:
// background, links, knobs, cards in the view's order.

// dragLayerKey says what a drag layer was drawn for.
type dragLayerKey struct {
	gen     int // GridCanvas.gen: the view, selection and zoom
	dragged string
	off     fyne.Position
	size    fyne.Size
	scale   float32
}

// canvasScale is the scale of the Fyne canvas showing o (1 before it is
// shown).
func canvasScale(o fyne.CanvasObject) float32 {
	if s, ok := shownScale(o); ok {
		return s
	}
	return 1
}

// shownScale is the scale of the Fyne canvas showing o; ok is false when
// o is on no canvas.
func shownScale(o fyne.CanvasObject) (scale float32, ok bool) {
	if fa := fyne.CurrentApp(); fa != nil {
		if c := fa.Driver().CanvasForObject(o); c != nil {
			return c.Scale(), true
		}
	}
	return 0, false
}

// rebuildDragging is rebuild while a card is dragged, for a known viewport.
func (r *canvasRenderer) rebuildDragging(off fyne.Position, size fyne.Size) {
	d := r.c.dragged
	scale := canvasScale(r.c)
	key := dragLayerKey{gen: r.c.gen, dragged: d.id, off: off, size: size, scale: scale}
	x0, y0 := off.X-cullMargin, off.Y-cullMargin
	x1, y1 := off.X+size.Width+cullMargin, off.Y+size.Height+cullMargin
	visible := func(a, b fyne.Position) bool {
		return max(a.X, b.X) >= x0 && min(a.X, b.X) <= x1 && max(a.Y, b.Y) >= y0 && min(a.Y, b.Y) <= y1
	}
	if r.layerKey != key {
		r.drawLayer(off, size, scale, visible)
		r.layerKey = key
	}
	objs := append(r.objects[:0], r.layer)
	moving := func(l *linkView) bool { return l.l.From == d.id || l.l.To == d.id }
	for _, l := range r.c.links {
		if !moving(l) {
			continue
		}
		l.layout()
		if !l.placed {
			continue
		}
		if a, b, ok := clipLine(l.start, l.end, x0, y0, x1, y1); ok {
			objs = append(objs, l.segment(a, b)...)
			if visible(l.head1.Position1, l.head1.Position1) {
				objs = append(objs, l.head1, l.head2)
			}
		}
	}
	for _, l := range r.c.links {
		if k := l.knob.Position(); l.placed && visible(k, k.Add(fyne.NewPos(knobSize, knobSize))) {
			objs = append(objs, l.knob)
		}
	}
	for _, n := range r.c.view.Nodes {
		card, ok := r.c.cards[n.ID]
		if !ok {
			continue
		}
		if card == d {
			objs = append(objs, card)
			continue
		}
		p, s := card.Position(), card.Size()
		if visible(p, p.Add(fyne.NewPos(s.Width, s.Height))) {
			objs = append(objs, r.cardImage(card, scale))
		}
	}
	r.objects = append(objs, r.c.rubber)
}

// drawLayer draws the background and the links that do not move into the
// layer image, in pixels, the way the software painter draws a
// canvas.Line (rasterx, butt ends, coordinates rounded to pixels).
func (r *canvasRenderer) drawLayer(off fyne.Position, size fyne.Size, scale float32, visible func(a, b fyne.Position) bool) {
	d := r.c.dragged
	w, h := int(math.Ceil(float64(size.Width*scale))), int(math.Ceil(float64(size.Height*scale)))
	w, h = max(w, 1), max(h, 1)
	pix := r.layerPix
	if pix == nil || pix.Rect.Dx() != w || pix.Rect.Dy() != h {
		pix = image.NewRGBA(image.Rect(0, 0, w, h))
		r.layerPix = pix
	}
	fillOpaque(pix.Pix, canvasBackground.R, canvasBackground.G, canvasBackground.B)
	scanner := rasterx.NewScannerGV(w, h, pix, pix.Bounds())
	dasher := rasterx.NewDasher(w, h, scanner)
	dasher.SetColor(linkColour)
	dasher.SetStroke(fixed.Int26_6(float64(max(2*scale, 1))*64), 0, nil, nil, nil, 0, nil, 0)
	px := func(p fyne.Position) fixed.Point26_6 {
		return rasterx.ToFixedP(math.Round(float64((p.X-off.X)*scale)), math.Round(float64((p.Y-off.Y)*scale)))
	}
	line := func(a, b fyne.Position) {
		dasher.Start(px(a))
		dasher.Line(px(b))
		dasher.Stop(true)
	}
	x0, y0 := off.X-cullMargin, off.Y-cullMargin
	x1, y1 := off.X+size.Width+cullMargin, off.Y+size.Height+cullMargin
	drawn := false
	for _, l := range r.c.links {
		l.layout()
		if !l.placed || l.l.From == d.id || l.l.To == d.id {
			continue
		}
		if a, b, ok := clipLine(l.start, l.end, x0, y0, x1, y1); ok {
			line(a, b)
			drawn = true
			if visible(l.head1.Position1, l.head1.Position1) {
				line(l.head1.Position1, l.head1.Position2)
				line(l.head2.Position1, l.head2.Position2)
			}
		}
	}
	if drawn {
		dasher.Draw()
	}
	// Every pixel is opaque, so the premultiplied pixels are also the
	// non-premultiplied ones; the painter blends an NRGBA image fastest.
	r.layer.Image = &image.NRGBA{Pix: pix.Pix, Stride: pix.Stride, Rect: pix.Rect}
	r.layer.Move(off)
	r.layer.Resize(size)
	r.layer.Refresh()
}

// fillOpaque fills RGBA (or NRGBA) pixels with an opaque colour.
func fillOpaque(pix []byte, r, g, b uint8) {
	if len(pix) < 4 {
		return
	}
	pix[0], pix[1], pix[2], pix[3] = r, g, b, 0xff
	for n := 4; n < len(pix); n *= 2 {
		copy(pix[n:], pix[:n])
	}
}

// cardRaster is a card drawn by the software painter, and what it was
// drawn for.
type cardRaster struct {
	key string
	img *image.NRGBA
}

// cardKey is everything a card's look depends on.
func cardKey(n *nodeCard, scale float32) string {
	v := n.node
	return fmt.Sprintf("%s|%s|%s|%s|%s|%v|%v|%v|%v", v.Kind, n.name.Text, n.ip.Text, n.state.Text, n.problem.Text,
		n.handle.Hidden, n.bg.StrokeWidth, n.Size(), scale)
}

// cardImage returns the image object standing for a card that does not
// move during a drag, its raster drawn if the card changed since.
func (r *canvasRenderer) cardImage(n *nodeCard, scale float32) *canvas.Image {
	key := cardKey(n, scale)
	cr := r.c.rasters[n.id]
	if cr == nil || cr.key != key {
		cr = &cardRaster{key: key, img: renderCard(n, scale)}
		r.c.rasters[n.id] = cr
	}
	img := r.cardImgs[n.id]
	if img == nil {
		img = &canvas.Image{ScaleMode: canvas.ImageScaleFastest}
		r.cardImgs[n.id] = img
	}
	if img.Image != cr.img {
		img.Image = cr.img
		img.Refresh()
	}
	img.Move(n.Position())
	img.Resize(n.Size())
	return img
}

// renderCard draws a copy of card n (same node, zoom and outline) with
// the software painter, on a transparent canvas of the card's size.
func renderCard(n *nodeCard, scale float32) *image.NRGBA {
	c := n.canvas
	proto := newNodeCard(c, n.id)
	proto.set(n.node, c.zoom)
	proto.setSelected(n.bg.StrokeWidth > 0)
	sc := software.NewTransparentCanvas()
	sc.SetPadded(false)
	sc.SetScale(scale)
	sc.Resize(n.Size())
	sc.SetContent(proto)
	proto.Refresh() // the icon is rasterised for this canvas's scale
	img := sc.Capture()
	if nrgba, ok := img.(*image.NRGBA); ok {
		return nrgba
	}
	nrgba := image.NewNRGBA(img.Bounds())
	draw.Draw(nrgba, nrgba.Rect, img, img.Bounds().Min, draw.Src)
	return nrgba
}
