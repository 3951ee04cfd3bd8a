// Package window tests the real Gridlord window as a person uses it: the
// gridlord binary built with cgo and GLFW, on a real X server (Xvfb),
// driven with xdotool (mouse and keyboard), photographed with ImageMagick's
// import, and checked both on the screen (pixel colours of cards, badges
// and links) and through the engine's gridfs. Screenshots are kept in
// artifacts/ for people to look at.
package window

import (
	"bufio"
	"context"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"gridlord/testing/testenv"
)

// repoRoot is the module root, two levels above this file's package.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// artifactDir is where screenshots are kept for people to look at:
// $GRIDLORD_ARTIFACTS, else artifacts/ at the repository root.
func artifactDir(t testing.TB) string {
	d := os.Getenv("GRIDLORD_ARTIFACTS")
	if d == "" {
		d = filepath.Join(repoRoot(t), "artifacts")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// startXvfb starts an X server on a display number it picks itself
// (-displayfd: stale sockets of killed servers are no obstacle) and returns
// the display. It is stopped with SIGTERM at cleanup, so it removes its
// socket.
func startXvfb(t testing.TB) string {
	xvfb := testenv.Tool(t, "Xvfb")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(xvfb, "-displayfd", "3", "-screen", "0", "1024x700x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatalf("start Xvfb: %v", err)
	}
	w.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	line := make(chan string, 1)
	go func() {
		b, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(b)
	}()
	select {
	case n := <-line:
		if n == "" {
			t.Fatal("Xvfb exited without naming its display")
		}
		return ":" + n
	case <-time.After(30 * time.Second):
		t.Fatal("Xvfb did not name its display within 30 s")
	}
	return ""
}

// TestRealWindowShowsDefaultGrid opens the window on a fresh data
// directory: it starts the grid's engine and draws the default grid, a
// card per node in its kind's colour.
func TestRealWindowShowsDefaultGrid(t *testing.T) {
	bin := gridlordBinary(t)
	s := newScreen(t)
	data := shortTemp(t, "glw")
	t.Cleanup(func() { cleanupGrid(t, filepath.Join(data, "grids", "default")) })
	startGUI(t, s, bin, "-data", data, "-venti-addr", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dialEngine(t, ctx, filepath.Join(data, "grids", "default"))
	time.Sleep(2 * time.Second) // let it paint
	img := s.shot("default-grid.png")
	for kind, c := range map[string]color.NRGBA{"venti": ventiColour, "fossil": fossilColour, "cpu": cpuColour} {
		if n := countColour(img, c); n < 3000 {
			t.Errorf("screenshot has %d pixels of the %s card colour, want at least 3000 (is the window blank?)", n, kind)
		}
	}
}
