package ui

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/grid"
	"gridlord/engine/plan9disk"
	"gridlord/engine/qcow2"
)

// fixture is a real window over the real engine (daemon.Open with
// daemontest's fake VMs, the default grid on a small seed in a temporary
// directory), reached over its gridfs socket as the window reaches it.
type fixture struct {
	t *testing.T
	m *MainWindow
	a *app.App
	g *daemontest.Grid
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, g: daemontest.Open(t, daemontest.Options{Boot: 20 * time.Millisecond})}
	r, err := app.DialRemote(context.Background(), f.g.Dir)
	if err != nil {
		t.Fatal(err)
	}
	f.a = app.New(r, app.Options{Connect: func(ctx context.Context, dir string) (*app.Remote, error) {
		daemontest.Open(t, daemontest.Options{Dir: dir})
		return app.DialRemote(ctx, dir)
	}})
	f.m = NewMainWindow(test.NewTempApp(t), f.a)
	f.m.win.Resize(fyne.NewSize(960, 600))
	f.m.Watch()
	t.Cleanup(func() { f.m.Close(); f.m.Wait(); f.a.Close() })
	return f
}

// card returns the card of the node called name.
func (f *fixture) card(name string) *nodeCard {
	f.t.Helper()
	f.m.Wait()
	n, ok := f.m.snapshot().NodeByName(name)
	if !ok {
		f.t.Fatalf("no card for %s", name)
	}
	var c *nodeCard
	f.m.locked(func() { c = f.m.Canvas().Card(n.ID).(*nodeCard) })
	return c
}

// do drives the window as its UI goroutine would (see MainWindow.uiMu).
func (f *fixture) do(fn func()) { f.m.locked(fn) }

// state is the badge text of name's card.
func (f *fixture) state(name string) string {
	c := f.card(name)
	var s string
	f.m.locked(func() { s = c.State() })
	return s
}

// eventually waits for cond, failing with what after 10 seconds.
func (f *fixture) eventually(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			st, _ := f.g.Engine.NodeStatus("cpu1")
			calls := f.g.Runner.Calls()
			f.t.Fatalf("timed out waiting for %s (last error %v; cpu1 %q; runner calls %v)", what, f.m.LastError(), st, calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dismiss closes dialogs and menus, as a user would before going on.
func (f *fixture) dismiss() {
	for top := f.m.win.Canvas().Overlays().Top(); top != nil; top = f.m.win.Canvas().Overlays().Top() {
		f.m.win.Canvas().Overlays().Remove(top)
	}
}

// menu picks label in the popup menu shown last, as a click would: the
// item's action runs and the menu goes away.
func (f *fixture) menu(label string) {
	f.t.Helper()
	it := f.m.MenuItem(label)
	if it == nil {
		f.t.Fatalf("no menu item %q", label)
	}
	f.do(func() {
		if top := f.m.win.Canvas().Overlays().Top(); top != nil {
			f.m.win.Canvas().Overlays().Remove(top)
		}
		it.Action()
	})
	f.m.Wait()
}

func (f *fixture) gridJSON() []byte {
	b, err := os.ReadFile(filepath.Join(f.g.Dir, grid.FileName))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) loadGrid() *grid.Grid {
	g, err := grid.Load(f.g.Dir)
	if err != nil {
		f.t.Fatal(err)
	}
	return g
}

func TestDefaultGridIsDrawn(t *testing.T) {
	f := newFixture(t)
	f.m.Wait()
	if len(f.m.view.Nodes) != 3 || len(f.m.view.Links) != 2 || len(f.m.canvas.links) != 2 {
		t.Fatalf("default grid: %d nodes %d links", len(f.m.view.Nodes), len(f.m.view.Links))
	}
	for _, n := range f.m.view.Nodes {
		card := f.card(n.Name)
		if card.name.Text != n.Name || card.Position() != fyne.NewPos(n.X, n.Y) {
			t.Errorf("card %q at %v, want %q at %v,%v", card.name.Text, card.Position(), n.Name, n.X, n.Y)
		}
	}
	// Everything is drawn (the viewport culling keeps what is visible).
	drawn := map[fyne.CanvasObject]bool{}
	f.do(func() {
		for _, o := range test.WidgetRenderer(f.m.canvas).Objects() {
			drawn[o] = true
		}
	})
	for _, c := range f.m.canvas.cards {
		if !drawn[c] {
			t.Errorf("card %s is not drawn", c.node.Name)
		}
	}
	for _, l := range f.m.canvas.links {
		if !drawn[l.line] || !drawn[l.knob] {
			t.Errorf("link %s → %s is not drawn", l.l.From, l.l.To)
		}
	}
	if s := f.m.StatusText(); !strings.Contains(s, f.g.Engine.VentiAddr()) || !strings.Contains(s, " blocks") || !strings.Contains(s, "3 nodes, 1 running") {
		t.Errorf("status bar %q", s)
	}
}

func TestTapStartsNodeAndBadgeChanges(t *testing.T) {
	f := newFixture(t)
	if s := f.state("cpu1"); s != "stopped" { // a fresh grid has nothing pending
		t.Fatalf("cpu1 badge before: %q", s)
	}
	cpu := f.card("cpu1")
	f.do(func() { test.Tap(cpu) })
	f.eventually("cpu1 badge to say running", func() bool { return strings.HasPrefix(f.state("cpu1"), "running") })
	if c := f.g.Runner.Calls(); strings.Join(c, ",") != "start fossil1,start cpu1" {
		t.Errorf("runner calls %v", c)
	}
	f.eventually("fossil1 (a dependency) running", func() bool { return strings.HasPrefix(f.state("fossil1"), "running") })
	// Tap again: it stops.
	cpu = f.card("cpu1")
	f.do(func() { test.Tap(cpu) })
	f.eventually("cpu1 badge to say stopped", func() bool { return strings.HasPrefix(f.state("cpu1"), "stopped") })
	if err := f.m.LastError(); err != nil {
		t.Errorf("error shown: %v", err)
	}
}

// dragHandle drags from's link handle onto the centre of to's card, as a
// pointer on the window's canvas would.
func (f *fixture) dragHandle(from, to string) {
	f.t.Helper()
	src, dst := f.card(from), f.card(to)
	d := fyne.CurrentApp().Driver()
	hp := d.AbsolutePositionForObject(src.handle).Add(fyne.NewPos(handleSize/2, handleSize/2))
	tp := d.AbsolutePositionForObject(dst).Add(fyne.NewPos(dst.Size().Width/2, dst.Size().Height/2))
	f.do(func() {
		f.dismiss()
		test.Drag(f.m.win.Canvas(), hp, tp.X-hp.X, tp.Y-hp.Y)
	})
	f.m.Wait()
}

func TestDragCPUOntoFossilWires(t *testing.T) {
	f := newFixture(t)
	// A second fossil for cpu1 to root from; first unwire cpu1 → fossil1
	// through the link's menu.
	if _, err := f.a.AddNode(context.Background(), "fossil", "fossil2", ""); err != nil {
		t.Fatal(err)
	}
	f.m.refresh()
	f.m.Wait()
	f.do(func() {
		var root *linkView
		for _, l := range f.m.canvas.links {
			if from, _ := f.m.view.Node(l.l.From); from.Name == "cpu1" {
				root = l
			}
		}
		test.Tap(root.knob)
	})
	f.menu("Unwire cpu1 → fossil1 (root)")
	f.do(func() {
		if n := len(f.m.view.Links); n != 1 {
			t.Fatalf("after unwire %d links", n)
		}
	})

	f.dragHandle("cpu1", "fossil2")
	if err := f.m.LastError(); err != nil {
		t.Fatalf("wiring cpu1 → fossil2: %v", err)
	}
	f.do(func() {
		if n := len(f.m.canvas.links); n != 2 {
			t.Fatalf("after the drag the canvas shows %d links, want 2", n)
		}
	})
	g := f.loadGrid()
	c, err := g.Config("cpu1")
	if err != nil {
		t.Fatal(err)
	}
	if fs, _ := c.Value("fs"); fs != g.Node("fossil2").IP.String() {
		t.Errorf("cpu1's config on disk says fs=%s, want fossil2's %s", fs, g.Node("fossil2").IP)
	}
}

func TestInvalidDragChangesNothingAndSaysWhy(t *testing.T) {
	f := newFixture(t)
	before := f.gridJSON()
	// The rubber band turns red over a card that cannot be wired.
	src, dst := f.card("fossil1"), f.card("cpu1")
	f.do(func() {
		src.handle.Dragged(&fyne.DragEvent{Dragged: fyne.NewDelta(dst.Position().X-src.Position().X, 10)})
		if f.m.canvas.rubber.Hidden || f.m.canvas.rubber.StrokeColor != badColour {
			t.Errorf("rubber band over cpu1: hidden %v colour %v", f.m.canvas.rubber.Hidden, f.m.canvas.rubber.StrokeColor)
		}
		src.handle.DragEnd()
	})
	f.m.Wait()
	var we *grid.WiringError
	if err := f.m.LastError(); !errors.As(err, &we) {
		t.Fatalf("error shown: %v, want a WiringError", err)
	}
	f.do(func() {
		if !strings.Contains(f.m.DetailText(), we.Reason) {
			t.Errorf("detail line %q does not give the reason %q", f.m.DetailText(), we.Reason)
		}
		if !bytes.Equal(before, f.gridJSON()) || len(f.m.canvas.links) != 2 {
			t.Error("a refused drag changed the grid")
		}
	})
}

func TestDragCardMovesAndPersists(t *testing.T) {
	f := newFixture(t)
	card := f.card("fossil1")
	start := card.Position()
	f.do(func() {
		test.Drag(f.m.win.Canvas(), fyne.CurrentApp().Driver().AbsolutePositionForObject(card).Add(fyne.NewPos(20, 20)), 40, 25)
	})
	f.m.Wait()
	want := start.Add(fyne.NewPos(40, 25))
	if p := f.loadGrid().Node("fossil1").Position; float32(p.X) != want.X || float32(p.Y) != want.Y {
		t.Fatalf("grid.json has fossil1 at %v, want %v", p, want)
	}
	if got := f.card("fossil1").Position(); got != want {
		t.Errorf("card at %v after refresh, want %v", got, want)
	}
}

func TestOffscreenCardsAreNotDrawn(t *testing.T) {
	f := newFixture(t)
	f.do(func() {
		f.m.canvas.Viewport = func() (fyne.Position, fyne.Size) { return fyne.NewPos(5000, 5000), fyne.NewSize(100, 100) }
		f.m.canvas.Refresh()
		for _, o := range test.WidgetRenderer(f.m.canvas).Objects() {
			if _, ok := o.(*nodeCard); ok {
				t.Errorf("card %s drawn outside the viewport", o.(*nodeCard).node.Name)
			}
		}
	})
}

func TestZoomScalesCards(t *testing.T) {
	f := newFixture(t)
	f.do(f.m.onZoomIn)
	card := f.card("cpu1")
	n, _ := f.m.snapshot().NodeByName("cpu1")
	if card.Size().Width != nodeSize.Width*1.25 || card.Position().X != n.X*1.25 {
		t.Errorf("at zoom 1.25 cpu1 is %v at %v", card.Size(), card.Position())
	}
	f.do(f.m.onZoomReset)
	if f.card("cpu1").Size() != nodeSize {
		t.Error("zoom reset did not restore the size")
	}
}

func TestContextMenuAndConsoleTab(t *testing.T) {
	f := newFixture(t)
	cpu := f.card("cpu1")
	f.do(func() { test.TapSecondary(cpu) })
	for _, label := range []string{"Start", "Stop", "Power off", "Reset disk…", "Console", "Drawterm", "Clone…", "Properties…", "Delete"} {
		if f.m.MenuItem(label) == nil {
			t.Errorf("cpu1's menu has no %q", label)
		}
	}
	f.menu("Start")
	f.eventually("cpu1 running", func() bool { return strings.HasPrefix(f.state("cpu1"), "running") })

	cpu = f.card("cpu1")
	var ct *consoleTab
	f.do(func() {
		test.DoubleTap(cpu)
		ct = f.m.consoles["cpu1"]
		if ct == nil || f.m.tabs.Selected() != ct.tab {
			t.Fatal("double tap opened no console tab")
		}
	})
	// Back on the grid, the console again (Ctrl+T, the menu, a double
	// click): the same tab, with the keyboard in its line.
	f.do(func() {
		f.m.tabs.SelectIndex(0)
		f.m.win.Canvas().Unfocus()
		f.m.openConsole("cpu1")
		if f.m.tabs.Selected() != ct.tab || f.m.win.Canvas().Focused() != ct.input {
			t.Fatalf("the console opened again: tab %v, keyboard in %v; want cpu1's tab and its line", f.m.tabs.Selected().Text, f.m.win.Canvas().Focused())
		}
	})
	text := func() (s string) { f.do(func() { s = ct.Text() }); return s }
	f.eventually("the console banner", func() bool { return strings.Contains(text(), "cpu1# ") })
	f.do(func() {
		test.Type(ct.input, "echo hello")
		ct.input.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	})
	f.eventually("the answer", func() bool { return strings.Contains(text(), "echo: not found") })
	log := filepath.Join(t.TempDir(), "cpu1.log")
	f.do(func() {
		if err := ct.saveLog(log); err != nil {
			t.Fatal(err)
		}
	})
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "echo: not found") {
		t.Errorf("saved log %q", b)
	}
	f.do(ct.onClear)
	if text() != "" {
		t.Error("clear left text")
	}
	f.do(func() {
		f.m.onCloseTab(ct.tab)
		if len(f.m.tabs.Items) != 1 || f.m.consoles["cpu1"] != nil {
			t.Error("console tab not closed")
		}
	})
	time.Sleep(50 * time.Millisecond)
	if st, _ := f.g.Engine.NodeStatus("cpu1"); !strings.HasPrefix(st, "running") {
		t.Errorf("closing the console tab changed the VM: %s", st)
	}
}

func TestNewGridWizard(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(daemontest.ShortDir(t), "lab")
	f.do(func() {
		w := f.m.showNewGrid()
		w.dir.SetText(dir)
		w.authDom.SetText("lab")
		w.user.SetText("glenda")
		w.submit()
	})
	f.m.Wait()
	if err := f.m.LastError(); err != nil {
		t.Fatal(err)
	}
	g, err := grid.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := g.Node("cpu1"); n == nil || n.User != "glenda" || n.AuthDom != "lab" {
		t.Fatalf("new grid's cpu1: %+v", n)
	}
	f.do(func() {
		if f.m.view.Dir != dir {
			t.Errorf("window shows %s, want the new grid %s", f.m.view.Dir, dir)
		}
	})
}

func TestResetWizardWritesNvram(t *testing.T) {
	f := newFixture(t)
	before := f.gridJSON()
	var w *resetWizard
	f.do(func() {
		w = f.m.showReset("cpu1")
		w.authDom.SetText("lab")
		w.user.SetText("glenda")
		w.password.SetText("weak")
		w.confirm.SetText("weak")
		w.submit()
	})
	f.m.Wait()
	f.do(func() {
		if f.m.LastError() == nil || w.problem.Text == "" || !bytes.Equal(before, f.gridJSON()) {
			t.Fatalf("weak password: error %v, problem %q", f.m.LastError(), w.problem.Text)
		}
		w.dlg.Hide()
		w = f.m.showReset("cpu1")
		w.authDom.SetText("lab")
		w.user.SetText("glenda")
		w.password.SetText("weak")
		w.confirm.SetText("weak")
		if b := dialogButton(f.m, "Reset"); b == nil || !b.Disabled() {
			t.Fatalf("the Reset button with a weak password: %v (want it there, disabled)", b)
		}
		// Typed as a person does: the first field, then the second.
		w.password.SetText("s3cret-pw")
		if b := dialogButton(f.m, "Reset"); b == nil || !b.Disabled() {
			t.Fatalf("the Reset button with the second password still differing: %v (want it disabled)", b)
		}
		w.confirm.SetText("s3cret-pw")
		if b := dialogButton(f.m, "Reset"); b == nil || b.Disabled() {
			t.Fatalf("the Reset button with a good password: %v (want it enabled)", b)
		}
		w.keyfs.SetChecked(false)
		w.submit()
	})
	f.m.Wait()
	f.do(func() {
		if !strings.Contains(f.m.DetailText(), "nvram written on cpu1") {
			t.Fatalf("detail %q, error %v", f.m.DetailText(), f.m.LastError())
		}
	})
	g := f.loadGrid()
	d, err := qcow2.OpenReadOnly(filepath.Join(g.NodeDir(g.Node("cpu1")), grid.DiskName))
	if err != nil {
		t.Fatalf("the engine made no disk for cpu1's nvram: %v", err)
	}
	defer d.Close()
	im, err := plan9disk.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := im.ReadNvram()
	if err != nil || r.AuthID != "glenda" || r.AuthDom != "lab" {
		t.Fatalf("nvram on disk: %+v, %v", r, err)
	}
	if n := g.Node("cpu1"); n.User != "glenda" || n.AuthDom != "lab" {
		t.Errorf("grid.json cpu1 identity %s@%s", n.User, n.AuthDom)
	}
}

// TestCloneWizardSaysARunningSourceMustStop: the preview says so before
// Clone is pressed (it said nothing, and the engine then refused).
func TestCloneWizardSaysARunningSourceMustStop(t *testing.T) {
	f := newFixture(t)
	if err := f.a.NodeCtl(context.Background(), "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	f.eventually("cpu1 running in the window", func() bool { return f.state("cpu1") == "running" })
	f.do(func() {
		w := f.m.showClone("cpu1")
		if !strings.Contains(w.preview.Text, "cpu1 is running: stop it first") {
			t.Errorf("preview of a clone of the running cpu1:\n%s", w.preview.Text)
		}
	})
}

func TestCloneWizardPreviewsAndAdds(t *testing.T) {
	f := newFixture(t)
	g := f.loadGrid()
	fossilIP := g.Node("fossil1").IP.String()
	f.do(func() {
		w := f.m.showClone("cpu1")
		w.name.SetText("cpu2")
		w.memory.SetText("640")
		if !strings.Contains(w.preview.Text, "fs="+fossilIP) || !strings.HasPrefix(w.preview.Text, "cpu2 (cpu") {
			t.Fatalf("preview:\n%s", w.preview.Text)
		}
		w.submit()
	})
	f.m.Wait()
	if err := f.m.LastError(); err != nil {
		t.Fatal(err)
	}
	g = f.loadGrid()
	n := g.Node("cpu2")
	if n == nil || n.MemoryMB != 640 {
		t.Fatalf("cpu2 in grid.json: %+v", n)
	}
	c, _ := g.Config("cpu2")
	if fs, _ := c.Value("fs"); fs != fossilIP {
		t.Errorf("cpu2 fs=%s", fs)
	}
	f.do(func() {
		if _, ok := f.m.view.NodeByName("cpu2"); !ok || len(f.m.canvas.cards) != 4 {
			t.Error("cpu2 is not on the canvas")
		}
	})
}

func TestPropertiesShowsIniAndEdits(t *testing.T) {
	f := newFixture(t)
	var p *propertiesDialog
	f.do(func() { p = f.m.showProperties("cpu1") })
	f.m.Wait()
	f.do(func() {
		if !strings.Contains(p.ini.Text, "● fs=") || !strings.Contains(p.ini.Text, "● = set by Gridlord") {
			t.Errorf("plan9.ini view:\n%s", p.ini.Text)
		}
		p.memory.SetText("1024")
		p.name.SetText("term1")
		p.submit()
	})
	f.m.Wait()
	if err := f.m.LastError(); err != nil {
		t.Fatal(err)
	}
	n := f.loadGrid().Node("term1")
	if n == nil || n.MemoryMB != 1024 {
		t.Fatalf("after properties: %+v", n)
	}
}

func TestAddNodeWizard(t *testing.T) {
	f := newFixture(t)
	f.do(func() {
		w := f.m.showAddNode()
		w.kind.SetSelected("fossil")
		w.submit()
	})
	f.m.Wait()
	if f.loadGrid().Node("fossil2") == nil {
		t.Fatalf("no fossil2 added (error %v)", f.m.LastError())
	}
}

// TestToolbarActionsAreLabelled: every toolbar action says what it does.
func TestToolbarActionsAreLabelled(t *testing.T) {
	f := newFixture(t)
	n := 0
	f.do(func() {
		for _, o := range f.m.toolbar.Objects {
			if _, sep := o.(*widget.Separator); sep {
				continue
			}
			b, ok := o.(*widget.Button)
			if !ok {
				t.Errorf("toolbar item %T is not a labelled button", o)
				continue
			}
			if b.Text == "" || b.OnTapped == nil {
				t.Errorf("toolbar button %+v has no label or action", b)
			}
			n++
		}
	})
	if n < 10 {
		t.Errorf("%d toolbar buttons, want the 10 actions", n)
	}
}

// TestFailureGoesToStatusLineNotDialog: a failed action is shown on the
// status line with a Details button; nothing modal covers the canvas.
func TestFailureGoesToStatusLineNotDialog(t *testing.T) {
	f := newFixture(t)
	// cpu1 without a root cannot start: the engine says why.
	if err := f.a.Unwire(context.Background(), "cpu1", "fossil1"); err != nil {
		t.Fatal(err)
	}
	f.m.refresh()
	cpu := f.card("cpu1")
	f.do(func() { test.Tap(cpu) })
	f.m.Wait()
	f.do(func() {
		if top := f.m.win.Canvas().Overlays().Top(); top != nil {
			t.Errorf("a failed start put %T over the canvas", top)
		}
		if !strings.Contains(f.m.DetailText(), "Could not start or stop cpu1") || f.m.errButton.Hidden {
			t.Errorf("status line %q, details button hidden %v", f.m.DetailText(), f.m.errButton.Hidden)
		}
		f.m.onErrorDetails() // asked for: now a dialog
		if f.m.win.Canvas().Overlays().Top() == nil {
			t.Error("Details shows nothing")
		}
	})
}

// TestDragCPUOntoSecondFossilRewires: dragging cpu1's handle onto a second
// fossil moves its root link there (no refusal) and says so.
func TestDragCPUOntoSecondFossilRewires(t *testing.T) {
	f := newFixture(t)
	if _, err := f.a.AddNode(context.Background(), "fossil", "fossil2", ""); err != nil {
		t.Fatal(err)
	}
	f.m.refresh()
	f.m.Wait()
	f.dragHandle("cpu1", "fossil2")
	if err := f.m.LastError(); err != nil {
		t.Fatalf("dragging cpu1 onto fossil2: %v", err)
	}
	g := f.loadGrid()
	if root := g.Target(g.Node("cpu1"), grid.LinkRoot); root == nil || root.Name != "fossil2" {
		t.Fatalf("cpu1 roots from %v, want fossil2", root)
	}
	f.do(func() {
		if !strings.Contains(f.m.DetailText(), "instead of fossil1") {
			t.Errorf("status line %q does not say what changed", f.m.DetailText())
		}
		fossil2, _ := f.m.view.NodeByName("fossil2")
		cpu1, _ := f.m.view.NodeByName("cpu1")
		found := false
		for _, l := range f.m.canvas.links {
			found = found || (l.l.From == cpu1.ID && l.l.To == fossil2.ID)
		}
		if !found || len(f.m.canvas.links) != 2 {
			t.Errorf("canvas links %d, cpu1 → fossil2 drawn %v", len(f.m.canvas.links), found)
		}
	})
}

// TestConsoleOpenedBeforeStartShowsNewBoot: a console tab opened on a
// node that has not started waits (no error dialog) and shows the boot
// when the node starts, with the node's state in its header.
func TestConsoleOpenedBeforeStartShowsNewBoot(t *testing.T) {
	f := newFixture(t)
	cpu := f.card("cpu1")
	var ct *consoleTab
	f.do(func() {
		test.DoubleTap(cpu)
		ct = f.m.consoles["cpu1"]
	})
	f.m.Wait()
	text := func() (s string) { f.do(func() { s = ct.Text() }); return s }
	if !strings.Contains(text(), "it appears when cpu1 starts") {
		t.Errorf("console of a never-started node says %q", text())
	}
	f.do(func() {
		if top := f.m.win.Canvas().Overlays().Top(); top != nil {
			t.Errorf("opening the console of a stopped node showed %T", top)
		}
	})
	if err := f.a.NodeCtl(context.Background(), "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	f.eventually("the new boot's banner in the tab opened before the start", func() bool { return strings.Contains(text(), "cpu1# ") })
	f.eventually("the header to say running", func() bool {
		var s string
		f.do(func() { s = ct.state.Text })
		return s == "cpu1: running"
	})
	if !strings.Contains(text(), "new boot") {
		t.Errorf("no separator before the new boot: %q", text())
	}
}

// TestShortcutsActOnSelectedNode: Ctrl+R, Ctrl+E and Ctrl+T start, stop
// and open the console of the node last clicked; its menu shows them.
func TestShortcutsActOnSelectedNode(t *testing.T) {
	f := newFixture(t)
	press := func(sc fyne.Shortcut) {
		f.do(func() { f.m.win.Canvas().(fyne.Shortcutable).TypedShortcut(sc) })
		f.m.Wait()
	}
	press(startShortcut)
	if !strings.Contains(f.m.DetailText(), "Click a node first") {
		t.Errorf("a shortcut with nothing selected says %q", f.m.DetailText())
	}
	cpu := f.card("cpu1")
	f.do(func() { test.TapSecondary(cpu) })
	if it := f.m.MenuItem("Start"); it == nil || it.Shortcut != startShortcut {
		t.Errorf("the menu's Start item does not show its shortcut: %+v", it)
	}
	f.dismiss()
	press(startShortcut)
	f.eventually("Ctrl+R to start cpu1", func() bool { return strings.HasPrefix(f.state("cpu1"), "running") })
	press(consoleShortcut)
	f.do(func() {
		if f.m.consoles["cpu1"] == nil {
			t.Error("Ctrl+T opened no console")
		}
	})
	press(stopShortcut)
	f.eventually("Ctrl+E to stop cpu1", func() bool { return strings.HasPrefix(f.state("cpu1"), "stopped") })
}

// dialogButton is the button labelled text in the window's top overlay (an
// open dialog), nil if none.
func dialogButton(m *MainWindow, text string) *widget.Button {
	top := m.win.Canvas().Overlays().Top()
	if top == nil {
		return nil
	}
	for _, o := range test.LaidOutObjects(top) {
		if b, ok := o.(*widget.Button); ok && b.Text == text {
			return b
		}
	}
	return nil
}
