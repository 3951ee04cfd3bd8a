package ui

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"gridlord/engine/grid"
)

// TestWindowOverGridfs: change events and refusals reach the window over
// the engine's gridfs socket: a start shows as running, a refused drag
// brings the engine's reason and changes nothing, a node added through the
// engine appears and can be wired by a drag.
func TestWindowOverGridfs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cpu := f.card("cpu1")
	f.do(func() { test.Tap(cpu) })
	f.eventually("cpu1 running (events over gridfs)", func() bool { return strings.HasPrefix(f.state("cpu1"), "running") })

	before := f.gridJSON()
	f.dragHandle("fossil1", "cpu1")
	if err := f.m.LastError(); err == nil || !strings.Contains(f.m.DetailText(), "cpu") {
		t.Fatalf("refused wire: error %v, detail %q", err, f.m.DetailText())
	}
	if string(before) != string(f.gridJSON()) {
		t.Error("refused drag changed grid.json")
	}
	if _, err := f.a.AddNode(ctx, "cpu", "cpu2", ""); err != nil {
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

// TestDeleteDialogSaysWhatRemoveDoes: the Delete question names what the
// engine's remove deletes (the disk), and its Yes does just that: the node
// leaves the canvas and its directory is gone.
func TestDeleteDialogSaysWhatRemoveDoes(t *testing.T) {
	f := newFixture(t)
	if q := deleteQuestion("cpu1"); !strings.Contains(q, "its disk") || strings.Contains(q, "stays") {
		t.Errorf("delete question %q", q)
	}
	ctx := context.Background()
	if err := f.a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	if err := f.a.NodeCtl(ctx, "cpu1", "stop"); err != nil {
		t.Fatal(err)
	}
	g := f.loadGrid()
	dir := g.NodeDir(g.Node("cpu1"))
	if _, err := os.Stat(filepath.Join(dir, grid.DiskName)); err != nil {
		t.Fatal(err)
	}
	f.do(func() { f.m.deleteNode("cpu1") })
	f.m.Wait()
	if err := f.m.LastError(); err != nil {
		t.Fatal(err)
	}
	f.eventually("cpu1 gone from the canvas", func() bool {
		var ok bool
		f.do(func() { _, ok = f.m.view.NodeByName("cpu1") })
		return !ok
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cpu1's directory after Delete: %v", err)
	}
}
