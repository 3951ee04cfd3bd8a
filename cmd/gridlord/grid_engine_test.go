package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/grid"
)

// TestCLIOverTheEngine runs the grid commands in this process against the
// real engine with fake VMs (serving the grid's socket, so the CLI attaches
// to it as to any running engine): status, start and stop in dependency
// order, the wiring commands, clone, reset, identity, outbound and the seed
// list, and a refusal's message and exit code.
func TestCLIOverTheEngine(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(want int, args ...string) string {
		t.Helper()
		out, errs, code := runCLI(t, ctx, append(args, "-grid", g.Dir)...)
		if code != want {
			t.Fatalf("gridlord %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errs)
		}
		return out + errs
	}
	line := func(out, node string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, node+" ") {
				return l
			}
		}
		t.Fatalf("no line for %s in:\n%s", node, out)
		return ""
	}
	if l := line(run(0, "status"), "cpu1"); !strings.Contains(l, " stopped ") {
		t.Errorf("status before start: %q", l)
	}
	run(0, "start", "cpu1")
	out := run(0, "status")
	for _, n := range []string{"fossil1", "cpu1"} {
		if l := line(out, n); !strings.Contains(l, " running ") || !strings.Contains(l, "pid=") {
			t.Errorf("status after start cpu1: %q", l)
		}
	}
	if got := strings.Join(g.Runner.Calls(), ","); got != "start fossil1,start cpu1" {
		t.Errorf("runner calls %s", got)
	}
	run(0, "stop", "fossil1")
	if got := strings.Join(g.Runner.Calls()[2:], ","); got != "stop cpu1,stop fossil1" {
		t.Errorf("runner calls after stop fossil1: %s", got)
	}
	if out := run(1, "wire", "venti", "cpu1"); !strings.Contains(out, "venti") {
		t.Errorf("refused wire says %q", out)
	}
	run(0, "clone", "cpu1", "cpu2")
	run(0, "unwire", "cpu2", "fossil1")
	run(0, "wire", "cpu2", "fossil1")
	run(0, "reset", "cpu2")
	run(0, "outbound", "on")
	t.Setenv("PASS", "n3w-grid-pass")
	run(0, "identity", "-keyfs=false", "-u", "glenda", "-authdom", "grid", "cpu2")
	m, err := grid.Load(g.Dir)
	if err != nil {
		t.Fatal(err)
	}
	n := m.Node("cpu2")
	if n == nil || n.User != "glenda" || !m.Network.Outbound || m.Target(n, grid.LinkRoot) == nil {
		t.Errorf("after the commands: cpu2 %+v, outbound %v", n, m.Network.Outbound)
	}
	if out := run(0, "seed", "list"); !strings.Contains(out, daemontest.Seed+" vac:") {
		t.Errorf("seed list: %q", out)
	}
	run(0, "up")
	run(0, "down")
}
