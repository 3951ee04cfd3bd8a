package daemontest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gridlord/engine/daemon"
	"gridlord/engine/plan9disk/plan9disktest"
	"gridlord/testing/testenv"
)

// Seed is the seed name of grids made by NewGrid: a small Plan 9-layout
// disk image (plan9disktest.BuildNativeSmall), stored in the grid's venti.
const Seed = "p9small"

// Options configure Open.
type Options struct {
	// Boot is how long the fake VMs take to boot (default 10ms).
	Boot time.Duration
	// Dir is the grid directory; "" makes the default grid (venti,
	// fossil1, cpu1) on the small seed in a fresh short directory.
	Dir string
}

// Grid is a running engine for a test: the real daemon.Engine over a fake
// Runner, serving gridfs on its socket.
type Grid struct {
	Dir    string
	Engine *daemon.Engine
	Runner *Runner
	// Seed is the path of the seed image (in the test's temporary files).
	Seed string
}

// ShortDir is testenv.ShortDir: a temporary directory short enough for
// the unix sockets under it.
func ShortDir(t testing.TB) string { return testenv.ShortDir(t) }

// NewGrid makes the default grid on the small seed in a fresh directory
// and returns it with the seed image's path; the seed is stored in the
// grid's venti when the engine opens (Open).
func NewGrid(t testing.TB) (dir, seed string) {
	t.Helper()
	seed = plan9disktest.BuildNativeSmall(t)
	dir = filepath.Join(ShortDir(t), "g")
	if _, err := daemon.InitGrid(dir, daemon.InitOptions{Seed: Seed, SeedPath: seed}); err != nil {
		t.Fatal(err)
	}
	return dir, seed
}

// Open runs the real engine on a grid with fake VMs and serves its gridfs
// socket (GRIDDIR/engine.sock), as "gridlord engine" does. A grid made by
// NewGrid gets its seed imported. Everything ends with the test.
func Open(t testing.TB, o Options) *Grid {
	t.Helper()
	if o.Boot == 0 {
		o.Boot = 10 * time.Millisecond
	}
	g := &Grid{Dir: o.Dir, Runner: NewRunner(o.Boot)}
	if g.Dir == "" {
		g.Dir, g.Seed = NewGrid(t)
	}
	e, err := daemon.Open(context.Background(), g.Dir, daemon.Options{VentiAddr: "127.0.0.1:0", Log: testenv.Log(t), NewRunner: g.Runner.New})
	if err != nil {
		t.Fatal(err)
	}
	g.Engine = e
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := e.Serve(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("serve gridfs: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-served
		e.Close()
		g.Runner.Shutdown()
	})
	if g.Seed != "" {
		if _, err := e.ImportSeed(context.Background(), Seed, g.Seed, daemon.ImportOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitSocket(t, e.SocketPath())
	return g
}

// waitSocket waits until the gridfs socket exists.
func waitSocket(t testing.TB, path string) {
	t.Helper()
	for range 200 {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the engine never made its socket %s", path)
}
