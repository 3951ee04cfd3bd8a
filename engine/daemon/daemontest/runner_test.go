package daemontest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gridlord/engine/daemon"
	"gridlord/engine/daemon/daemontest"
)

// TestStartStop: the real engine boots the grid on fake VMs to running
// (prompt and every ReadyPorts listener), types the ndb entries, and stops
// fossil with fshalt.
func TestStartStop(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := g.Engine.Ctl(ctx, []string{"up"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("up took %v: some wait timed out", d)
	}
	for _, n := range []string{"fossil1", "cpu1"} {
		st, err := g.Engine.NodeStatus(n)
		if err != nil || !strings.HasPrefix(st, "running ") || strings.Contains(st, "pid=0") {
			t.Errorf("%s: %q, %v; want running with a pid", n, st, err)
		}
	}
	if typed := strings.Join(g.Runner.Typed("fossil1"), "\n"); !strings.Contains(typed, "/lib/ndb/local") {
		t.Errorf("fossil1's console got no ndb update:\n%s", typed)
	}
	if err := g.Engine.Ctl(ctx, []string{"down"}); err != nil {
		t.Fatal(err)
	}
	if typed := g.Runner.Typed("fossil1"); typed[len(typed)-1] != "fshalt" {
		t.Errorf("fossil1 was not halted with fshalt: %q", typed)
	}
	for _, n := range []string{"fossil1", "cpu1"} {
		if st, _ := g.Engine.NodeStatus(n); !strings.HasPrefix(st, "stopped ") {
			t.Errorf("%s after down: %q", n, st)
		}
	}
	if got, want := strings.Join(g.Runner.Calls(), ","), "start fossil1,start cpu1,stop cpu1,stop fossil1"; got != want {
		t.Errorf("runner calls %s, want %s", got, want)
	}
}

// TestRenameDuringStart: the engine follows a starting node by its ID, so
// renaming it mid-boot neither fails the start nor loses the node.
func TestRenameDuringStart(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{Boot: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Engine.NodeCtl(ctx, "fossil1", []string{"start"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Engine.NodeCtl(ctx, "cpu1", []string{"start"}) }()
	for {
		st, _ := g.Engine.NodeStatus("cpu1")
		if strings.HasPrefix(st, "starting ") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := g.Engine.Ctl(ctx, []string{"rename", "cpu1", "term1"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("start of cpu1 renamed term1 meanwhile: %v", err)
	}
	if st, err := g.Engine.NodeStatus("term1"); err != nil || !strings.HasPrefix(st, "running ") {
		t.Errorf("term1: %q, %v", st, err)
	}
}

// TestCrashAndAdopt: a VM that dies on its own shows as stopped with the
// reason, through the runner's state callback; VMs outlive their engine and
// the next engine on the grid re-adopts them as running.
func TestCrashAndAdopt(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Engine.Ctl(ctx, []string{"up"}); err != nil {
		t.Fatal(err)
	}
	if err := g.Runner.Crash("cpu1"); err != nil {
		t.Fatal(err)
	}
	for {
		st, _ := g.Engine.NodeStatus("cpu1")
		if strings.HasPrefix(st, "stopped ") && strings.Contains(st, "ended on its own") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("cpu1 after its VM died: %q", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := g.Engine.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := daemon.Open(ctx, g.Dir, daemon.Options{VentiAddr: "127.0.0.1:0", NewRunner: g.Runner.New})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if st, _ := e2.NodeStatus("fossil1"); !strings.HasPrefix(st, "running ") || strings.Contains(st, "pid=0") {
		t.Errorf("fossil1 in the next engine: %q, want re-adopted and running", st)
	}
	if st, _ := e2.NodeStatus("cpu1"); !strings.HasPrefix(st, "stopped ") {
		t.Errorf("cpu1 (dead) in the next engine: %q", st)
	}
}
