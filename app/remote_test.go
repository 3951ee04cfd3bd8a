package app_test

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"gridlord/app"
	"gridlord/engine/daemon"
	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// engineEnv makes the test binary act as "gridlord engine -grid DIR" (see
// TestMain): the real engine with fake VMs.
const engineEnv = "GRIDLORD_APPTEST_ENGINE"

func TestMain(m *testing.M) {
	if os.Getenv(engineEnv) == "1" {
		os.Exit(runEngine())
	}
	os.Exit(m.Run())
}

// runEngine serves the grid named by "-grid DIR" in os.Args with the real
// engine over fake VMs until an interrupt.
func runEngine() int {
	var dir string
	for i, a := range os.Args {
		if a == "-grid" && i+1 < len(os.Args) {
			dir = os.Args[i+1]
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r := daemontest.NewRunner(10 * time.Millisecond)
	e, err := daemon.Open(ctx, dir, daemon.Options{VentiAddr: "127.0.0.1:0", NewRunner: r.New})
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 1
	}
	defer e.Close()
	if err := e.Serve(ctx); err != nil && ctx.Err() == nil {
		os.Stderr.WriteString(err.Error())
		return 1
	}
	return 0
}

// TestRemoteErrorsAndEvents: a refused command comes back with the engine's
// reason, a usage error with the gridfs table's usage, and every change
// reaches Changes.
func TestRemoteErrorsAndEvents(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{})
	ctx := context.Background()
	r, err := app.DialRemote(ctx, g.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := r.Changes(sctx)
	err = r.Ctl(ctx, "wire", "venti", "cpu1")
	var ce *gridfs.CtlError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "venti") {
		t.Fatalf("refused wire through gridfs: %v", err)
	}
	if err := r.Ctl(ctx, "memory", "cpu1"); !errors.As(err, &ce) || ce.Msg != "usage: memory NODE MB" {
		t.Fatalf("memory with one argument: %v", err)
	}
	if err := r.Ctl(ctx, "unwire", "cpu1", "fossil1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("no change event after unwire")
	}
	m, err := grid.Load(g.Dir)
	if err != nil || len(m.Links) != 1 {
		t.Errorf("after unwire the engine's grid: %v links, %v", len(m.Links), err)
	}
}

func TestConnectStartsTheEngine(t *testing.T) {
	dir, _ := daemontest.NewGrid(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(engineEnv, "1")
	ctx := context.Background()
	rb, err := app.Connect(ctx, app.ConnectOptions{GridDir: dir, Engine: exe, Wait: 30 * time.Second})
	os.Unsetenv(engineEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	g, err := rb.Grid(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Nodes) != 3 {
		t.Errorf("started engine serves %d nodes", len(g.Nodes))
	}
	// A second Connect attaches to the running engine instead of starting
	// another (which would fail on the grid's lock).
	rb2, err := app.Connect(ctx, app.ConnectOptions{GridDir: dir, Engine: "/nonexistent/gridlord"})
	if err != nil {
		t.Fatalf("attach to the running engine: %v", err)
	}
	rb2.Close()
	if rb.EnginePID == 0 || rb2.EnginePID != 0 {
		t.Errorf("engine pids: started %d, attached %d", rb.EnginePID, rb2.EnginePID)
	}
	// Stop the engine this test started (it was detached on purpose).
	p, err := os.FindProcess(rb.EnginePID)
	if err == nil {
		if p.Signal(os.Interrupt) != nil {
			p.Kill()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if p.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("the engine did not stop")
}

func TestConnectWithoutEngine(t *testing.T) {
	if _, err := app.Connect(context.Background(), app.ConnectOptions{GridDir: t.TempDir()}); err == nil {
		t.Fatal("connect to nothing succeeded")
	}
}
