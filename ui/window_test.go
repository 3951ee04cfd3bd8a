package ui

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"gridlord/app"
	"gridlord/engine/grid"
)

// openApp starts a real app (embedded venti on a free loopback port, the
// default grid) in a temporary data directory.
func openApp(t *testing.T) (*app.App, string) {
	t.Helper()
	dir := t.TempDir()
	a, err := app.Open(context.Background(), app.Options{DataDir: dir, VentiAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, dir
}

func TestDefaultGridIsDrawn(t *testing.T) {
	a, _ := openApp(t)
	m := NewMainWindow(test.NewTempApp(t), a)
	view := a.Grid()
	if len(view.Nodes) != 3 || len(view.Links) != 2 {
		t.Fatalf("default grid: %d nodes %d links, want 3 and 2", len(view.Nodes), len(view.Links))
	}
	kinds := map[string]bool{}
	for _, n := range view.Nodes {
		card, ok := m.Canvas().Card(n.ID).(*nodeCard)
		if !ok {
			t.Fatalf("node %s has no card", n.Name)
		}
		if card.name.Text != n.Name || card.Position() != fyne.NewPos(n.X, n.Y) {
			t.Errorf("card %q at %v, want %q at %v,%v", card.name.Text, card.Position(), n.Name, n.X, n.Y)
		}
		kinds[strings.TrimSuffix(n.Kind, "+auth")] = true
	}
	for _, k := range []string{"venti", "fossil", "cpu"} {
		if !kinds[k] {
			t.Errorf("no %s node drawn", k)
		}
	}
	if s := m.StatusText(); !strings.Contains(s, a.VentiAddr()) || !strings.Contains(s, "0 blocks") {
		t.Errorf("status bar %q does not show the venti at %s with 0 blocks", s, a.VentiAddr())
	}
}

func TestTapShowsDetails(t *testing.T) {
	a, _ := openApp(t)
	m := NewMainWindow(test.NewTempApp(t), a)
	for _, n := range a.Grid().Nodes {
		if n.Name != "cpu1" {
			continue
		}
		test.Tap(m.Canvas().Card(n.ID).(fyne.Tappable))
		if got := m.DetailText(); !strings.HasPrefix(got, "cpu1: cpu, stopped, "+n.IP) {
			t.Errorf("detail after tapping cpu1: %q", got)
		}
		return
	}
	t.Fatal("no cpu1 in the default grid")
}

func TestDragMovesAndPersists(t *testing.T) {
	a, dir := openApp(t)
	m := NewMainWindow(test.NewTempApp(t), a)
	var id string
	var start fyne.Position
	for _, n := range a.Grid().Nodes {
		if n.Name == "fossil1" {
			id, start = n.ID, fyne.NewPos(n.X, n.Y)
		}
	}
	card := m.Canvas().Card(id).(*nodeCard)
	card.Dragged(&fyne.DragEvent{Dragged: fyne.NewDelta(40, 25)})
	card.DragEnd()
	want := start.Add(fyne.NewPos(40, 25))
	if n, _ := a.Grid().Node(id); n.X != want.X || n.Y != want.Y {
		t.Fatalf("after drag fossil1 is at %v,%v, want %v", n.X, n.Y, want)
	}
	g, err := grid.Load(filepath.Join(dir, "grids", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if p := g.Node("fossil1").Position; float32(p.X) != want.X || float32(p.Y) != want.Y {
		t.Fatalf("grid.json has fossil1 at %v, want %v", p, want)
	}
}
