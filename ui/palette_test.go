package ui

import (
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"gridlord/engine/grid"
	"gridlord/images"
)

// paletteItem returns the palette item for kind.
func (f *fixture) paletteItem(kind string) *paletteItem {
	f.t.Helper()
	for _, it := range f.m.palette {
		if it.kind == kind {
			return it
		}
	}
	f.t.Fatalf("no palette item for %s", kind)
	return nil
}

// dragItem drags a palette item to the absolute position to, as Fyne's
// desktop driver reports a drag: a few events, each with the pointer's
// position relative to the dragged object and the motion since the last.
func (f *fixture) dragItem(it *paletteItem, to fyne.Position) {
	f.t.Helper()
	d := fyne.CurrentApp().Driver()
	f.do(func() {
		origin := d.AbsolutePositionForObject(it)
		start := fyne.NewPos(it.Size().Width/2, it.Size().Height/2)
		end := to.Subtract(origin)
		prev := start
		for i := 1; i <= 4; i++ {
			p := fyne.NewPos(start.X+(end.X-start.X)*float32(i)/4, start.Y+(end.Y-start.Y)*float32(i)/4)
			it.Dragged(&fyne.DragEvent{PointEvent: fyne.PointEvent{Position: p, AbsolutePosition: origin.Add(p)}, Dragged: fyne.NewDelta(p.X-prev.X, p.Y-prev.Y)})
			prev = p
			if i == 2 && !f.m.ghost.Visible() {
				f.t.Error("no ghost follows the dragged palette item")
			}
		}
		it.DragEnd()
		if f.m.ghost.Visible() {
			f.t.Error("the ghost stays after the drop")
		}
	})
	f.m.Wait()
}

func TestPaletteHasEveryKind(t *testing.T) {
	f := newFixture(t)
	var kinds []string
	for _, it := range f.m.palette {
		kinds = append(kinds, it.kind)
		if it.label.Text != it.kind || it.bg.FillColor != paletteTint(it.kind) {
			t.Errorf("palette item %s: label %q colour %v", it.kind, it.label.Text, it.bg.FillColor)
		}
		// The item is drawn: it sits left of the canvas, in the window.
		if p := fyne.CurrentApp().Driver().AbsolutePositionForObject(it); it.Size().IsZero() || p.X > fyne.CurrentApp().Driver().AbsolutePositionForObject(f.m.scroll).X {
			t.Errorf("palette item %s at %v size %v", it.kind, p, it.Size())
		}
	}
	if strings.Join(kinds, ",") != strings.Join(images.Roles(), ",") {
		t.Errorf("palette kinds %v", kinds)
	}
}

func TestPaletteDropAddsNodeWhereDropped(t *testing.T) {
	f := newFixture(t)
	d := fyne.CurrentApp().Driver()
	var at fyne.Position
	f.do(func() { at = d.AbsolutePositionForObject(f.m.canvas).Add(fyne.NewPos(420, 260)) })
	f.dragItem(f.paletteItem("cpu"), at)
	if err := f.m.LastError(); err != nil {
		t.Fatal(err)
	}
	n := f.loadGrid().Node("cpu2")
	if n == nil {
		t.Fatalf("no cpu2 after dropping a cpu on the canvas: %s", f.gridJSON())
	}
	want := fyne.NewPos(420-nodeSize.Width/2, 260-nodeSize.Height/2)
	if n.Kind != grid.KindCPU || n.Position.X != float64(want.X) || n.Position.Y != float64(want.Y) {
		t.Errorf("cpu2: kind %s at %v, want cpu at %v", n.Kind, n.Position, want)
	}
	f.eventually("cpu2's card where it was dropped", func() bool {
		var ok bool
		f.do(func() {
			v, found := f.m.snapshot().NodeByName("cpu2")
			ok = found && f.m.canvas.Card(v.ID) != nil && f.m.canvas.Card(v.ID).Position() == want
		})
		return ok
	})
}

func TestPaletteDropOutsideCanvasAddsNothing(t *testing.T) {
	f := newFixture(t)
	before := len(f.loadGrid().Nodes)
	f.dragItem(f.paletteItem("fossil"), fyne.NewPos(300, 5)) // on the toolbar
	if n := len(f.loadGrid().Nodes); n != before {
		t.Errorf("%d nodes after a drop on the toolbar, want %d", n, before)
	}
	if !strings.Contains(f.m.DetailText(), "Drop a palette item on the canvas") {
		t.Errorf("detail line %q", f.m.DetailText())
	}
}

func TestPaletteClickAddsNamedByEngine(t *testing.T) {
	f := newFixture(t)
	it := f.paletteItem("fossil+auth")
	f.do(func() { test.Tap(it) })
	f.m.Wait()
	if err := f.m.LastError(); err != nil {
		t.Fatal(err)
	}
	g := f.loadGrid()
	name := g.NextName(grid.KindFossilAuth)
	found := ""
	for _, n := range g.Nodes {
		if n.Kind == grid.KindFossilAuth && n.Name != "fossil1" {
			found = n.Name
		}
	}
	if found == "" || found == name {
		t.Fatalf("no new fossil+auth node after a click (next name %s): %s", name, f.gridJSON())
	}
	if !strings.Contains(f.m.DetailText(), "Added "+found) {
		t.Errorf("detail line %q", f.m.DetailText())
	}
}
