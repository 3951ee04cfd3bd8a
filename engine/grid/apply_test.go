package grid

import (
	"strings"
	"testing"
)

// TestApply: every edit verb checks its argument count with its usage line
// and changes the model as it says; add without a seed takes the grid's.
func TestApply(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range EditVerbs() {
		if !strings.HasPrefix(v.Usage, v.Name) || !IsEdit(v.Name) {
			t.Errorf("verb %+v", v)
		}
		if v.Max >= 0 {
			words := append([]string{v.Name}, make([]string, v.Max+1)...)
			if err := Apply(g, words); err == nil || err.Error() != "usage: "+v.Usage {
				t.Errorf("%s with %d arguments: %v", v.Name, v.Max+1, err)
			}
		}
	}
	if err := Apply(g, []string{"up"}); err == nil || IsEdit("up") {
		t.Error("up is applied as a model edit")
	}
	seed := g.Node("cpu1").Seed
	for _, w := range [][]string{
		{"add", "cpu", "cpu2"},
		{"wire", "cpu2", "fossil1"},
		{"memory", "cpu2", "300"},
		{"rename", "cpu2", "term"},
		{"outbound", "on"},
	} {
		if err := Apply(g, w); err != nil {
			t.Fatalf("%q: %v", w, err)
		}
	}
	n := g.Node("term")
	if n == nil || n.Seed != seed || n.MemoryMB != 300 || g.Target(n, LinkRoot) == nil || !g.Network.Outbound {
		t.Errorf("after the edits: %+v, outbound %v", n, g.Network.Outbound)
	}
	if err := Apply(g, []string{"memory", "term", "lots"}); err == nil || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("memory lots: %v", err)
	}
}

// TestSeedFor: a node added without a seed gets the seed of the grid's
// first VM node that can play its kind, else DefaultSeed.
func TestSeedFor(t *testing.T) {
	g, err := Empty()
	if err != nil {
		t.Fatal(err)
	}
	if s := g.SeedFor(KindCPU); s != DefaultSeed {
		t.Errorf("empty grid: %q", s)
	}
	if _, err := g.AddNode(NodeSpec{Kind: KindCPU, Name: "cpu1", Seed: minCPUSeed}); err != nil {
		t.Fatal(err)
	}
	if s := g.SeedFor(KindCPU); s != minCPUSeed {
		t.Errorf("cpu after a %s cpu: %q", minCPUSeed, s)
	}
	if s := g.SeedFor(KindFossil); s != DefaultSeed {
		t.Errorf("fossil (which %s cannot play): %q", minCPUSeed, s)
	}
}
