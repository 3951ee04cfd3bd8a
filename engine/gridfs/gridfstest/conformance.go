package gridfstest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// Run is the gridfs conformance suite (in the style of Perkeep's
// storagetest): it drives an engine through its tree only and checks the
// contract of every file and every ctl verb: the tree's files, usage errors
// from the verb tables, refusals that change nothing, and what each command
// does to the model and to node states. newEngine returns a client of a fresh
// engine serving the default grid (the embedded venti, fossil1 and cpu1,
// wired cpu1 → fossil1 → venti) whose VM nodes can start; each subtest
// gets its own.
func Run(t *testing.T, newEngine func(t *testing.T) *gridfs.Client) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"Tree", testTree},
		{"UsageErrors", testUsage},
		{"AddRemove", testAddRemove},
		{"Wiring", testWiring},
		{"Edits", testEdits},
		{"StartStop", testStartStop},
		{"UpDown", testUpDown},
		{"Clone", testClone},
		{"Reset", testReset},
		{"Events", testEvents},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tc.fn(t, &suite{t: t, c: newEngine(t), ctx: ctx})
		})
	}
}

// suite is one subtest's engine and helpers.
type suite struct {
	t   *testing.T
	c   *gridfs.Client
	ctx context.Context
}

func (s *suite) read(path string) string {
	s.t.Helper()
	b, err := s.c.ReadFile(s.ctx, path)
	if err != nil {
		s.t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func (s *suite) grid() *grid.Grid {
	s.t.Helper()
	g, err := grid.Parse("grid.json from the engine", []byte(s.read("grid.json")))
	if err != nil {
		s.t.Fatal(err)
	}
	return g
}

func (s *suite) status(node string) gridfs.NodeStatus {
	s.t.Helper()
	st, err := gridfs.ParseNodeStatus(s.read("nodes/" + node + "/status"))
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

// ctl runs a grid command that must succeed.
func (s *suite) ctl(words ...string) {
	s.t.Helper()
	if err := s.c.Ctl(s.ctx, gridfs.QuoteWords(words)); err != nil {
		s.t.Fatalf("ctl %q: %v", words, err)
	}
}

// nodeCtl runs a node command that must succeed.
func (s *suite) nodeCtl(node string, words ...string) {
	s.t.Helper()
	if err := s.c.NodeCtl(s.ctx, node, gridfs.QuoteWords(words)); err != nil {
		s.t.Fatalf("%s ctl %q: %v", node, words, err)
	}
}

// refused runs a command that must fail with a message containing want,
// and checks that grid.json did not change.
func (s *suite) refused(node, want string, words ...string) {
	s.t.Helper()
	before := s.read("grid.json")
	var err error
	if node == "" {
		err = s.c.Ctl(s.ctx, gridfs.QuoteWords(words))
	} else {
		err = s.c.NodeCtl(s.ctx, node, gridfs.QuoteWords(words))
	}
	var ce *gridfs.CtlError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, want) {
		s.t.Errorf("%s %q: %v, want a refusal saying %q", node, words, err, want)
	}
	if after := s.read("grid.json"); after != before {
		s.t.Errorf("refused %q changed grid.json", words)
	}
}

func (s *suite) state(node, want string) {
	s.t.Helper()
	if st := s.status(node); st.State != want {
		s.t.Errorf("%s is %s (%+v), want %s", node, st.State, st, want)
	}
}

// testTree: every file of the tree reads, and what it holds agrees with
// the verb tables and the model.
func testTree(t *testing.T, s *suite) {
	if ctl := s.read("ctl"); !strings.Contains(ctl, "add KIND NAME [SEED]") || !strings.Contains(ctl, "up\n") {
		t.Errorf("/ctl lists:\n%s", ctl)
	}
	for _, v := range gridfs.GridVerbs() {
		if !strings.Contains(s.read("ctl"), v.Usage) {
			t.Errorf("/ctl does not list %q", v.Usage)
		}
	}
	nodes, err := s.c.ReadDir(s.ctx, "nodes")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(nodes)
	if strings.Join(nodes, " ") != "cpu1 fossil1 venti" {
		t.Fatalf("/nodes: %q", nodes)
	}
	g := s.grid()
	for _, n := range g.Nodes {
		st := s.status(n.Name)
		if st.IP != n.IP.String() || st.Kind != string(n.Kind) {
			t.Errorf("%s status %+v, model ip %s kind %s", n.Name, st, n.IP, n.Kind)
		}
		if !n.HasVM() {
			if !st.Embedded || st.State != gridfs.StateRunning || st.Addr == "" {
				t.Errorf("embedded venti status %+v", st)
			}
			continue
		}
		if st.State != gridfs.StateStopped || st.PID != 0 {
			t.Errorf("%s of a fresh grid: %+v", n.Name, st)
		}
		if ini := s.read("nodes/" + n.Name + "/ini"); !strings.Contains(ini, "=") {
			t.Errorf("%s ini %q", n.Name, ini)
		}
		if ctl := s.read("nodes/" + n.Name + "/ctl"); !strings.Contains(ctl, "start") || !strings.Contains(ctl, "clone NEWNAME") {
			t.Errorf("%s ctl lists %q", n.Name, ctl)
		}
	}
	if stats := s.read("venti/stats"); !strings.Contains(stats, "addr ") || !strings.Contains(stats, "blocks ") {
		t.Errorf("/venti/stats %q", stats)
	}
	if seeds := s.read("seeds"); !strings.Contains(seeds, " vac:") {
		t.Errorf("/seeds %q: no seed stored in the venti", seeds)
	}
	if _, err := s.c.ReadFile(s.ctx, "nodes/nosuch/status"); err == nil {
		t.Error("a node that is not there has a status")
	}
}

// testUsage: every verb of both tables refuses too few and too many
// arguments with its usage line, and unknown verbs list the verbs.
func testUsage(t *testing.T, s *suite) {
	for _, v := range gridfs.GridVerbs() {
		if v.Min > 0 {
			s.refused("", "usage: "+v.Usage, append([]string{v.Name}, make([]string, v.Min-1)...)...)
		}
		if v.Max >= 0 {
			s.refused("", "usage: "+v.Usage, append([]string{v.Name}, slices.Repeat([]string{"x"}, v.Max+1)...)...)
		}
	}
	for _, v := range gridfs.NodeVerbs() {
		if v.Max >= 0 {
			s.refused("cpu1", "usage: "+v.Usage, append([]string{v.Name}, slices.Repeat([]string{"x"}, v.Max+1)...)...)
		}
	}
	s.refused("", "verbs: add", "frob")
	s.refused("cpu1", "verbs: clone", "frob")
	s.refused("", "on or off", "outbound", "maybe")
	s.refused("", "not a number", "memory", "cpu1", "lots")
}

// testAddRemove: add (with and without a seed) and remove, and their
// refusals.
func testAddRemove(t *testing.T, s *suite) {
	seed := s.grid().Node("cpu1").Seed
	s.ctl("add", "cpu", "cpu2")
	s.ctl("add", "fossil", "fossil2", seed)
	g := s.grid()
	if n := g.Node("cpu2"); n == nil || n.Seed != seed || n.Kind != grid.KindCPU {
		t.Fatalf("cpu2 added without a seed: %+v, want the grid's seed %s", n, seed)
	}
	s.state("cpu2", gridfs.StateStopped)
	s.refused("", "cpu2", "add", "cpu", "cpu2")
	s.refused("", "terminal", "add", "terminal", "t1", seed)
	s.refused("", "nosuch", "add", "cpu", "cpu3", "nosuch")
	s.ctl("remove", "cpu2")
	if s.grid().Node("cpu2") != nil {
		t.Error("cpu2 still there after remove")
	}
	if _, err := s.c.ReadFile(s.ctx, "nodes/cpu2/status"); err == nil {
		t.Error("removed cpu2 still has a status file")
	}
	s.refused("", "cpu2", "remove", "cpu2")
	s.nodeCtl("fossil1", "start")
	s.refused("", "stop it", "remove", "fossil1")
}

// testWiring: wire, unwire and rewire from /ctl and from a node's ctl, and
// a refused pair.
func testWiring(t *testing.T, s *suite) {
	seed := s.grid().Node("cpu1").Seed
	s.ctl("add", "fossil", "fossil2", seed)
	s.refused("", "venti", "wire", "venti", "cpu1")
	s.refused("", "", "wire", "cpu1", "fossil2") // cpu1 roots from fossil1 already: rewire it
	s.ctl("rewire", "cpu1", "fossil2")
	root := func() string {
		g := s.grid()
		if r := g.Target(g.Node("cpu1"), grid.LinkRoot); r != nil {
			return r.Name
		}
		return ""
	}
	if r := root(); r != "fossil2" {
		t.Errorf("cpu1 roots from %q after rewire, want fossil2", r)
	}
	s.nodeCtl("cpu1", "unwire", "fossil2")
	if r := root(); r != "" {
		t.Errorf("cpu1 roots from %q after unwire", r)
	}
	s.nodeCtl("cpu1", "wire", "fossil1")
	if r := root(); r != "fossil1" {
		t.Errorf("cpu1 roots from %q after wire", r)
	}
	s.nodeCtl("cpu1", "rewire", "fossil2")
	if r := root(); r != "fossil2" {
		t.Errorf("cpu1 roots from %q after the node's rewire", r)
	}
	if ini := s.read("nodes/cpu1/ini"); !strings.Contains(ini, "fs="+s.grid().Node("fossil2").IP.String()) {
		t.Errorf("cpu1's ini does not follow the rewire:\n%s", ini)
	}
}

// testEdits: memory, ip, rename, identity, move, arrange and outbound change
// the model as they say.
func testEdits(t *testing.T, s *suite) {
	s.ctl("memory", "cpu1", "512")
	s.ctl("ip", "cpu1", "10.0.9.99")
	s.ctl("identity", "cpu1", "glenda", "lab")
	s.ctl("move", "cpu1", "123", "45")
	s.ctl("outbound", "on")
	s.ctl("rename", "cpu1", "term1")
	g := s.grid()
	n := g.Node("term1")
	if n == nil || g.Node("cpu1") != nil {
		t.Fatalf("rename: term1 %v, cpu1 still there %v", n != nil, g.Node("cpu1") != nil)
	}
	if n.MemoryMB != 512 || n.IP.String() != "10.0.9.99" || n.User != "glenda" || n.AuthDom != "lab" || n.Position.X != 123 || n.Position.Y != 45 || !g.Network.Outbound {
		t.Errorf("after the edits: %+v, outbound %v", n, g.Network.Outbound)
	}
	if st := s.status("term1"); st.IP != "10.0.9.99" {
		t.Errorf("term1 status %+v", st)
	}
	s.ctl("arrange")
	if p := s.grid().Node("term1").Position; p.X == 123 && p.Y == 45 {
		t.Error("arrange left term1 where it was moved")
	}
	s.refused("", "10.0.9.99", "ip", "fossil1", "10.0.9.99")
	s.refused("", "fossil1", "rename", "term1", "fossil1")
	s.refused("", "bad position", "move", "term1", "x", "1")
}

// testStartStop: start starts dependencies first and reaches running with
// a pid and forwards; stop and poweroff stop dependants first.
func testStartStop(t *testing.T, s *suite) {
	s.nodeCtl("cpu1", "start")
	for _, n := range []string{"fossil1", "cpu1"} {
		if st := s.status(n); st.State != gridfs.StateRunning || st.PID == 0 || len(st.Forwards) == 0 {
			t.Errorf("%s after starting cpu1: %+v", n, st)
		}
	}
	cons, err := s.c.OpenCons(s.ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := cons.Read(buf)
	cons.Close()
	if err != nil || n == 0 {
		t.Errorf("cpu1's console: %d bytes, %v", n, err)
	}
	s.nodeCtl("cpu1", "start") // already running: nothing to do
	s.nodeCtl("fossil1", "stop")
	s.state("cpu1", gridfs.StateStopped)
	s.state("fossil1", gridfs.StateStopped)
	s.nodeCtl("cpu1", "start")
	s.nodeCtl("cpu1", "poweroff")
	s.state("cpu1", gridfs.StateStopped)
	s.state("fossil1", gridfs.StateRunning)
	s.refused("venti", "embedded venti", "reset")
}

// testUpDown: up starts every node, down stops them all.
func testUpDown(t *testing.T, s *suite) {
	s.ctl("up")
	for _, n := range []string{"fossil1", "cpu1"} {
		s.state(n, gridfs.StateRunning)
	}
	s.ctl("down")
	for _, n := range []string{"fossil1", "cpu1"} {
		s.state(n, gridfs.StateStopped)
	}
}

// testClone: clone from /ctl and from a node's ctl makes a stopped node of
// the same kind, seed and links that starts; a running source is refused.
func testClone(t *testing.T, s *suite) {
	s.ctl("clone", "cpu1", "cpu2")
	s.nodeCtl("cpu1", "clone", "cpu3")
	g := s.grid()
	for _, name := range []string{"cpu2", "cpu3"} {
		n := g.Node(name)
		if n == nil || n.Kind != grid.KindCPU || n.Seed != g.Node("cpu1").Seed || n.CloneOf == nil {
			t.Fatalf("clone %s: %+v", name, n)
		}
		if r := g.Target(n, grid.LinkRoot); r == nil || r.Name != "fossil1" {
			t.Errorf("%s roots from %v, want fossil1 like cpu1", name, r)
		}
		s.state(name, gridfs.StateStopped)
	}
	s.nodeCtl("cpu2", "start")
	s.state("cpu2", gridfs.StateRunning)
	s.refused("", "running", "clone", "cpu2", "cpu4")
	s.refused("", "venti", "clone", "venti", "venti2")
}

// testReset: reset recreates a stopped node's disk; a running one is
// refused.
func testReset(t *testing.T, s *suite) {
	s.nodeCtl("cpu1", "reset")
	s.state("cpu1", gridfs.StateStopped)
	s.nodeCtl("cpu1", "start")
	s.refused("cpu1", "stop it", "reset")
}

// testEvents: a change wakes a reader of /events.
func testEvents(t *testing.T, s *suite) {
	got := make(chan error, 1)
	go func() { got <- s.c.WaitEvent(s.ctx) }()
	time.Sleep(50 * time.Millisecond)
	s.ctl("move", "cpu1", "10", "10")
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after a change")
	}
}
