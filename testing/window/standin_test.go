package window

import (
	"context"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/plan9disk/plan9disktest"
	"gridlord/engine/qemu"
	"gridlord/testing/standin"
	"gridlord/testing/testenv"
)

// standinGrid makes, with the gridlord CLI, a default grid (embedded venti,
// fossil1, cpu1) whose nodes boot the stand-in Linux guest: fast plumbing
// for the window's flows, never proof that a Plan 9 behaviour works (the
// real seed's test is that).
func standinGrid(t *testing.T, ctx context.Context, bin, dir string) {
	t.Helper()
	testenv.Tool(t, "qemu-system-x86_64")
	im, err := standin.Build(ctx, standin.Options{})
	if err != nil {
		t.Fatalf("build the stand-in guest: %v", err)
	}
	seed := plan9disktest.BuildNativeSmall(t)
	listen := "nc -ll -p 564 -e /bin/cat &" // fossils "serve" 9P to their dependants
	cmd := exec.CommandContext(ctx, bin, "init", dir, "--seed", seed, "--seed-name", "standin",
		"--kernel", im.Kernel, "--initrd", im.Initrd, "--append", im.Append("{name}"),
		"--ready", standin.ReadyLine+` name=\S+ ip=10\.[\s\S]*`+standin.Prompt,
		"--nic", "e1000", "--arch", "amd64",
		"--setup", "fossil+auth:"+listen, "--setup", "fossil:"+listen)
	cmd.Env = append(os.Environ(), standinEnv()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gridlord init (stand-ins): %v\n%s", err, out)
	}
}

// standinEnv is the environment of the CLI and the engine it starts: a
// venti on a free loopback port, QEMU under TCG.
func standinEnv() []string {
	return []string{"GRIDLORD_VENTI_ADDR=127.0.0.1:0", qemu.EnvAccel + "=tcg"}
}

// TestStandinWindowFlows drives the real window over a grid of stand-in
// guests as a person does, each step checked on the screen and through
// gridfs: one click on cpu1 starts fossil1 then cpu1; the pointer resting
// on a card shows its live figures in a tooltip; a double-click opens
// cpu1's console tab, where a typed line runs; the docked console pane
// (Ctrl+J) runs a typed line too; the events pane (Ctrl+L) shows the
// engine's log and its filter empties it; a fossil+auth dragged from the
// palette lands where it is dropped, its handle dragged onto the venti
// wires it, and cpu1's handle dragged onto it rewires cpu1; right-click →
// Stop, → Clone… makes a clone through the wizard, → Reset identity… gives
// the clone a new host owner and password; Ctrl+R starts cpu1 on its new
// root; the window closed and opened again shows the same grid.
// Screenshots: artifacts/standin-*.png.
func TestStandinWindowFlows(t *testing.T) {
	bin := gridlordBinary(t)
	s := newScreen(t)
	base := shortTemp(t, "gls")
	dir := filepath.Join(base, "g")
	t.Cleanup(func() { cleanupGrid(t, dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	standinGrid(t, ctx, bin, dir)
	first := startGUIEnv(t, s, bin, standinEnv(), "-grid", dir, "-venti-addr", "127.0.0.1:0")
	c := dialEngine(t, ctx, dir)

	var before image.Image
	for deadline := time.Now().Add(30 * time.Second); ; {
		before = s.shot("standin-before.png")
		if countColour(before, cpuColour) > 3000 && badge(before, card(t, before, "cpu1", cpuColour)) == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the window never showed cpu1 stopped")
		}
		time.Sleep(500 * time.Millisecond)
	}
	cpu := card(t, before, "cpu1", cpuColour)
	fossil := card(t, before, "fossil1", fossilColour)
	name := image.Pt(cpu.Min.X+cpu.Dx()/3, cpu.Min.Y+cpu.Dy()/2)

	// One click: fossil1, then cpu1, running; the badges turn green.
	s.click(name, 1)
	waitStates(t, s, ctx, c, map[string]string{"fossil1": "running", "cpu1": "running"}, 3*time.Minute)
	waitScreen(t, s, "standin-running.png", 20*time.Second, "fossil1 and cpu1 badges running", func(img image.Image) bool {
		return badge(img, fossil) == "running" && badge(img, cpu) == "running"
	})

	// The pointer resting on fossil1's card shows its tooltip with the
	// live figures of its QEMU, below the pointer.
	rest := image.Pt(fossil.Min.X+20, fossil.Max.Y-6)
	tip := image.Rect(rest.X+14, rest.Y+18, rest.X+234, rest.Y+58)
	plain := textPixels(waitScreen(t, s, "standin-notip.png", 5*time.Second, "the canvas", func(image.Image) bool { return true }), tip)
	s.xdo("mousemove", strconv.Itoa(rest.X), strconv.Itoa(rest.Y))
	tipped := waitScreen(t, s, "standin-tooltip.png", 10*time.Second, "fossil1's tooltip", func(img image.Image) bool {
		return textPixels(img, tip) > plain+150
	})
	t.Logf("tooltip: %d text pixels under the pointer, %d before it rested there", textPixels(tipped, tip), plain)
	s.xdo("mousemove", "600", "450") // off the cards: the tooltip goes

	// Double-click: cpu1's console takes the keyboard; a typed line runs in
	// the guest's shell and its output is in the node's log.
	s.doubleClick(name)
	time.Sleep(2 * time.Second)
	consoleLine(t, s, ctx, c, "cpu1", "echo typed-$((6*7))", "typed-42", "standin-console.png")

	// The docked console: right-click cpu1 selects it (Escape closes the
	// menu), Ctrl+J opens the pane below the canvas on its console; a line
	// typed there runs in the guest.
	selectNode(s, name)
	s.xdo("key", "ctrl+j")
	time.Sleep(time.Second)
	s.click(image.Pt(500, 490), 1) // the line entry under the console
	s.xdo("type", "--delay", "40", "echo docked-$((2*21))")
	s.xdo("key", "Return")
	s.shot("standin-dock-typed.png")
	waitLog(t, ctx, c, "cpu1", "docked-42")
	docked := s.shot("standin-dock.png")
	if _, n := region(docked, image.Rect(0, 0, 1000, 330), cpuColour); n < 3000 {
		t.Errorf("with the pane open the canvas shows %d pixels of cpu1's card, want the card above the pane", n)
	}

	// The events pane (Ctrl+L): the engine's log, filterable. Its text
	// fills the pane; a filter no event matches empties it.
	s.xdo("key", "ctrl+l")
	pane := image.Rect(0, 420, 1000, 510) // the list under the filter row
	events := waitScreen(t, s, "standin-events.png", 10*time.Second, "the events pane's lines", func(img image.Image) bool {
		// The Events tab is the selected one (its underline) and lines fill it.
		_, under := region(img, image.Rect(110, 366, 190, 380), primaryColour)
		return under > 20 && textPixels(img, pane) > 500
	})
	s.click(image.Pt(300, 395), 1)
	s.xdo("type", "--delay", "20", "no-such-event-xyz")
	filtered := waitScreen(t, s, "standin-events-filtered.png", 10*time.Second, "the events pane filtered to nothing", func(img image.Image) bool {
		return textPixels(img, pane) < textPixels(events, pane)/4
	})
	t.Logf("events pane: %d text pixels, %d with a filter that matches nothing", textPixels(events, pane), textPixels(filtered, pane))
	s.xdo("key", "ctrl+l") // the pane closes; the canvas has the window again
	time.Sleep(time.Second)

	// From the palette: "fossil+auth" dragged onto the canvas below
	// fossil1 adds a node there (named by the engine); its handle dragged
	// onto the venti wires its archive; cpu1's handle dragged onto it
	// rewires cpu1's root in one drag.
	g := readGrid(t, ctx, c)
	origin := cpu.Min.Sub(image.Pt(int(g.Node("cpu1").Position.X), int(g.Node("cpu1").Position.Y)))
	f1 := g.Node("fossil1")
	x2, y2 := f1.Position.X, f1.Position.Y+150
	s.drag(image.Pt(52, 297), image.Pt(int(x2)+85, int(y2)+32).Add(origin))
	g = waitGrid(t, s, ctx, c, 20*time.Second, "a node added from the palette", func(ng *grid.Grid) bool { return len(ng.Nodes) == len(g.Nodes)+1 })
	added := g.Nodes[len(g.Nodes)-1]
	if added.Kind != grid.KindFossilAuth {
		t.Fatalf("the palette's fossil+auth added %s, a %s", added.Name, added.Kind)
	}
	if dx, dy := added.Position.X-x2, added.Position.Y-y2; dx*dx+dy*dy > 16*16 {
		t.Errorf("%s was dropped at %v,%v but placed at %v,%v", added.Name, x2, y2, added.Position.X, added.Position.Y)
	}
	f2name := added.Name
	f2 := image.Rect(int(added.Position.X), int(added.Position.Y), int(added.Position.X)+170, int(added.Position.Y)+64).Add(origin)
	waitScreen(t, s, "standin-fossil2.png", 20*time.Second, f2name+"'s card", func(img image.Image) bool {
		_, n := region(img, f2, fossilColour)
		return n > 3000
	})
	venti := card(t, before, "venti", ventiColour)
	s.drag(image.Pt(f2.Max.X-11, f2.Min.Y+11), image.Pt(venti.Min.X+venti.Dx()/2, venti.Min.Y+venti.Dy()/2))
	waitGrid(t, s, ctx, c, 20*time.Second, f2name+" archiving to the venti", func(g *grid.Grid) bool {
		v := g.Target(g.Node(f2name), grid.LinkArchive)
		return v != nil && v.Name == "venti"
	})
	s.drag(image.Pt(cpu.Max.X-11, cpu.Min.Y+11), image.Pt(f2.Min.X+f2.Dx()/2, f2.Min.Y+f2.Dy()/2))
	waitGrid(t, s, ctx, c, 20*time.Second, "cpu1 rooted on fossil2", func(g *grid.Grid) bool {
		r := g.Target(g.Node("cpu1"), grid.LinkRoot)
		return r != nil && r.Name == f2name
	})
	rewired := s.shot("standin-rewired.png")
	mid := image.Pt((cpu.Min.X+cpu.Max.X+f2.Min.X+f2.Max.X)/4, (cpu.Min.Y+cpu.Max.Y+f2.Min.Y+f2.Max.Y)/4)
	if _, n := region(rewired, image.Rectangle{mid, mid}.Inset(-12), linkColour); n < 20 {
		t.Errorf("no link drawn between cpu1 and fossil2 (around %v)", mid)
	}

	// Right-click → Stop: cpu1 halts (its disk is copied while stopped).
	menuItem(s, name, "Stop")
	waitStates(t, s, ctx, c, map[string]string{"cpu1": "stopped"}, time.Minute)

	// Right-click → Clone…: the wizard opens on cpu1 with its role and
	// links; its Clone button adds cpu2, rooted on fossil2 like cpu1.
	nodes := len(readGrid(t, ctx, c).Nodes)
	menuItem(s, name, "Clone…")
	dlg := waitDialog(t, s, "standin-clone.png")
	s.click(primaryButton(t, dlg), 1)
	g = waitGrid(t, s, ctx, c, 30*time.Second, "a clone of cpu1", func(g *grid.Grid) bool { return len(g.Nodes) == nodes+1 })
	clone := g.Nodes[len(g.Nodes)-1]
	if clone.Kind != grid.KindCPU {
		t.Fatalf("the clone %s is a %s, want cpu", clone.Name, clone.Kind)
	}
	if r := g.Target(clone, grid.LinkRoot); r == nil || r.Name != f2name {
		t.Errorf("the clone %s roots from %v, want %s (cpu1's root)", clone.Name, r, f2name)
	}
	cloneCard := image.Rect(int(clone.Position.X), int(clone.Position.Y), int(clone.Position.X)+170, int(clone.Position.Y)+64).Add(origin)
	waitScreen(t, s, "standin-cloned.png", 20*time.Second, "the clone's card, stopped", func(img image.Image) bool {
		_, n := region(img, cloneCard, cpuColour)
		return n > 3000 && badge(img, cloneCard) == "stopped"
	})

	// Right-click the clone → Reset identity…: a new host owner and
	// password, typed into the wizard's fields (Tab moves between them as
	// in any form); the stand-ins have no keyfs, so that box is cleared.
	cloneName := image.Pt(cloneCard.Min.X+cloneCard.Dx()/3, cloneCard.Min.Y+cloneCard.Dy()/2)
	menuItem(s, cloneName, "Reset identity…")
	time.Sleep(time.Second) // the wizard opens; its Reset button waits for good passwords
	fillReset(s, "bob", "s3cret-pw", false)
	dlg = waitDialog(t, s, "standin-reset-filled.png")
	s.click(primaryButton(t, dlg), 1)
	waitGrid(t, s, ctx, c, 30*time.Second, clone.Name+" owned by bob", func(g *grid.Grid) bool {
		n := g.Node(clone.Name)
		return n != nil && n.User == "bob"
	})
	if g := readGrid(t, ctx, c); g.Node("cpu1").User == "bob" {
		t.Error("the reset of the clone changed cpu1's host owner")
	}
	s.shot("standin-reset-done.png")

	// The keyboard: cpu1 selected (right-click, Escape), Ctrl+R starts it
	// again, now on its new root (which starts first).
	selectNode(s, name)
	s.xdo("key", "ctrl+r")
	waitStates(t, s, ctx, c, map[string]string{f2name: "running", "cpu1": "running"}, 3*time.Minute)

	// Ctrl+E stops the selected cpu1; Ctrl+T then opens its console (the
	// tab of the first boot) while it is stopped; Ctrl+R starts it, and
	// the tab follows the new boot: a line typed in it runs in the new
	// boot's shell.
	s.xdo("key", "ctrl+e")
	waitStates(t, s, ctx, c, map[string]string{"cpu1": "stopped"}, time.Minute)
	s.xdo("key", "ctrl+t")
	time.Sleep(time.Second)
	s.shot("standin-console-stopped.png")
	s.xdo("key", "ctrl+r")
	waitStates(t, s, ctx, c, map[string]string{"cpu1": "running"}, 3*time.Minute)
	time.Sleep(2 * time.Second)
	consoleLine(t, s, ctx, c, "cpu1", "echo reboot-$((5*5))", "reboot-25", "standin-console-newboot.png")

	// Ctrl+Delete on the selected, stopped clone asks first; its Delete
	// removes it.
	selectNode(s, cloneName)
	s.xdo("key", "ctrl+Delete")
	dlg = waitDialog(t, s, "standin-delete.png")
	s.click(primaryButton(t, dlg), 1)
	waitGrid(t, s, ctx, c, 30*time.Second, clone.Name+" deleted", func(g *grid.Grid) bool { return g.Node(clone.Name) == nil })
	waitScreen(t, s, "standin-deleted.png", 20*time.Second, "the clone's card gone", func(img image.Image) bool {
		_, n := region(img, cloneCard, cpuColour)
		return n < 500
	})

	// Close and reopen: the engine kept the grid; the same state is drawn
	// (the clone deleted).
	first.stop()
	second := startGUIEnv(t, s, bin, standinEnv(), "-grid", dir, "-venti-addr", "127.0.0.1:0")
	defer second.kill()
	waitScreen(t, s, "standin-reopened.png", 30*time.Second, "the same grid after reopening", func(img image.Image) bool {
		_, nf2 := region(img, f2, fossilColour)
		_, nl := region(img, image.Rectangle{mid, mid}.Inset(-12), linkColour)
		_, nclone := region(img, cloneCard, cpuColour)
		return badge(img, fossil) == "running" && badge(img, cpu) == "running" && nclone < 500 && nf2 > 3000 && nl >= 20
	})
}

// consoleLine types line into the console tab that has the keyboard, as
// a person does, waits until node's log shows want, keeps the screenshot
// as shot and goes back to the grid tab.
func consoleLine(t *testing.T, s *screen, ctx context.Context, c *gridfs.Client, node, line, want, shot string) {
	t.Helper()
	s.xdo("type", "--delay", "40", line)
	s.xdo("key", "Return")
	waitLog(t, ctx, c, node, want)
	s.shot(shot)
	s.click(image.Pt(40, 66), 1) // the grid tab
	time.Sleep(time.Second)
}

// selectNode selects the card under p as a person does without starting
// anything: a right-click (which selects it), then Escape for its menu.
func selectNode(s *screen, p image.Point) {
	s.click(p, 3)
	time.Sleep(300 * time.Millisecond)
	s.xdo("key", "Escape")
}

// waitStates waits until every named node is in its wanted state (read
// through gridfs), failing at once if one fails; on failure the screen is
// kept as failed.png.
func waitStates(t *testing.T, s *screen, ctx context.Context, c *gridfs.Client, want map[string]string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done := true
		for n, w := range want {
			st, err := nodeState(ctx, c, n)
			if err != nil {
				t.Fatalf("read %s's status: %v", n, err)
			}
			if st == "failed" {
				b, _ := c.ReadFile(ctx, "nodes/"+n+"/status")
				t.Fatalf("%s failed: %s", n, b)
			}
			done = done && st == w
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			s.shot("failed.png")
			t.Fatalf("nodes did not reach %v within %v", want, within)
		}
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		c.WaitEvent(wctx)
		wcancel()
	}
}

// waitScreen photographs the screen until ok holds of the picture, which
// it returns; after within it fails saying what it waited for.
func waitScreen(t *testing.T, s *screen, shot string, within time.Duration, what string, ok func(image.Image) bool) image.Image {
	t.Helper()
	for deadline := time.Now().Add(within); ; {
		img := s.shot(shot)
		if ok(img) {
			return img
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %s (see %s)", what, shot)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitGrid reads the grid through gridfs until ok holds of it; on failure
// the screen is kept as failed.png.
func waitGrid(t *testing.T, s *screen, ctx context.Context, c *gridfs.Client, within time.Duration, what string, ok func(*grid.Grid) bool) *grid.Grid {
	t.Helper()
	for deadline := time.Now().Add(within); ; {
		g := readGrid(t, ctx, c)
		if ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			s.shot("failed.png")
			t.Fatalf("the grid never had %s", what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
