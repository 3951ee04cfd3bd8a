package window

import (
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkColdStart measures, in the real window, the time from starting
// the gridlord process to the first screenshot showing the drawn grid
// (the cpu card's colour on the screen), and, as the same run's baseline,
// to the window being mapped. The window runs the grid's engine in its own
// process (-engine inprocess) on a fresh data directory each time, so the
// figure is the window's and the engine's start, without spawning a
// detached engine (which would outlive the kill). Screenshots are taken as fast
// as ImageMagick's import allows (its cost bounds the resolution).
//
//	GRIDLORD_INTEGRATION=1 go test ./testing/window -run '^$' -bench ColdStart -benchtime 5x
func BenchmarkColdStart(b *testing.B) {
	bin := gridlordBinary(b)
	s := newScreen(b)
	var mapped, drawn time.Duration
	for i := 0; i < b.N; i++ {
		data := b.TempDir()
		shot := filepath.Join(b.TempDir(), "shot.png")
		cmd := exec.Command(bin, "gui", "-engine", "inprocess", "-data", data, "-venti-addr", "127.0.0.1:0")
		cmd.Env = s.env("LANG=en_US.UTF-8")
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var m time.Duration
		for {
			if m == 0 && s.hasWindow("Gridlord") {
				m = time.Since(start)
			}
			if m != 0 && drawnGrid(s, shot) {
				break
			}
			if time.Since(start) > time.Minute {
				cmd.Process.Kill()
				cmd.Wait()
				b.Fatal("no drawn grid within a minute")
			}
		}
		d := time.Since(start)
		cmd.Process.Kill()
		cmd.Wait()
		mapped += m
		drawn += d
	}
	b.ReportMetric(float64(mapped.Milliseconds())/float64(b.N), "ms/mapped")
	b.ReportMetric(float64(drawn.Milliseconds())/float64(b.N), "ms/drawn")
}

// drawnGrid photographs the screen into path and reports whether the cpu
// card shows.
func drawnGrid(s *screen, path string) bool {
	if exec.Command(s.importer, "-display", s.display, "-window", "root", path).Run() != nil {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	img, err := png.Decode(f)
	return err == nil && countColour(img, cpuColour) > 3000
}
