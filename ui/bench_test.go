package ui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/test"

	"gridlord/app"
	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/grid"
)

// bigGrid writes a grid of about n nodes to a new directory: the embedded
// venti, n/10 fossils archiving to it and cpus spread over the fossils.
func bigGrid(b *testing.B, n int) string {
	b.Helper()
	g, err := grid.Empty(grid.WithSubnet("10.9.0.0/16"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.AddNode(grid.NodeSpec{Kind: grid.KindVenti, Name: "venti", Embedded: true}); err != nil {
		b.Fatal(err)
	}
	fossils := max(1, n/10)
	for i := 0; i < fossils; i++ {
		name := fmt.Sprintf("fossil%d", i+1)
		if _, err := g.AddNode(grid.NodeSpec{Kind: grid.KindFossilAuth, Name: name, Seed: grid.DefaultSeed}); err != nil {
			b.Fatal(err)
		}
		if _, err := g.Wire(name, "venti"); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < n-1-fossils; i++ {
		name := fmt.Sprintf("cpu%d", i+1)
		if _, err := g.AddNode(grid.NodeSpec{Kind: grid.KindCPU, Name: name, Seed: grid.DefaultSeed}); err != nil {
			b.Fatal(err)
		}
		if _, err := g.Wire(name, fmt.Sprintf("fossil%d", i%fossils+1)); err != nil {
			b.Fatal(err)
		}
	}
	g.Arrange()
	data, err := g.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(daemontest.ShortDir(b), "g")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, grid.FileName), data, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// benchWindow opens a window over the engine (fake VMs) serving a grid of
// n nodes, reached over gridfs.
func benchWindow(b *testing.B, n int) *MainWindow {
	b.Helper()
	g := daemontest.Open(b, daemontest.Options{Dir: bigGrid(b, n)})
	r, err := app.DialRemote(context.Background(), g.Dir)
	if err != nil {
		b.Fatal(err)
	}
	a := app.New(r, app.Options{})
	b.Cleanup(func() { a.Close() })
	m := NewMainWindow(test.NewTempApp(b), a)
	m.win.Resize(fyne.NewSize(1280, 800))
	if got := len(m.view.Nodes); got != n {
		b.Fatalf("grid has %d nodes, want %d", got, n)
	}
	return m
}

// benchRefresh measures one full refresh as the engine's change events
// cause it: the view fetched through the backend (grid copy, statuses,
// problems), applied to the canvas, and a frame painted (software
// painter: the capture rasterises the whole window).
func benchRefresh(b *testing.B, n int) {
	m := benchWindow(b, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.refreshNow()
		m.win.Canvas().Capture()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/refresh")
}

// BenchmarkRefresh3 is the baseline: the default grid's size.
func BenchmarkRefresh3(b *testing.B) { benchRefresh(b, 3) }

// BenchmarkRefresh200 refreshes a 200-node grid.
func BenchmarkRefresh200(b *testing.B) { benchRefresh(b, 200) }

// benchDrag measures one drag step of a card (the card follows the
// pointer, its links follow it) plus the frame it causes. The card dragged
// is one on the screen with a link, as a person would drag (the last node
// of a 200-node grid lies far below the viewport, where dragging it would
// paint nothing of it).
func benchDrag(b *testing.B, n int) {
	m := benchWindow(b, n)
	card := onScreenLinkedCard(b, m)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := float32(1 - 2*(i%2))
		card.Dragged(&fyne.DragEvent{Dragged: fyne.NewDelta(d, d)})
		m.win.Canvas().Capture()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/frame")
}

// onScreenLinkedCard is the last card in the view's order that lies
// wholly in the viewport and is the source of a link.
func onScreenLinkedCard(b *testing.B, m *MainWindow) *nodeCard {
	off, size := m.canvas.Viewport()
	linked := map[string]bool{}
	for _, l := range m.view.Links {
		linked[l.From] = true
	}
	for i := len(m.view.Nodes) - 1; i >= 0; i-- {
		nv := m.view.Nodes[i]
		card := m.canvas.cards[nv.ID]
		p, s := card.Position(), card.Size()
		if linked[nv.ID] && p.X >= off.X && p.Y >= off.Y && p.X+s.Width <= off.X+size.Width && p.Y+s.Height <= off.Y+size.Height {
			b.Logf("dragging %s at %v", nv.Name, p)
			return card
		}
	}
	b.Fatal("no linked card on the screen")
	return nil
}

// BenchmarkDrag3 is the baseline for BenchmarkDrag200.
func BenchmarkDrag3(b *testing.B) { benchDrag(b, 3) }

// BenchmarkDrag200 drags a card in a 200-node grid.
func BenchmarkDrag200(b *testing.B) { benchDrag(b, 200) }

// benchFrame measures a frame of the window with nothing changed: what
// every frame of the software painter costs before the canvas changes
// anything (the 1280x800 capture, toolbar, palette, background), the floor
// under the Drag and Refresh figures.
func benchFrame(b *testing.B, n int) {
	m := benchWindow(b, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.win.Canvas().Capture()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/frame")
}

// BenchmarkFrame3 is the frame floor of the default grid's window.
func BenchmarkFrame3(b *testing.B) { benchFrame(b, 3) }

// BenchmarkFrame200 is the frame floor of a 200-node grid's window.
func BenchmarkFrame200(b *testing.B) { benchFrame(b, 200) }

// BenchmarkFrameEmpty is the floor of Fyne's software painter itself: a
// frame of a 1280x800 window holding nothing (the test canvas's capture
// fills, paints and blends the whole window pixel by pixel). No content
// can make a frame of that window cheaper than this.
func BenchmarkFrameEmpty(b *testing.B) {
	w := test.NewTempApp(b).NewWindow("empty")
	w.SetContent(container.NewWithoutLayout())
	w.Resize(fyne.NewSize(1280, 800))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Canvas().Capture()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/frame")
}

// benchView measures the data half of a refresh alone: the view fetched
// through the backend and applied to the canvas, without painting.
func benchView(b *testing.B, n int) {
	m := benchWindow(b, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.refreshNow()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/view")
}

// BenchmarkView3 is the baseline for BenchmarkView200.
func BenchmarkView3(b *testing.B) { benchView(b, 3) }

// BenchmarkView200 fetches and applies a 200-node grid's view.
func BenchmarkView200(b *testing.B) { benchView(b, 200) }
