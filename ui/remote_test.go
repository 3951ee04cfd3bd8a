package ui

import (
	"context"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"gridlord/app"
	"gridlord/app/apptest"
	"gridlord/engine/grid"
)

// TestWindowOverGridfs drives the window against an engine reached the way
// the real one is: over its gridfs 9P socket (app.Remote), with the
// engine side a real grid directory and apptest's fake runner.
func TestWindowOverGridfs(t *testing.T) {
	dir, l, r := apptest.Serve(t, 20*time.Millisecond)
	ctx := context.Background()
	rb, err := app.DialRemote(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, l: l, runner: r, a: app.New(rb, nil)}
	f.m = NewMainWindow(test.NewTempApp(t), f.a, Options{})
	f.m.win.Resize(fyne.NewSize(960, 600))
	f.m.Watch()
	t.Cleanup(func() {
		f.m.Close()
		f.m.Wait()
		rb.Close()
	})

	cpu := f.card("cpu1")
	f.do(func() { test.Tap(cpu) })
	f.eventually("cpu1 running (events over gridfs)", func() bool { return strings.HasPrefix(f.state("cpu1"), "running") })

	// A refused drag over gridfs: the engine's reason, nothing changed.
	before := f.gridJSON()
	f.dragHandle("fossil1", "cpu1")
	if err := f.m.LastError(); err == nil || !strings.Contains(f.m.DetailText(), "cpu") {
		t.Fatalf("refused wire: error %v, detail %q", err, f.m.DetailText())
	}
	if string(before) != string(f.gridJSON()) {
		t.Error("refused drag changed grid.json")
	}
	// A good one: cpu2 (added through the engine) wired to fossil1.
	if _, err := f.a.AddNode(ctx, "cpu", "cpu2", grid.DefaultSeed); err != nil {
		t.Fatal(err)
	}
	f.eventually("cpu2 on the canvas", func() bool {
		var ok bool
		f.do(func() { _, ok = f.m.view.NodeByName("cpu2") })
		return ok
	})
	f.dragHandle("cpu2", "fossil1")
	g := f.loadGrid()
	c, err := g.Config("cpu2")
	if err != nil {
		t.Fatal(err)
	}
	if fs, _ := c.Value("fs"); fs != g.Node("fossil1").IP.String() {
		t.Errorf("cpu2 fs=%q after the drag, want fossil1's %s (error %v)", fs, g.Node("fossil1").IP, f.m.LastError())
	}
}
