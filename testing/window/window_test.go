// Package window tests the real Gridlord window: the gridlord binary built
// with cgo and GLFW, on a real X server (Xvfb), photographed with
// ImageMagick's import.
package window

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"gridlord/testing/testenv"
)

// repoRoot is the module root, two levels above this file's package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// artifactDir is where screenshots are kept for people to look at:
// $GRIDLORD_ARTIFACTS, else artifacts/ at the repository root.
func artifactDir(t *testing.T) string {
	d := os.Getenv("GRIDLORD_ARTIFACTS")
	if d == "" {
		d = filepath.Join(repoRoot(t), "artifacts")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// startXvfb starts an X server on a free display number and returns it.
func startXvfb(t *testing.T) string {
	xvfb := testenv.Tool(t, "Xvfb")
	for n := 90; n < 120; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			continue
		}
		display := fmt.Sprintf(":%d", n)
		cmd := exec.Command(xvfb, display, "-screen", "0", "1024x700x24", "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			t.Fatalf("start Xvfb: %v", err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
				return display
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("Xvfb on %s did not come up", display)
	}
	t.Fatal("no free X display number")
	return ""
}

func TestRealWindowShowsDefaultGrid(t *testing.T) {
	testenv.Tool(t, "gcc")
	importCmd := testenv.Tool(t, "import")
	xwininfo := testenv.Tool(t, "xwininfo")
	display := startXvfb(t)

	bin := filepath.Join(t.TempDir(), "gridlord")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gridlord")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gridlord: %v\n%s", err, out)
	}

	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gui := exec.CommandContext(ctx, bin, "gui", "-data", data, "-venti-addr", "127.0.0.1:0")
	gui.Env = append(os.Environ(), "DISPLAY="+display, "LANG=en_US.UTF-8")
	var logs strings.Builder
	gui.Stdout, gui.Stderr = &logs, &logs
	if err := gui.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = gui.Wait(); close(exited) }()
	defer func() { gui.Process.Kill(); <-exited; t.Logf("gridlord output:\n%s", logs.String()) }()

	// Wait for the window to be mapped, then give it a moment to paint.
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _ := exec.Command(xwininfo, "-display", display, "-root", "-tree").Output()
		if strings.Contains(string(out), `"Gridlord"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Gridlord window appeared on %s; windows:\n%s", display, out)
		}
		select {
		case <-exited:
			t.Fatalf("gridlord exited (%v) before its window appeared", exitErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	time.Sleep(3 * time.Second)

	shot := filepath.Join(artifactDir(t), "default-grid.png")
	if out, err := exec.Command(importCmd, "-display", display, "-window", "root", shot).CombinedOutput(); err != nil {
		t.Fatalf("screenshot: %v\n%s", err, out)
	}
	t.Logf("screenshot saved to %s", shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	// Each node kind's card has its own colour (ui/card.go, assets/*.svg);
	// a card is 150×64 pixels, so each colour must cover a good area.
	for kind, c := range map[string]color.NRGBA{
		"venti":  {0x7b, 0x4f, 0xb8, 0xff},
		"fossil": {0xb8, 0x86, 0x2f, 0xff},
		"cpu":    {0x2f, 0x7f, 0xb8, 0xff},
	} {
		if n := countColour(img, c); n < 3000 {
			t.Errorf("screenshot has %d pixels of the %s card colour, want at least 3000 (is the window blank?)", n, kind)
		}
	}
}

// countColour counts the pixels within a small distance of c.
func countColour(img image.Image, c color.NRGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, c.R) && near(g>>8, c.G) && near(bl>>8, c.B) {
				n++
			}
		}
	}
	return n
}

func near(v uint32, want uint8) bool {
	d := int(v) - int(want)
	return d >= -6 && d <= 6
}
