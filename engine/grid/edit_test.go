package grid

import (
	"crypto/sha256"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"gridlord/images"
)

func TestDefaultGrid(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range g.Nodes {
		got = append(got, n.Name+":"+string(n.Kind)+"@"+n.IP.String())
	}
	if want := "venti:venti@10.0.9.254 fossil1:fossil+auth@10.0.9.10 cpu1:cpu@10.0.9.11"; strings.Join(got, " ") != want {
		t.Errorf("default nodes %q, want %q", strings.Join(got, " "), want)
	}
	v, f, c := g.Node("venti"), g.Node("fossil1"), g.Node("cpu1")
	if !v.Embedded || v.HasVM() || v.Pending() || !v.MAC.IsZero() {
		t.Errorf("embedded venti %+v", v)
	}
	if g.Target(f, LinkArchive) != v || g.Target(c, LinkRoot) != f || g.AuthServer(c) != f {
		t.Error("default wiring is not cpu1 -> fossil1 -> venti")
	}
	if f.Seed != DefaultSeed || c.Seed != DefaultSeed || f.User != "bootes" || f.AuthDom != "grid" || f.MemoryMB != 512 {
		t.Errorf("default nodes: %+v %+v", f, c)
	}
	// Laid out left to right, one generation each, both pending.
	if !(v.Position.X < f.Position.X && f.Position.X < c.Position.X) || v.Position.Y != f.Position.Y {
		t.Errorf("positions %v %v %v", v.Position, f.Position, c.Position)
	}
	if f.ConfigGen != 1 || c.ConfigGen != 1 || len(g.Pending()) != 2 {
		t.Errorf("generations %d %d, pending %d", f.ConfigGen, c.ConfigGen, len(g.Pending()))
	}
	if p := g.Check(); len(p) != 0 {
		t.Errorf("default grid has problems: %v", p)
	}
	// A seed that cannot be a fossil+auth is refused with the reason.
	if _, err := Default(WithSeed(frontSeed)); err == nil || !strings.Contains(err.Error(), "seed 9front-amd64 cannot boot as fossil") {
		t.Errorf("default grid from a 9front seed: %v", err)
	}
	// Other options.
	g, err = Default(WithName("lab"), WithSubnet("192.168.50.0/24"), WithCPUSeed(minCPUSeed), WithIdentity("glenda", "lab"), WithStaticBoot())
	if err != nil {
		t.Fatal(err)
	}
	c = g.Node("cpu1")
	if g.Name != "lab" || g.Network.Gateway.String() != "192.168.50.1" || g.Network.Host.String() != "192.168.50.254" ||
		c.Seed != minCPUSeed || c.User != "glenda" || c.AuthDom != "lab" || !g.Network.StaticBoot {
		t.Errorf("options not applied: %+v %+v", g.Network, c)
	}
	for _, bad := range []Option{WithName("a b"), WithSubnet("10.0.9.0"), WithSubnet("fd00::/64"), WithSubnet("10.0.0.0/25"), WithIdentity("a b", "c")} {
		if _, err := Default(bad); err == nil {
			t.Errorf("bad option accepted")
		}
	}
}

func TestAllocation(t *testing.T) {
	g, err := Empty(WithSubnet("10.1.0.0/24")) // .1 gateway, .254 host: .10-.253, then .2-.9
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for i := 0; i < 252; i++ {
		n, err := g.AddNode(NodeSpec{Kind: KindCPU, Seed: minCPUSeed})
		if err != nil {
			t.Fatal(err)
		}
		ips = append(ips, strings.TrimPrefix(n.IP.String(), "10.1.0."))
		if n.Name != "cpu"+strconv.Itoa(i+1) {
			t.Errorf("node %d named %s", i, n.Name)
		}
	}
	if got := strings.Join(ips[:3], " ") + " ... " + strings.Join(ips[242:], " "); got != "10 11 12 ... 252 253 2 3 4 5 6 7 8 9" {
		t.Errorf("allocation order %s", got)
	}
	if _, err := g.AddNode(NodeSpec{Kind: KindCPU, Seed: minCPUSeed}); err == nil || !strings.Contains(err.Error(), "no free address left in 10.1.0.0/24") {
		t.Errorf("exhausted subnet: %v", err)
	}
	// Freed addresses are reused; SetIP checks the subnet and collisions.
	if err := g.RemoveNode("cpu3"); err != nil {
		t.Fatal(err)
	}
	if ip, _ := g.NextIP(); ip.String() != "10.1.0.12" {
		t.Errorf("next after removal %s", ip)
	}
	for _, tc := range []struct{ ip, want string }{
		{"10.1.0.11", "ip 10.1.0.11 is taken by cpu2"},
		{"10.1.0.254", "network's host address"},
		{"10.1.0.1", "network's gateway"},
		{"10.1.0.255", "network or broadcast address"},
		{"10.1.1.3", "outside the grid's subnet"},
	} {
		if err := g.SetIP("cpu1", netip.MustParseAddr(tc.ip)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetIP %s: %v, want %q", tc.ip, err, tc.want)
		}
	}
	if err := g.SetIP("cpu1", netip.MustParseAddr("10.1.0.12")); err != nil {
		t.Error(err)
	}
}

func TestMAC(t *testing.T) {
	id := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	m := DeriveMAC(id, 0)
	// Pinned: the value engine/network.MACFromUUID gives this UUID too
	// (52:54:00 + SHA-256 of the 16 UUID bytes).
	h := sha256.Sum256(id[:])
	if want := (MAC{0x52, 0x54, 0x00, h[0], h[1], h[2]}); m != want {
		t.Errorf("DeriveMAC = %s, want %s", m, want)
	}
	if m != DeriveMAC(id, 0) || m == DeriveMAC(id, 1) || DeriveMAC(id, 1) == DeriveMAC(id, 2) {
		t.Error("DeriveMAC is not a function of (id, attempt)")
	}
	if m[0] != 0x52 || m[1] != 0x54 || m[2] != 0x00 || m[0]&1 != 0 || m[0]&2 == 0 {
		t.Errorf("%s is not a locally administered unicast 52:54:00 address", m)
	}
	var back MAC
	if err := back.UnmarshalText([]byte(m.String())); err != nil || back != m {
		t.Errorf("text round trip %s -> %s %v", m, back, err)
	}
	if len(m.Ndb()) != 12 || strings.Contains(m.Ndb(), ":") {
		t.Errorf("ndb form %q", m.Ndb())
	}
	// A collision makes the next node take the next attempt.
	g, _ := Empty()
	a, err := g.AddNode(NodeSpec{Kind: KindCPU, Seed: minCPUSeed, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if a.MAC != m {
		t.Errorf("node MAC %s, want DeriveMAC(id, 0) = %s", a.MAC, m)
	}
	if got := g.nextMAC(id); got != DeriveMAC(id, 1) {
		t.Errorf("colliding MAC not skipped: %s", got)
	}
}

func TestNames(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"helix", "cannot call a node helix: a seed's file server runs /cfg/helix/cpurc"},
		{"Helix", "cannot call a node Helix"},
		{"fossil1", "a node called fossil1 already exists"},
		{"9cpu", "must start with a letter"},
		{"cpu_1", "must start with a letter and have at most 27 letters, digits or '-'"},
		{strings.Repeat("c", 28), "at most 27"},
	} {
		if err := g.Rename("cpu1", tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rename to %q: %v, want %q", tc.name, err, tc.want)
		}
		if _, err := g.AddNode(NodeSpec{Name: tc.name, Kind: KindCPU, Seed: minCPUSeed}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add %q: %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := g.Rename("cpu1", "cpu-Z9"); err != nil {
		t.Error(err)
	}
	if err := g.Rename("nosuch", "x"); err == nil || !strings.Contains(err.Error(), `no node called "nosuch" in grid grid (nodes: venti, fossil1, cpu-Z9)`) {
		t.Errorf("rename missing node: %v", err)
	}
}

func TestAddNodeErrors(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec NodeSpec
		want string
	}{
		{NodeSpec{Kind: "terminal", Seed: goldenSeed}, `kind "terminal" is not one of`},
		{NodeSpec{Kind: KindFossil, Seed: frontSeed}, "seed 9front-amd64 cannot boot as fossil: it can be [cpu auth]"},
		{NodeSpec{Kind: KindFossil, Seed: minCPUSeed}, "seed plan9-4e-cpu-min cannot boot as fossil"},
		{NodeSpec{Kind: KindCPU, Seed: "nosuch"}, `unknown seed "nosuch": import it (gridlord seed import) or pick one of: 9legacy-grid-seed, plan9-4e-cpu-auth-fossil-venti, plan9-4e-cpu-min, 9front-amd64`},
		{NodeSpec{Kind: KindCPU}, "a cpu needs a seed image"},
		{NodeSpec{Kind: KindVenti, Embedded: true}, "the grid already has an embedded venti (venti); add a venti VM instead"},
		{NodeSpec{Kind: KindCPU, Embedded: true, Seed: goldenSeed}, "only a venti can be embedded, not a cpu"},
		{NodeSpec{Kind: KindCPU, Seed: goldenSeed, MemoryMB: 8}, "memory 8 MiB is out of range"},
		{NodeSpec{Kind: KindCPU, Seed: goldenSeed, IP: netip.MustParseAddr("10.0.9.10")}, "ip 10.0.9.10 is taken by fossil1"},
		{NodeSpec{Kind: KindCPU, Seed: goldenSeed, User: "a b"}, `identity "a b"@"grid"`},
		{NodeSpec{Kind: KindCPU, Seed: goldenSeed, ID: g.Nodes[0].ID}, "is taken"},
	} {
		if _, err := g.AddNode(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add %+v:\n got %v\nwant %q", tc.spec, err, tc.want)
		}
	}
	if len(g.Nodes) != 3 {
		t.Errorf("refused adds left %d nodes", len(g.Nodes))
	}
	// An imported seed works like a catalog one.
	like, _ := images.Builtin().Lookup(minCPUSeed)
	s, err := images.Local("mycpu", "/tmp/mycpu.img", 16<<20, nil, "", like)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.AddSeed(s); err != nil {
		t.Fatal(err)
	}
	n, err := g.AddNode(NodeSpec{Kind: KindCPU, Seed: "mycpu"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := g.Seed(n.Seed); got.Path != "/tmp/mycpu.img" {
		t.Errorf("seed record %+v", got)
	}
}

func TestCloneRemove(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	c1 := g.Node("cpu1")
	c2, err := g.CloneNode("cpu1", "")
	if err != nil {
		t.Fatal(err)
	}
	if c2.Name != "cpu2" || c2.ID == c1.ID || c2.MAC == c1.MAC || c2.IP == c1.IP || c2.Seed != c1.Seed ||
		c2.CloneOf == nil || *c2.CloneOf != c1.ID || c2.Position.Y != c1.Position.Y+RowHeight {
		t.Errorf("clone %+v of %+v", c2, c1)
	}
	if g.Target(c2, LinkRoot) != g.Node("fossil1") {
		t.Error("clone does not root from cpu1's fossil")
	}
	f2, err := g.CloneNode("fossil1", "fossil2")
	if err != nil {
		t.Fatal(err)
	}
	if g.Target(f2, LinkArchive) != g.Node("venti") || len(g.Dependants(f2)) != 0 {
		t.Error("fossil clone: archive link copied, dependants not")
	}
	if _, err := g.CloneNode("venti", ""); err == nil || !strings.Contains(err.Error(), "only one embedded venti") {
		t.Errorf("clone of the embedded venti: %v", err)
	}
	// Removing cpu1 drops its links and its clone forgets where it came from;
	// removing fossil1 leaves cpu2 without a root, which Check reports.
	if err := g.RemoveNode("cpu1"); err != nil {
		t.Fatal(err)
	}
	if c2.CloneOf != nil {
		t.Error("clone still names a removed node")
	}
	if err := g.RemoveNode("fossil1"); err != nil {
		t.Fatal(err)
	}
	for _, l := range g.Links {
		if g.NodeByID(l.From) == nil || g.NodeByID(l.To) == nil {
			t.Errorf("dangling link %+v", l)
		}
	}
	probs := g.Check()
	var msgs []string
	for _, p := range probs {
		msgs = append(msgs, p.String())
	}
	want := "cpu2: error: no file server: drag cpu2 onto a fossil (without fs= its boot stops at the 'filesystem IP address' prompt)\n" +
		"cpu2: error: no auth server: drag cpu2 onto a fossil+auth or an auth server"
	if strings.Join(msgs, "\n") != want {
		t.Errorf("problems:\n%s\nwant\n%s", strings.Join(msgs, "\n"), want)
	}
	if err := g.RemoveNode("cpu1"); err == nil {
		t.Error("removing twice succeeded")
	}
}

func TestCheck(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddNode(NodeSpec{Name: "fossil2", Kind: KindFossil, Seed: goldenSeed}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddNode(NodeSpec{Name: "cpu2", Kind: KindCPU, Seed: minCPUSeed}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Wire("cpu2", "fossil2"); err != nil {
		t.Fatal(err)
	}
	if err := g.SetIdentity("cpu1", "bootes", "otherdom"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range g.Check() {
		got = append(got, p.String())
	}
	want := []string{
		"cpu1: error: auth domain otherdom differs from fossil1's grid: the boot fails with 'no key matches … dom=grid' and reboots; give both the same auth domain",
		"cpu2: error: no auth server: fossil2 is a plain fossil, so wire cpu2 to an auth server (without auth= its boot stops at the 'authentication server IP address' prompt)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := g.SetIdentity("cpu1", "glenda", "grid"); err != nil {
		t.Fatal(err)
	}
	if p := g.Check(); len(p) < 1 || p[0].Severity != SeverityWarning || !strings.Contains(p[0].Message, "host owner glenda differs from fossil1's bootes") {
		t.Errorf("owner mismatch: %v", p)
	}
}

func TestPendingAndMarkApplied(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	c, err := g.Config("cpu1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Gen != 1 {
		t.Fatalf("gen %d", c.Gen)
	}
	// The engine wrote gen 1 while the user renamed the node: gen 1 is
	// recorded but the node stays pending for gen 2.
	if err := g.Rename("fossil1", "files"); err != nil {
		t.Fatal(err)
	}
	if err := g.MarkApplied("cpu1", c.Gen); err != nil {
		t.Fatal(err)
	}
	cpu := g.Node("cpu1")
	if cpu.Pending() {
		t.Error("cpu1 pending although renaming its fossil does not change its plan9.ini")
	}
	f := g.Node("files")
	if !f.Pending() || f.ConfigGen != 2 {
		t.Errorf("files: gen %d applied %d", f.ConfigGen, f.AppliedGen)
	}
	if err := g.MarkApplied("files", 1); err != nil || !f.Pending() {
		t.Errorf("applying an old generation cleared pending: %v", err)
	}
	if err := g.MarkApplied("files", 3); err == nil || !strings.Contains(err.Error(), "has configuration generation 2, not 3") {
		t.Errorf("applying a future generation: %v", err)
	}
	if err := g.MarkApplied("files", 2); err != nil || f.Pending() || len(g.Pending()) != 0 {
		t.Errorf("after applying gen 2: %v pending %v", err, g.Pending())
	}
	if err := g.MarkApplied("files", 1); err != nil || f.AppliedGen != 2 {
		t.Error("an older MarkApplied moved AppliedGen back")
	}
}

func TestArrange(t *testing.T) {
	g, err := Empty()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []NodeSpec{
		{Name: "cpu-b", Kind: KindCPU, Seed: minCPUSeed},
		{Name: "auth1", Kind: KindAuth, Seed: goldenSeed},
		{Name: "fz", Kind: KindFossil, Seed: goldenSeed},
		{Name: "fa", Kind: KindFossilAuth, Seed: goldenSeed},
		{Name: "cpu-a", Kind: KindCPU, Seed: minCPUSeed},
		{Name: "v2", Kind: KindVenti, Seed: goldenSeed},
		{Name: "venti", Kind: KindVenti, Embedded: true},
	} {
		if _, err := g.AddNode(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range [][2]string{{"cpu-a", "fz"}, {"cpu-b", "fa"}, {"fz", "venti"}, {"fa", "v2"}} {
		if _, err := g.Wire(w[0], w[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range g.Nodes {
		n.AppliedGen = n.ConfigGen
	}
	g.Arrange()
	want := map[string][2]float64{
		"venti": {40, 40}, "v2": {40, 160}, // embedded first
		"fz": {240, 40}, "fa": {240, 160}, // follow their ventis
		"cpu-a": {440, 40}, "cpu-b": {440, 160}, // follow their fossils
		"auth1": {640, 40},
	}
	for _, n := range g.Nodes {
		if p := want[n.Name]; n.Position.X != p[0] || n.Position.Y != p[1] {
			t.Errorf("%s at (%v,%v), want %v", n.Name, n.Position.X, n.Position.Y, p)
		}
	}
	if len(g.Pending()) != 0 {
		t.Error("Arrange made nodes pending")
	}
	// A new node goes to the foot of its column.
	n, err := g.AddNode(NodeSpec{Kind: KindCPU, Seed: minCPUSeed})
	if err != nil {
		t.Fatal(err)
	}
	if n.Position.X != 440 || n.Position.Y != 280 {
		t.Errorf("new cpu at %v", n.Position)
	}
}

func TestOrders(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddNode(NodeSpec{Name: "auth1", Kind: KindAuth, Seed: goldenSeed}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddNode(NodeSpec{Name: "cpu2", Kind: KindCPU, Seed: minCPUSeed}); err != nil {
		t.Fatal(err)
	}
	for _, w := range [][2]string{{"cpu2", "fossil1"}, {"cpu2", "auth1"}} {
		if _, err := g.Wire(w[0], w[1]); err != nil {
			t.Fatal(err)
		}
	}
	names := func(ns []*Node, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, n := range ns {
			s = append(s, n.Name)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct{ got, want string }{
		{names(g.StartOrder("cpu1")), "venti fossil1 cpu1"},
		{names(g.StartOrder("cpu2")), "venti fossil1 auth1 cpu2"},
		{names(g.StartOrder()), "venti fossil1 cpu1 auth1 cpu2"},
		{names(g.StopOrder("venti")), "cpu1 cpu2 fossil1 venti"},
		{names(g.StopOrder("auth1")), "cpu2 auth1"},
		{names(g.StopOrder()), "cpu1 cpu2 fossil1 venti auth1"},
	} {
		if tc.got != tc.want {
			t.Errorf("order %q, want %q", tc.got, tc.want)
		}
	}
	if _, err := g.StartOrder("nosuch"); err == nil {
		t.Error("start order of a missing node")
	}
	var leases []string
	for _, l := range g.Leases() {
		leases = append(leases, l.Name+"="+l.IP.String())
		if l.MAC != g.Node(l.Name).MAC {
			t.Errorf("lease %+v", l)
		}
	}
	if got := strings.Join(leases, " "); got != "fossil1=10.0.9.10 cpu1=10.0.9.11 auth1=10.0.9.12 cpu2=10.0.9.13" {
		t.Errorf("leases %s", got)
	}
	if err := g.Move("cpu1", math.NaN(), 0); err == nil {
		t.Error("NaN position accepted")
	}
}

// TestUnknownSeed: a grid whose seed left the catalog still loads; Check
// and Config say what is wrong.
func TestUnknownSeed(t *testing.T) {
	g, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := g.Marshal()
	data = []byte(strings.Replace(string(data), `"seed": "`+DefaultSeed+`"`, `"seed": "gone"`, 1))
	g, err = Parse("grid.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Config("fossil1"); err == nil || !strings.Contains(err.Error(), `configure fossil1: unknown seed "gone"`) {
		t.Errorf("config: %v", err)
	}
	if p := g.Check(); len(p) != 1 || p[0].Node != "fossil1" || p[0].Severity != SeverityError || !strings.Contains(p[0].Message, `unknown seed "gone"`) {
		t.Errorf("check: %v", p)
	}
}

// BenchmarkChange measures one configuration-changing edit (a rename and
// back) on grids of 8 and 64 nodes: every change re-derives every node.
func BenchmarkChange(b *testing.B) {
	for _, size := range []int{8, 64} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			g, err := Default(WithSubnet("10.0.0.0/16"))
			if err != nil {
				b.Fatal(err)
			}
			for len(g.Nodes) < size {
				if _, err := g.CloneNode("cpu1", ""); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := []string{"cpu1", "cpux"}
				if err := g.Rename(name[i%2], name[(i+1)%2]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
