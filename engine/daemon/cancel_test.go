package daemon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// TestCancellableCommandStopsInTheEngine: a command written under a
// gridfs.Cancellable context is cancelled in the engine when the context
// ends (a start stops and powers its VM off), while an ordinary one
// outlives its client.
func TestCancellableCommandStopsInTheEngine(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{Boot: 30 * time.Second})
	c, err := gridfs.Dial(context.Background(), g.Dir+"/"+grid.SocketName)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	state := func(node string) string {
		b, err := c.ReadFile(context.Background(), "nodes/"+node+"/status")
		if err != nil {
			t.Fatal(err)
		}
		s, err := gridfs.ParseNodeStatus(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return s.State
	}
	ctx, cancel := context.WithTimeout(gridfs.Cancellable(context.Background()), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = c.NodeCtl(ctx, "fossil1", "start")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 5*time.Second {
		t.Fatalf("cancelled start returned %v after %v", err, time.Since(t0))
	}
	deadline := time.Now().Add(10 * time.Second)
	for s := state("fossil1"); s == gridfs.StateStarting || s == gridfs.StateRunning; s = state("fossil1") {
		if time.Now().After(deadline) {
			t.Fatalf("fossil1 still %s 10 s after its start was cancelled (boot takes 30 s)", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// An ordinary command keeps going when its caller stops waiting.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := c.NodeCtl(ctx2, "cpu1", "start"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("start returned %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if s := state("fossil1"); s != gridfs.StateStarting {
		t.Errorf("fossil1 %s after an ordinary start of cpu1 whose caller left, want starting", s)
	}
}
