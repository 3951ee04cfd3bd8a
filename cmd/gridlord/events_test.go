package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"gridlord/engine/daemon/daemontest"
)

// TestCLIEvents: gridlord events prints the engine's event log, NODE keeps
// that node's events.
func TestCLIEvents(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, errs, code := runCLI(t, ctx, "start", "cpu1", "-grid", g.Dir); code != 0 {
		t.Fatalf("start: %s", errs)
	}
	out, errs, code := runCLI(t, ctx, "events", "-grid", g.Dir)
	if code != 0 || !strings.Contains(out, " fossil1 INFO node ready") || !strings.Contains(out, " cpu1 INFO node ready") {
		t.Fatalf("gridlord events: exit %d\n%s%s", code, out, errs)
	}
	out, _, _ = runCLI(t, ctx, "events", "-grid", g.Dir, "cpu1")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(l, " cpu1 ") {
			t.Errorf("gridlord events cpu1 prints %q", l)
		}
	}
	if !strings.Contains(out, " cpu1 INFO starting node") {
		t.Errorf("gridlord events cpu1:\n%s", out)
	}
}
