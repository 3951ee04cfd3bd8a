package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// TestEventLogOverGridfs: the engine's starts, readiness, ndb writes and
// stops are events in /log, each naming its node.
func TestEventLogOverGridfs(t *testing.T) {
	ctx := context.Background()
	c := dialFake(t)
	if err := c.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	if err := c.NodeCtl(ctx, "cpu1", "stop"); err != nil {
		t.Fatal(err)
	}
	var events []gridfs.Event
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := c.ReadFile(ctx, "log")
		if err != nil {
			t.Fatal(err)
		}
		events = events[:0]
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			e, err := gridfs.ParseEvent(line)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, e)
		}
		if has(events, "cpu1", "node stopped") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range [][2]string{{"fossil1", "starting node"}, {"fossil1", "node ready"}, {"fossil1", "wrote the grid's ndb entries"}, {"cpu1", "node ready"}, {"cpu1", "node stopped"}} {
		if !has(events, w[0], w[1]) {
			t.Errorf("no event %q for %s in /log: %+v", w[1], w[0], events)
		}
	}
	for _, e := range events {
		if strings.Contains(e.What, "grid=") {
			t.Errorf("event repeats the grid: %+v", e)
		}
	}
}

func has(events []gridfs.Event, node, what string) bool {
	for _, e := range events {
		if e.Node == node && strings.HasPrefix(e.What, what) {
			return true
		}
	}
	return false
}

// TestStatusFiguresOverGridfs: a running node's status has its figures
// (the fake VMs report their own), a stopped one's none.
func TestStatusFiguresOverGridfs(t *testing.T) {
	ctx := context.Background()
	c := dialFake(t)
	if err := c.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	b, err := c.ReadFile(ctx, "nodes/cpu1/status")
	if err != nil {
		t.Fatal(err)
	}
	s, err := gridfs.ParseNodeStatus(string(b))
	if err != nil || !s.Measured || s.CPU != daemontest.FakeCPU || s.RSS < 32<<20 {
		t.Errorf("running cpu1's status %q: %+v %v", b, s, err)
	}
	if err := c.NodeCtl(ctx, "cpu1", "stop"); err != nil {
		t.Fatal(err)
	}
	b, _ = c.ReadFile(ctx, "nodes/cpu1/status")
	if s, _ := gridfs.ParseNodeStatus(string(b)); s.Measured {
		t.Errorf("stopped cpu1's status has figures: %q", b)
	}
}

// dialFake is a gridfs client of an engine with fake VMs.
func dialFake(t *testing.T) *gridfs.Client {
	t.Helper()
	g := daemontest.Open(t, daemontest.Options{})
	c, err := gridfs.Dial(context.Background(), g.Dir+"/"+grid.SocketName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
