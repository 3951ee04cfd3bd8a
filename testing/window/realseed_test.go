package window

import (
	"context"
	"image"
	"path/filepath"
	"testing"
	"time"

	"gridlord/engine/gridfs"
	"gridlord/testing/testenv"
)

// TestOneClickBootsRealSeed is issue 12's promise as a person meets it: a
// fresh data directory, the window opened on it (which starts the grid's
// engine and makes the default grid on the shipped 9legacy seed), one
// click on cpu1's card, and fossil1 then cpu1 boot real Plan 9 to running.
// The click is a real pointer click (xdotool) on the card found on the
// screenshot by its colour; the result is read from the engine through
// gridfs and from the screen (badge colours, links). Screenshots:
// artifacts/real-seed-{before,during,after}.png.
func TestOneClickBootsRealSeed(t *testing.T) {
	testenv.Tool(t, "qemu-system-i386")
	bin := gridlordBinary(t)
	s := newScreen(t)
	data := shortTemp(t, "glr")
	dir := filepath.Join(data, "grids", "default")
	t.Cleanup(func() { cleanupGrid(t, dir) })
	startGUI(t, s, bin, "-data", data, "-venti-addr", "127.0.0.1:0")

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := dialEngine(t, ctx, dir)
	for _, n := range []string{"fossil1", "cpu1"} {
		if st, err := nodeState(ctx, c, n); err != nil || st != "stopped" {
			t.Fatalf("fresh grid: %s is %q (%v), want stopped", n, st, err)
		}
	}

	// The screen before: three cards, every VM stopped, two links.
	var before image.Image
	for deadline := time.Now().Add(30 * time.Second); ; {
		before = s.shot("real-seed-before.png")
		if countColour(before, cpuColour) > 3000 && badge(before, card(t, before, "cpu1", cpuColour)) == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the window never showed cpu1 stopped (badge %q)", badge(before, card(t, before, "cpu1", cpuColour)))
		}
		time.Sleep(time.Second)
	}
	cpu := card(t, before, "cpu1", cpuColour)
	fossil := card(t, before, "fossil1", fossilColour)
	if got := badge(before, fossil); got != "stopped" {
		t.Errorf("before the click fossil1's badge is %q, want stopped", got)
	}
	if n := countColour(before, linkColour); n < 40 {
		t.Errorf("before the click: %d pixels of link colour, want the two links drawn", n)
	}

	// One click, on the card's name (left half: the link handle is at the
	// top right).
	s.click(image.Pt(cpu.Min.X+cpu.Dx()/3, cpu.Min.Y+cpu.Dy()/2), 1)
	start := time.Now()

	// The engine starts fossil1 first, then cpu1; both must reach running.
	// Under TCG on a loaded machine this takes minutes.
	var during bool
	want := map[string]bool{"fossil1": false, "cpu1": false}
	for !want["fossil1"] || !want["cpu1"] {
		for n := range want {
			st, err := nodeState(ctx, c, n)
			if err != nil {
				t.Fatalf("read %s's status: %v", n, err)
			}
			switch st {
			case "failed":
				b, _ := c.ReadFile(ctx, "nodes/"+n+"/status")
				s.shot("real-seed-failed.png")
				t.Fatalf("%s failed %v after the click: %s", n, time.Since(start).Round(time.Second), b)
			case "starting":
				if !during {
					// The screen follows: the starting node's badge turns
					// yellow (the engine's events redraw the window).
					box := map[string]image.Rectangle{"fossil1": fossil, "cpu1": cpu}[n]
					for deadline := time.Now().Add(15 * time.Second); ; {
						img := s.shot("real-seed-during.png")
						if b := badge(img, box); b == "starting" || b == "running" {
							t.Logf("%s starting %v after the click; the screen shows %s %s", n, time.Since(start).Round(time.Second), n, b)
							break
						}
						if time.Now().After(deadline) {
							t.Errorf("the engine says %s is starting but the window still shows %q", n, badge(img, box))
							break
						}
						time.Sleep(500 * time.Millisecond)
					}
					during = true
				}
			case "running":
				if !want[n] {
					t.Logf("%s running %v after the click", n, time.Since(start).Round(time.Second))
				}
				want[n] = true
			}
		}
		if !want["fossil1"] && want["cpu1"] {
			t.Fatal("cpu1 ran before fossil1, its root")
		}
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		c.WaitEvent(wctx)
		wcancel()
		if ctx.Err() != nil {
			s.shot("real-seed-timeout.png")
			t.Fatalf("fossil1 and cpu1 did not both reach running within %v of the click: %v", time.Since(start).Round(time.Second), want)
		}
	}
	if !during {
		t.Error("never saw a node starting")
	}

	// The screen after: both badges running (the window follows the
	// engine's events; give it a moment to repaint).
	var after image.Image
	for deadline := time.Now().Add(20 * time.Second); ; {
		after = s.shot("real-seed-after.png")
		if badge(after, card(t, after, "fossil1", fossilColour)) == "running" && badge(after, card(t, after, "cpu1", cpuColour)) == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the window does not show both running: fossil1 %q, cpu1 %q",
				badge(after, card(t, after, "fossil1", fossilColour)), badge(after, card(t, after, "cpu1", cpuColour)))
		}
		time.Sleep(time.Second)
	}
	if n := countColour(after, linkColour); n < 40 {
		t.Errorf("after the boot: %d pixels of link colour, want the two links drawn", n)
	}
	logEngineTail(t, ctx, c)
}

// logEngineTail logs the last lines of cpu1's console, to show what the
// real guest printed.
func logEngineTail(t *testing.T, ctx context.Context, c *gridfs.Client) {
	b, err := c.ReadFile(ctx, "nodes/cpu1/log")
	if err != nil {
		t.Logf("cpu1 log: %v", err)
		return
	}
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	t.Logf("cpu1 console (tail):\n%s", b)
}
