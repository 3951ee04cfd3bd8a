package window

import (
	"bufio"
	"context"
	"errors"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/seedbuild/seedtest"
	"gridlord/testing/testenv"
)

// TestSeedBuildInWindow drives "New seed from a Plan 9 CD" in the real
// window: the palette's New seed… button, the wizard filled from the
// keyboard with a CD image made of the shipped seed's tree, Build. The
// job's row shows the engine's steps as they pass (the real install: its
// installer VM boots and the copy counts bytes) with a progress bar; its
// screenshot is docs/seed-build-progress.png's source. Then Cancel stops
// the install in the engine: the status line says so, no seed is recorded
// and the build's disks are gone.
func TestSeedBuildInWindow(t *testing.T) {
	testenv.Tool(t, "qemu-system-i386")
	bin := gridlordBinary(t)
	iso := seedtest.ISO(t)
	s := newScreen(t)
	data := shortTemp(t, "glb")
	dir := filepath.Join(data, "grids", "default")
	t.Cleanup(func() { cleanupGrid(t, dir) })
	startGUIEnv(t, s, bin, []string{"GRIDLORD_ACCEL=tcg"}, "-data", data, "-venti-addr", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := dialEngine(t, ctx, dir)
	before := waitScreen(t, s, "seedbuild-before.png", 30*time.Second, "the default grid", func(img image.Image) bool {
		return countColour(img, cpuColour) > 3000
	})

	// The palette's button under the kinds (ui/palette.go) opens the
	// wizard, its Build button disabled until the form is filled.
	s.click(newSeedButton, 1)
	middle := image.Rect(250, 100, 750, 500)
	waitScreen(t, s, "seedbuild-wizard.png", 15*time.Second, "the wizard", func(img image.Image) bool {
		return changedPixels(before, img, middle) > middle.Dx()*middle.Dy()/4
	})
	s.xdo("key", "Tab") // Plan 9 CD
	s.xdo("type", "--delay", "20", iso)
	s.xdo("key", "Tab", "Tab", "Tab") // the two choosers, Seed name
	s.xdo("key", "ctrl+a")
	s.xdo("type", "--delay", "30", "cdseed")
	s.xdo("key", "Tab", "Tab", "Tab", "Tab", "Tab") // Install (its two choices), Auth domain, Host owner, Password
	s.xdo("type", "--delay", "30", "s3cret-pw")
	s.xdo("key", "Tab")
	s.xdo("type", "--delay", "30", "s3cret-pw")
	time.Sleep(500 * time.Millisecond)
	filled := waitDialog(t, s, "seedbuild-wizard-filled.png")
	s.click(primaryButton(t, filled), 1)
	start := time.Now()

	// The engine's log says where the build is; the job row shows it.
	events := seedEvents(t, ctx, c, "cdseed", start)
	var steps []string
	var scratch, output string
	for copied := false; !copied; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the event log ended")
			}
			if strings.HasPrefix(ev.What, "seed build started ") {
				_, kv := gridfs.EventAttrs(ev.What)
				scratch, output = kv["scratch"], kv["output"]
			}
			p, ok := gridfs.ParseSeedBuildEvent(ev, "cdseed")
			if !ok {
				continue
			}
			if !p.Done && p.Total == 0 {
				steps = append(steps, p.Step)
			}
			copied = p.Step == "copy" && p.Bytes > 0
		case <-ctx.Done():
			s.shot("seedbuild-timeout.png")
			t.Fatalf("no bytes copied within the test's time; steps seen %q", steps)
		}
	}
	t.Logf("steps %q; the copy counts bytes %v after Build; scratch %s", steps, time.Since(start).Round(time.Second), scratch)
	if strings.Join(steps, ",") != "boot installer,venti,fossil,users,copy" {
		t.Errorf("steps %q, want the recipe's first five in order", steps)
	}
	if _, err := os.Stat(filepath.Join(scratch, "target.qcow2")); scratch == "" || err != nil {
		t.Fatalf("the build's target disk in %q: %v", scratch, err)
	}
	bar := waitScreen(t, s, "seedbuild-progress.png", 20*time.Second, "the job row's progress bar", func(img image.Image) bool {
		return jobBar(img).Dx() >= 20
	})
	fill := jobBar(bar)
	t.Logf("progress bar filled over %v", fill)

	// Cancel, at the right end of the job row (the window is 1000 pixels
	// wide, the button about 85).
	s.click(image.Pt(950, (fill.Min.Y+fill.Max.Y)/2), 1)
	cancelled := time.Now()
	for ended := false; !ended; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the event log ended")
			}
			if p, ok := gridfs.ParseSeedBuildEvent(ev, "cdseed"); ok && p.Step != "copy" {
				t.Errorf("after Cancel the build went on to %s", p.Step)
			}
			ended = strings.HasPrefix(ev.What, "seed build step failed ")
			if ended {
				t.Logf("%v after Cancel: %s", time.Since(cancelled).Round(time.Millisecond), ev.What)
			}
		case <-ctx.Done():
			s.shot("seedbuild-cancel-timeout.png")
			t.Fatal("the build did not end after Cancel")
		}
	}
	waitScreen(t, s, "seedbuild-cancelled.png", 20*time.Second, "the job row gone", func(img image.Image) bool {
		return jobBar(img).Dx() < 20
	})
	waitGrid(t, s, ctx, c, 30*time.Second, "no seed cdseed recorded", func(g *grid.Grid) bool {
		_, err := g.Seed("cdseed")
		return err != nil
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, serr := os.Stat(scratch)
		_, oerr := os.Stat(output)
		if errors.Is(serr, os.ErrNotExist) && errors.Is(oerr, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Cancel the build's scratch %s (%v) or output %s (%v) is left", scratch, serr, output, oerr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, _ := exec.Command("pgrep", "-f", scratch).Output(); len(out) > 0 {
		t.Errorf("processes of the cancelled build still run: %s", out)
	}
}

// newSeedButton is where the palette's New seed… button is in a window
// of the default size.
var newSeedButton = image.Pt(52, 345)

// jobBar is the filled part of a job row's progress bar: the largest patch
// of the primary colour in the screen's bottom two fifths, no taller than a
// row.
func jobBar(img image.Image) image.Rectangle {
	r := img.Bounds()
	bottom := image.Rect(r.Min.X, r.Max.Y-r.Dy()*2/5, r.Max.X, r.Max.Y)
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok {
		return image.Rectangle{}
	}
	b := largestPatch(sub.SubImage(bottom), primaryColour)
	if b.Dy() > 40 {
		return image.Rectangle{}
	}
	return b
}

// seedEvents follows the engine's event log from since and sends the
// events about seed.
func seedEvents(t *testing.T, ctx context.Context, c *gridfs.Client, seed string, since time.Time) <-chan gridfs.Event {
	t.Helper()
	logs, err := c.OpenLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	out := make(chan gridfs.Event, 256)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			ev, err := gridfs.ParseEvent(sc.Text())
			if err == nil && !ev.Time.Before(since.Add(-time.Second)) {
				if _, kv := gridfs.EventAttrs(ev.What); kv["seed"] != seed {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// changedPixels counts the pixels of r that differ between a and b.
func changedPixels(a, b image.Image, r image.Rectangle) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				n++
			}
		}
	}
	return n
}
