package app_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gridlord/app"
	"gridlord/app/apptest"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// engineEnv makes the test binary act as a stand-in engine daemon (see
// TestMain): "gridlord engine -grid DIR" served by apptest.Engine.
const engineEnv = "GRIDLORD_APPTEST_ENGINE"

func TestMain(m *testing.M) {
	if os.Getenv(engineEnv) == "1" {
		os.Exit(runStandInEngine())
	}
	os.Exit(m.Run())
}

// runStandInEngine serves the grid named by "-grid DIR" in os.Args over
// gridfs until SIGTERM or an os.Interrupt.
func runStandInEngine() int {
	var dir string
	for i, a := range os.Args {
		if a == "-grid" && i+1 < len(os.Args) {
			dir = os.Args[i+1]
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r := apptest.NewRunner(10 * time.Millisecond)
	l, err := app.OpenLocal(ctx, app.LocalOptions{DataDir: filepath.Join(dir, "data"), GridDir: dir, VentiAddr: "127.0.0.1:0", Runner: r})
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 1
	}
	defer l.Close()
	ln, err := gridfs.Listen(filepath.Join(dir, app.SocketName))
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 1
	}
	if err := gridfs.Serve(ctx, ln, &apptest.Engine{L: l, R: r}, nil); err != nil && ctx.Err() == nil {
		os.Stderr.WriteString(err.Error())
		return 1
	}
	return 0
}

// serve runs a stand-in engine daemon in this process (apptest.Serve).
func serve(t *testing.T) (dir string, r *apptest.Runner) {
	dir, _, r = apptest.Serve(t, 10*time.Millisecond)
	return dir, r
}

func TestRemoteDrivesTheEngine(t *testing.T) {
	dir, r := serve(t)
	ctx := context.Background()
	rb, err := app.DialRemote(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	a := app.New(rb, nil)
	v, err := a.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Nodes) != 3 || v.Dir != dir {
		t.Fatalf("remote view: %d nodes in %s", len(v.Nodes), v.Dir)
	}
	if verb, err := a.Toggle(ctx, "cpu1"); err != nil || verb != "start" {
		t.Fatalf("toggle through gridfs: %s, %v", verb, err)
	}
	waitState(t, rb, "cpu1", "running")
	if got := strings.Join(r.Calls(), ","); got != "start fossil1,start cpu1" {
		t.Errorf("engine got %q", got)
	}

	// A refused wire comes back with the engine's reason.
	err = rb.Ctl(ctx, "wire", "venti", "cpu1")
	var ce *gridfs.CtlError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "venti") {
		t.Fatalf("refused wire through gridfs: %v", err)
	}
	// A good one changes the engine's grid.json.
	if err := a.Unwire(ctx, "cpu1", "fossil1"); err != nil {
		t.Fatal(err)
	}
	g, err := grid.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Links) != 1 {
		t.Errorf("after unwire the engine's grid has %d links, want 1", len(g.Links))
	}

	c, err := rb.OpenConsole(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	expectConsole(t, c, "cpu1: ready")
	io.WriteString(c, "ls\n")
	expectConsole(t, c, "echo: ls")
	c.Close()

	vs := a.Venti(ctx)
	if vs.Err != "" || !strings.HasPrefix(vs.Addr, "127.0.0.1:") {
		t.Errorf("venti stats through gridfs: %+v", vs)
	}
}

func TestConnectStartsTheEngine(t *testing.T) {
	dir := t.TempDir()
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
	// another (which would fail on the socket).
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
	// Wait until it has exited (it is done writing its files then).
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

func TestStartEngineSwitchesBackend(t *testing.T) {
	dir, _ := serve(t)
	ctx := context.Background()
	// The window starts in-process on the same grid directory...
	l, err := app.OpenLocal(ctx, app.LocalOptions{DataDir: t.TempDir(), GridDir: dir, VentiAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(l, nil)
	if _, err := a.Toggle(ctx, "cpu1"); !errors.Is(err, app.ErrEngineNotRunning) {
		t.Fatalf("in-process toggle: %v", err)
	}
	// ...watches for changes...
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := make(chan struct{}, 100)
	go a.Watch(wctx, func() { changes <- struct{}{} })
	// ...and moves to the engine (already running here, so Connect attaches).
	if err := a.StartEngine(ctx, app.ConnectOptions{GridDir: dir}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Backend().(*app.Remote); !ok {
		t.Fatalf("backend after StartEngine: %T", a.Backend())
	}
	if verb, err := a.Toggle(ctx, "cpu1"); err != nil || verb != "start" {
		t.Fatalf("toggle through the engine: %s, %v", verb, err)
	}
	waitState(t, a.Backend(), "cpu1", "running")
	// The watcher followed the switch: it reports the engine's changes.
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch reported no change after the backend switch")
	}
	a.Close()
}

func TestStartEngineFailureFallsBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := app.OpenLocal(ctx, app.LocalOptions{DataDir: t.TempDir(), GridDir: dir, VentiAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(l, nil)
	reopened := false
	err = a.StartEngine(ctx, app.ConnectOptions{GridDir: dir, Engine: "/nonexistent/gridlord"}, func(ctx context.Context) (app.Backend, error) {
		reopened = true
		return app.OpenLocal(ctx, app.LocalOptions{DataDir: t.TempDir(), GridDir: dir, VentiAddr: "127.0.0.1:0"})
	})
	if err == nil || !reopened {
		t.Fatalf("failed start: err %v, reopened %v", err, reopened)
	}
	if _, err := a.View(ctx); err != nil {
		t.Errorf("the fallback backend does not work: %v", err)
	}
	a.Close()
}

// TestResetIdentityGoesToTheEngine: over the engine daemon, reset identity
// is one /identity command the engine carries out (nvram and keyfs under
// its node locks); the window does not write disks itself, so an engine
// that refuses leaves every disk alone and its reason reaches the caller.
func TestResetIdentityGoesToTheEngine(t *testing.T) {
	dir, _, _ := apptest.Serve(t, 10*time.Millisecond)
	r, err := app.DialRemote(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = app.ResetIdentity(context.Background(), r, app.Identity{User: "bootes", AuthDom: "grid", Password: "n3w-grid-pass", Keyfs: true})
	if err == nil || !strings.Contains(err.Error(), "no nvram") {
		t.Fatalf("reset identity over the engine: %v, want the engine's own refusal", err)
	}
}
