package apptest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"gridlord/app"
	"gridlord/engine/gridfs"
)

// Serve runs a stand-in engine daemon in this process for the test: a
// Local grid in a fresh directory whose VMs are a Runner's (ticking every
// tick), served over a real gridfs unix socket in that directory, as the
// engine daemon serves its grid. It stops when the test ends.
func Serve(t testing.TB, tick time.Duration) (dir string, l *app.Local, r *Runner) {
	t.Helper()
	dir = t.TempDir()
	r = NewRunner(tick)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := app.OpenLocal(ctx, app.LocalOptions{DataDir: t.TempDir(), GridDir: dir, VentiAddr: "127.0.0.1:0", Runner: r})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := gridfs.Listen(filepath.Join(dir, app.SocketName))
	if err != nil {
		cancel()
		l.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { gridfs.Serve(ctx, ln, &Engine{L: l, R: r}, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done; l.Close() })
	return dir, l, r
}
