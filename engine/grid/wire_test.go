package grid

import (
	"errors"
	"strings"
	"testing"
)

const (
	goldenSeed = "plan9-4e-cpu-auth-fossil-venti"
	minCPUSeed = "plan9-4e-cpu-min"
	frontSeed  = "9front-amd64"
)

// wiringGrid has two nodes of every kind (the embedded venti and two venti
// VMs) and no links.
func wiringGrid(t *testing.T) *Grid {
	t.Helper()
	g, err := Empty()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []NodeSpec{
		{Name: "venti", Kind: KindVenti, Embedded: true},
		{Name: "venti1", Kind: KindVenti, Seed: goldenSeed},
		{Name: "venti2", Kind: KindVenti, Seed: goldenSeed},
		{Name: "fossil1", Kind: KindFossil, Seed: goldenSeed},
		{Name: "fossil2", Kind: KindFossil, Seed: goldenSeed},
		{Name: "fa1", Kind: KindFossilAuth, Seed: goldenSeed},
		{Name: "fa2", Kind: KindFossilAuth, Seed: goldenSeed},
		{Name: "cpu1", Kind: KindCPU, Seed: goldenSeed},
		{Name: "cpu2", Kind: KindCPU, Seed: minCPUSeed},
		{Name: "auth1", Kind: KindAuth, Seed: goldenSeed},
		{Name: "auth2", Kind: KindAuth, Seed: frontSeed},
	} {
		if _, err := g.AddNode(s); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// TestWiringPairs wires every ordered pair of nodes of wiringGrid (each on a
// fresh grid) and checks the link kind or the exact refusal message.
func TestWiringPairs(t *testing.T) {
	label := func(n *Node) string {
		if !n.HasVM() {
			return "embedded-venti"
		}
		return string(n.Kind)
	}
	// Expected outcome per (from kind, to kind): a link kind, or the reason
	// with {F} and {T} standing for the node names.
	const (
		ventiNoBoot = "a venti does not boot from anything; "
		cpuNotVenti = "a cpu boots from a fossil, not from a venti; drag {F} onto a fossil"
		cpuNotCPU   = "a cpu boots from a fossil, not from another cpu; drag {F} onto a fossil"
	)
	want := map[[2]string]string{}
	vent := []string{"embedded-venti", "venti"}
	foss := []string{"fossil", "fossil+auth"}
	for _, f := range vent {
		for _, v := range vent {
			want[[2]string{f, v}] = ventiNoBoot + "drag a fossil onto a venti"
		}
		for _, fo := range foss {
			want[[2]string{f, fo}] = ventiNoBoot + "drag {T} onto {F} to archive it there"
			want[[2]string{fo, f}] = "archive"
		}
		want[[2]string{f, "cpu"}] = ventiNoBoot + "drag a cpu onto a fossil"
		want[[2]string{f, "auth"}] = ventiNoBoot + "drag a cpu onto {T} to use it for authentication"
		want[[2]string{"cpu", f}] = cpuNotVenti
		want[[2]string{"auth", f}] = "an auth server boots from its own disk and is not wired to a venti; drag a cpu onto {F}"
	}
	for _, f := range foss {
		for _, o := range foss {
			want[[2]string{f, o}] = "a fossil archives to a venti, not to another fossil; drag {F} onto a venti"
		}
		want[[2]string{f, "cpu"}] = "a fossil does not boot from a cpu; drag {T} onto {F} so the cpu roots from it"
		want[[2]string{f, "auth"}] = "a fossil checks its users itself and is not wired to an auth server; drag a cpu onto {T}"
		want[[2]string{"cpu", f}] = "root"
		want[[2]string{"auth", f}] = "an auth server boots from its own disk and is not wired to a " + f + "; drag a cpu onto {F}"
	}
	want[[2]string{"cpu", "cpu"}] = cpuNotCPU
	want[[2]string{"cpu", "auth"}] = "auth"
	want[[2]string{"auth", "cpu"}] = "an auth server boots from its own disk; drag {T} onto {F} to use it for authentication"
	want[[2]string{"auth", "auth"}] = "an auth server boots from its own disk and is not wired to an auth server; drag a cpu onto {F}"
	if len(want) != 36 {
		t.Fatalf("table has %d kind pairs, want 36", len(want))
	}

	base := wiringGrid(t)
	seen := map[[2]string]bool{}
	for _, from := range base.Nodes {
		for _, to := range base.Nodes {
			g, err := base.Copy()
			if err != nil {
				t.Fatal(err)
			}
			l, err := g.Wire(from.Name, to.Name)
			can := g.CanWire(from.Name, to.Name)
			if from == to {
				msg := "cannot wire " + from.Name + " to " + from.Name + ": a node cannot be wired to itself"
				if err == nil || err.Error() != msg {
					t.Errorf("self-wire %s: %v, want %q", from.Name, err, msg)
				}
				continue
			}
			key := [2]string{label(from), label(to)}
			seen[key] = true
			exp := strings.NewReplacer("{F}", from.Name, "{T}", to.Name).Replace(want[key])
			switch exp {
			case "root", "archive", "auth":
				if err != nil {
					t.Errorf("wire %s (%s) to %s (%s): %v, want a %s link", from.Name, key[0], to.Name, key[1], err, exp)
					continue
				}
				if string(l.Kind) != exp || l.From != from.ID || l.To != to.ID {
					t.Errorf("wire %s to %s made %+v, want a %s link", from.Name, to.Name, l, exp)
				}
				// Having wired, the same link is refused as a duplicate.
				if can := g.CanWire(from.Name, to.Name); can == nil || !strings.Contains(can.Error(), "is already wired to") {
					t.Errorf("CanWire after wiring %s to %s: %v", from.Name, to.Name, can)
				}
			default:
				full := "cannot wire " + from.Name + " to " + to.Name + ": " + exp
				var we *WiringError
				if err == nil || err.Error() != full || !errors.As(err, &we) || we.From != from.Name || we.To != to.Name {
					t.Errorf("wire %s (%s) to %s (%s):\n got %v\nwant %s", from.Name, key[0], to.Name, key[1], err, full)
				}
				if can == nil || can.Error() != full {
					t.Errorf("CanWire(%s, %s) = %v, want %s", from.Name, to.Name, can, full)
				}
				if len(g.Links) != 0 {
					t.Errorf("refused wire %s to %s left links %v", from.Name, to.Name, g.Links)
				}
			}
		}
	}
	// Every pair but embedded venti to embedded venti: a grid has one.
	if len(seen) != 35 || seen[[2]string{"embedded-venti", "embedded-venti"}] {
		t.Errorf("exercised %d kind pairs, want 35", len(seen))
	}
}

func TestWiringCardinality(t *testing.T) {
	g := wiringGrid(t)
	mustWire := func(from, to string) {
		t.Helper()
		if _, err := g.Wire(from, to); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(err error, want string) {
		t.Helper()
		var we *WiringError
		if err == nil || err.Error() != want || !errors.As(err, &we) {
			t.Errorf("got %v\nwant %s", err, want)
		}
	}
	mustWire("cpu1", "fossil1")
	_, err := g.Wire("cpu1", "fossil2")
	refused(err, "cannot wire cpu1 to fossil2: cpu1 already roots from fossil1, and a cpu roots from exactly one fossil; unwire cpu1 from fossil1 first")
	_, err = g.Wire("cpu1", "fa1")
	refused(err, "cannot wire cpu1 to fa1: cpu1 already roots from fossil1, and a cpu roots from exactly one fossil; unwire cpu1 from fossil1 first")
	_, err = g.Wire("cpu1", "fossil1")
	refused(err, "cannot wire cpu1 to fossil1: cpu1 is already wired to fossil1")

	mustWire("fossil1", "venti")
	_, err = g.Wire("fossil1", "venti1")
	refused(err, "cannot wire fossil1 to venti1: fossil1 already archives to venti, and a fossil archives to exactly one venti; unwire fossil1 from venti first")

	mustWire("cpu1", "auth1")
	_, err = g.Wire("cpu1", "auth2")
	refused(err, "cannot wire cpu1 to auth2: cpu1 already authenticates with auth1; unwire cpu1 from auth1 first")

	// The one pair Wire cannot guess: auth from a fossil+auth the cpu does
	// not root from.
	mustWire("cpu2", "fossil2")
	if _, err := g.WireAs("cpu2", "fa1", LinkAuth); err != nil {
		t.Fatal(err)
	}
	if a := g.AuthServer(g.Node("cpu2")); a == nil || a.Name != "fa1" {
		t.Errorf("cpu2 authenticates with %v, want fa1", a)
	}
	// WireAs checks the kind against the pair.
	for _, tc := range []struct {
		from, to string
		k        LinkKind
		want     string
	}{
		{"cpu2", "venti1", LinkRoot, "cannot wire cpu2 to venti1: a root link goes from a cpu to a fossil, not from a cpu to a venti"},
		{"fossil2", "auth1", LinkArchive, "cannot wire fossil2 to auth1: an archive link goes from a fossil to a venti, not from a fossil to an auth server"},
		{"cpu2", "fossil1", LinkAuth, "cannot wire cpu2 to fossil1: an auth link goes from a cpu to an auth server or fossil+auth, not from a cpu to a fossil"},
		{"cpu2", "fossil1", "mount", `cannot wire cpu2 to fossil1: unknown link kind "mount" (root, archive or auth)`},
	} {
		_, err := g.WireAs(tc.from, tc.to, tc.k)
		refused(err, tc.want)
	}

	// Unwire removes the link and frees the slot; unwiring twice is an error
	// that says which way links go.
	if err := g.Unwire("cpu1", "fossil1"); err != nil {
		t.Fatal(err)
	}
	if err := g.Unwire("cpu1", "fossil1"); err == nil || !strings.Contains(err.Error(), "unwire cpu1 from fossil1: they are not wired") {
		t.Errorf("second unwire: %v", err)
	}
	mustWire("cpu1", "fa1")
	if _, err := g.Wire("nosuch", "fa1"); err == nil || !strings.Contains(err.Error(), `no node called "nosuch"`) {
		t.Errorf("wire from a missing node: %v", err)
	}
}

// TestRewire: dragging cpu1 onto a second fossil replaces its root link
// (and a fossil's archive link) in one change; a refused pair or the same
// target changes nothing.
func TestRewire(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddNode(NodeSpec{Kind: KindFossilAuth, Name: "fossil2", Seed: DefaultSeed}); err != nil {
		t.Fatal(err)
	}
	before, _ := g.Marshal()
	l, old, err := g.Rewire("cpu1", "fossil2")
	if err != nil || l.Kind != LinkRoot || old == nil || old.Name != "fossil1" {
		t.Fatalf("Rewire cpu1 fossil2 = %+v, %+v, %v", l, old, err)
	}
	cpu := g.Node("cpu1")
	if r := g.Target(cpu, LinkRoot); r == nil || r.Name != "fossil2" || len(g.linksFrom(cpu.ID, LinkRoot)) != 1 {
		t.Fatalf("cpu1 roots from %v after the rewire", r)
	}
	if a := g.AuthServer(cpu); a == nil || a.Name != "fossil2" {
		t.Fatalf("cpu1's auth server after the rewire: %v", a)
	}
	if !cpu.Pending() {
		t.Error("cpu1 is not pending after its root changed")
	}
	after, _ := g.Marshal()
	if _, _, err := g.Rewire("cpu1", "fossil2"); err == nil {
		t.Error("rewiring to the same fossil was accepted")
	}
	if _, _, err := g.Rewire("cpu1", "cpu1"); err == nil {
		t.Error("rewiring a cpu to itself was accepted")
	}
	if again, _ := g.Marshal(); string(again) != string(after) {
		t.Error("a refused rewire changed the grid")
	}
	if string(before) == string(after) {
		t.Error("the rewire changed nothing")
	}
}
