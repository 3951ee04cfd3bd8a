package grid

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// parseIni reads plan9.ini text as key=value lines (enough for the golden
// files; the real parser lives in engine/plan9disk).
func parseIni(t testing.TB, text string) []KV {
	t.Helper()
	var kvs []KV
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("plan9.ini line %q has no '='", line)
		}
		kvs = append(kvs, KV{k, v})
	}
	return kvs
}

func formatIni(kvs []KV) string {
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(kv.Key + "=" + kv.Value + "\n")
	}
	return b.String()
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docGrid rebuilds the verified grid of plan9-grid-roles.md on 10.0.2.0/24:
// the embedded venti, F as fossil1 (fossil+auth, golden image) at 10.0.2.2,
// and C as cpuc (minimal 4e disk) rooting from it.
func docGrid(t *testing.T, wireVenti bool) *Grid {
	t.Helper()
	g, err := Empty(WithSubnet("10.0.2.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	add := func(s NodeSpec) {
		t.Helper()
		if _, err := g.AddNode(s); err != nil {
			t.Fatal(err)
		}
	}
	add(NodeSpec{Name: "venti", Kind: KindVenti, Embedded: true})
	add(NodeSpec{Name: "fossil1", Kind: KindFossilAuth, Seed: goldenSeed, IP: netip.MustParseAddr("10.0.2.2")})
	add(NodeSpec{Name: "cpuc", Kind: KindCPU, Seed: minCPUSeed})
	if _, err := g.Wire("cpuc", "fossil1"); err != nil {
		t.Fatal(err)
	}
	if wireVenti {
		if _, err := g.Wire("fossil1", "venti"); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func config(t *testing.T, g *Grid, name string) *NodeConfig {
	t.Helper()
	c, err := g.Config(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGoldenCPU: the derived plan9.ini of a 4e cpu is exactly the verified
// minimal one, so the verified disk needs no edit; the first working
// version needs only sysname added and the redundant bootargs removed.
func TestGoldenCPU(t *testing.T) {
	g := docGrid(t, true)
	c := config(t, g, "cpuc")
	min := golden(t, "C-plan9.ini.min")
	if got := formatIni(c.Ini); got != min {
		t.Errorf("cpu plan9.ini:\n%s\nwant (C-plan9.ini.min):\n%s", got, min)
	}
	if edits := MergeIni(parseIni(t, min), c); len(edits) != 0 {
		t.Errorf("the verified minimal ini needs edits %v", edits)
	}
	v1 := parseIni(t, golden(t, "C-plan9.ini.v1"))
	edits := MergeIni(v1, c)
	want := []IniEdit{{Key: "sysname", Value: "cpuc"}, {Key: "bootargs", Delete: true}}
	if !slices.Equal(edits, want) {
		t.Errorf("edits to C-plan9.ini.v1: %v, want %v", edits, want)
	}
	got := formatIni(ApplyIni(v1, edits))
	wantText := strings.Replace(golden(t, "C-plan9.ini.v1"), "bootargs=tcp\n", "", 1) + "sysname=cpuc\n"
	if got != wantText {
		t.Errorf("C-plan9.ini.v1 after edits:\n%s\nwant\n%s", got, wantText)
	}
	if *c.Identity != (Identity{AuthID: "bootes", AuthDom: "grid"}) {
		t.Errorf("cpu identity %+v, want the golden nvram's bootes@grid", c.Identity)
	}
}

// TestGoldenFossil: F's plan9.ini keeps everything but gets sysname=helix
// (its cpurc is /cfg/helix/cpurc), and venti= points at the grid's venti
// when wired, at its own arenas otherwise; its fossil config block gets
// exactly the verified listen line.
func TestGoldenFossil(t *testing.T) {
	f := golden(t, "F-plan9.ini")
	for _, tc := range []struct {
		wired bool
		edits []IniEdit
	}{
		{false, []IniEdit{{Key: "sysname", Value: "helix"}}},
		{true, []IniEdit{{Key: "venti", Value: "tcp!10.0.2.254!17034"}, {Key: "sysname", Value: "helix"}}},
	} {
		g := docGrid(t, tc.wired)
		c := config(t, g, "fossil1")
		edits := MergeIni(parseIni(t, f), c)
		if !slices.Equal(edits, tc.edits) {
			t.Errorf("wired=%v: edits to F-plan9.ini %v, want %v", tc.wired, edits, tc.edits)
		}
		after := ApplyIni(parseIni(t, f), edits)
		if again := MergeIni(after, c); len(again) != 0 {
			t.Errorf("wired=%v: edits not idempotent: %v", tc.wired, again)
		}
		if !slices.Equal(c.FossilConfig, []string{"listen tcp!*!564"}) {
			t.Errorf("fossil config lines %v", c.FossilConfig)
		}
	}

	// The fossil config block: from the installer's block to F2 exactly.
	f2 := golden(t, "F2-fossil-config.txt")
	before := strings.Replace(f2, "listen tcp!*!564\n", "", 1)
	disk := make([]byte, FossilConfigMax)
	copy(disk, before)
	got, changed, err := MergeConfigBlock(disk, FossilConfigHeader, FossilConfigMax, []string{"listen tcp!*!564"}, false)
	if err != nil || !changed || got != f2 {
		t.Errorf("merged fossil config (changed=%v, err=%v):\n%q\nwant\n%q", changed, err, got, f2)
	}
	if again, changed, err := MergeConfigBlock([]byte(got), FossilConfigHeader, FossilConfigMax, []string{"listen tcp!*!564"}, false); err != nil || changed || again != f2 {
		t.Errorf("second merge changed=%v err=%v", changed, err)
	}
	if _, _, err := MergeConfigBlock([]byte("venti config\n"), FossilConfigHeader, FossilConfigMax, nil, false); err == nil || !strings.Contains(err.Error(), `does not start "fossil config"`) {
		t.Errorf("wrong header: %v", err)
	}
	long := []string{strings.Repeat("x", FossilConfigMax)}
	if _, _, err := MergeConfigBlock([]byte(before), FossilConfigHeader, FossilConfigMax, long, false); err == nil || !strings.Contains(err.Error(), "more than the 1024 that fit") {
		t.Errorf("oversized block: %v", err)
	}
	// Venti directives replace their namesakes.
	v, changed, err := MergeConfigBlock([]byte("venti config\nindex main\naddr tcp!127.1!17034\n"), VentiConfigHeader, VentiConfigMax,
		[]string{"addr tcp!*!17034", "httpaddr tcp!*!8000"}, true)
	if err != nil || !changed || v != "venti config\nindex main\naddr tcp!*!17034\nhttpaddr tcp!*!8000\n" {
		t.Errorf("venti config: %q %v %v", v, changed, err)
	}
}

// TestRoleKeys is the golden table of desired plan9.ini entries for every
// kind each seed family can play.
func TestRoleKeys(t *testing.T) {
	g, err := Empty(WithSubnet("10.0.2.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	for _, s := range []NodeSpec{
		{Name: "venti", Kind: KindVenti, Embedded: true},
		{Name: "fossil1", Kind: KindFossilAuth, Seed: goldenSeed, IP: ip("10.0.2.2")},
		{Name: "fossil2", Kind: KindFossil, Seed: goldenSeed, IP: ip("10.0.2.3")},
		{Name: "auth1", Kind: KindAuth, Seed: goldenSeed, IP: ip("10.0.2.4")},
		{Name: "venti1", Kind: KindVenti, Seed: goldenSeed, IP: ip("10.0.2.5")},
		{Name: "cpu1", Kind: KindCPU, Seed: goldenSeed, IP: ip("10.0.2.16")},
		{Name: "cpu2", Kind: KindCPU, Seed: minCPUSeed, IP: ip("10.0.2.17")},
		{Name: "cpu3", Kind: KindCPU, Seed: frontSeed, IP: ip("10.0.2.18"), User: "bootes"},
		{Name: "auth9", Kind: KindAuth, Seed: frontSeed, IP: ip("10.0.2.6"), User: "bootes"},
	} {
		if _, err := g.AddNode(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range [][2]string{{"fossil1", "venti"}, {"fossil2", "venti1"}, {"cpu1", "fossil1"}, {"cpu2", "fossil2"}, {"cpu2", "auth1"}, {"cpu3", "fossil1"}, {"cpu3", "auth9"}} {
		if _, err := g.Wire(w[0], w[1]); err != nil {
			t.Fatal(err)
		}
	}
	const local = "local!#S/sdC0/fossil"
	for _, tc := range []struct {
		node, want string
		owned      string
	}{
		// 9legacy golden image (role by kernel: 9pccpuf everywhere).
		{"fossil1", "bootfile=sdC0!9fat!9pccpuf bootargs=" + local + " nobootprompt=" + local + " venti=tcp!10.0.2.254!17034 sysname=helix console=0",
			"bootfile bootargs nobootprompt sysname console venti"},
		{"fossil2", "bootfile=sdC0!9fat!9pccpuf bootargs=" + local + " nobootprompt=" + local + " venti=tcp!10.0.2.5!17034 sysname=helix console=0",
			"bootfile bootargs nobootprompt sysname console venti"},
		{"auth1", "bootfile=sdC0!9fat!9pccpuf bootargs=" + local + " nobootprompt=" + local + " sysname=helix console=0",
			"bootfile bootargs nobootprompt sysname console"},
		{"venti1", "bootfile=sdC0!9fat!9pccpuf bootargs=" + local + " nobootprompt=" + local + " venti=#S/sdC0/arenas tcp!*!17034 sysname=helix console=0",
			"bootfile bootargs nobootprompt sysname console venti"},
		{"cpu1", "bootfile=sdC0!9fat!9pccpuf nobootprompt=tcp fs=10.0.2.2 auth=10.0.2.2 sysname=cpu1 console=0",
			"bootfile bootargs nobootprompt fs auth venti sysname console"},
		// 4e minimal cpu disk (9pccpu), auth from the standalone auth1.
		{"cpu2", "bootfile=sdC0!9fat!9pccpu nobootprompt=tcp fs=10.0.2.3 auth=10.0.2.4 sysname=cpu2 console=0",
			"bootfile bootargs nobootprompt fs auth venti sysname console"},
		// 9front: one kernel, the role by service=.
		{"cpu3", "bootfile=9pc64 nobootprompt=tcp fs=10.0.2.2 auth=10.0.2.6 service=cpu sysname=cpu3 console=0",
			"bootfile bootargs nobootprompt fs auth venti sysname console service"},
		{"auth9", "bootfile=9pc64 bootargs=local!/dev/sdC0/fscache nobootprompt=local!/dev/sdC0/fscache service=cpu sysname=auth9 console=0",
			"bootfile bootargs nobootprompt sysname console service"},
		// The embedded venti has no disk to configure.
		{"venti", "", ""},
	} {
		c := config(t, g, tc.node)
		var got []string
		for _, kv := range c.Ini {
			got = append(got, kv.Key+"="+kv.Value)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s plan9.ini:\n got %s\nwant %s", tc.node, strings.Join(got, " "), tc.want)
		}
		if strings.Join(c.Owned, " ") != tc.owned {
			t.Errorf("%s owned keys %v, want %s", tc.node, c.Owned, tc.owned)
		}
		for _, kv := range c.Ini {
			if !slices.Contains(c.Owned, kv.Key) {
				t.Errorf("%s sets %s but does not own it", tc.node, kv.Key)
			}
		}
	}
	if c := config(t, g, "venti1"); !slices.Equal(c.VentiConfig, []string{"addr tcp!*!17034", "httpaddr tcp!*!8000"}) {
		t.Errorf("venti VM config block lines %v", c.VentiConfig)
	}
	// Local-root nodes carry the grid's ndb; cpus (root from a fossil) don't.
	for _, n := range g.Nodes {
		c := config(t, g, n.Name)
		if hasLocalRoot := n.HasVM() && n.Kind != KindCPU; hasLocalRoot != (c.Ndb != "") {
			t.Errorf("%s: ndb %q", n.Name, c.Ndb)
		}
		if (n.Kind.ServesAuth()) != (c.AuthNdb != "") {
			t.Errorf("%s: auth ndb %q", n.Name, c.AuthNdb)
		}
	}
	// Static boot (plan9-grid-roles.md 3.2, Cstatic.img), 4e/9legacy only.
	g.Network.StaticBoot = true
	g.Network.Gateway = ip("10.0.2.2")
	g.Nodes[1].IP = ip("10.0.2.7") // fossil1 off the gateway
	if err := g.SetIP("cpu1", ip("10.0.2.16")); err != nil {
		t.Fatal(err)
	}
	if v, _ := config(t, g, "cpu1").Value("nobootprompt"); v != "tcp -g 10.0.2.2 ether /net/ether0 10.0.2.16 255.255.255.0" {
		t.Errorf("static nobootprompt %q", v)
	}
	if v, _ := config(t, g, "cpu3").Value("nobootprompt"); v != "tcp" {
		t.Errorf("9front static nobootprompt %q, want tcp", v)
	}
}

// TestLinkChanges: for each kind of change, which nodes become affected
// (Affected), and that making the change raises exactly their ConfigGen.
func TestLinkChanges(t *testing.T) {
	build := func(t *testing.T) *Grid {
		g, err := Empty()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []NodeSpec{
			{Name: "venti", Kind: KindVenti, Embedded: true},
			{Name: "fossil1", Kind: KindFossilAuth, Seed: goldenSeed},
			{Name: "cpu1", Kind: KindCPU, Seed: goldenSeed},
			{Name: "fossil2", Kind: KindFossil, Seed: goldenSeed},
			{Name: "auth1", Kind: KindAuth, Seed: goldenSeed},
			{Name: "cpu2", Kind: KindCPU, Seed: minCPUSeed},
		} {
			if _, err := g.AddNode(s); err != nil {
				t.Fatal(err)
			}
		}
		for _, w := range [][2]string{{"fossil1", "venti"}, {"cpu1", "fossil1"}, {"cpu2", "fossil2"}, {"cpu2", "auth1"}} {
			if _, err := g.Wire(w[0], w[1]); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range g.Nodes {
			if err := g.MarkApplied(n.Name, n.ConfigGen); err != nil {
				t.Fatal(err)
			}
		}
		return g
	}
	ip := netip.MustParseAddr
	// holders: the nodes whose own root holds /lib/ndb/local with every
	// peer, so any name, address or link change reaches them.
	for _, tc := range []struct {
		name     string
		change   func(*Grid) error
		affected string
		check    func(t *testing.T, g *Grid)
	}{
		{"wire fossil2 to venti", func(g *Grid) error { _, err := g.Wire("fossil2", "venti"); return err },
			"fossil1 fossil2 auth1", func(t *testing.T, g *Grid) {
				if v, _ := config(t, g, "fossil2").Value("venti"); v != "tcp!10.0.9.254!17034" {
					t.Errorf("fossil2 venti=%s", v)
				}
			}},
		{"unwire fossil1 from venti", func(g *Grid) error { return g.Unwire("fossil1", "venti") },
			"fossil1 fossil2 auth1", func(t *testing.T, g *Grid) {
				if v, _ := config(t, g, "fossil1").Value("venti"); v != "#S/sdC0/arenas" {
					t.Errorf("unwired fossil1 venti=%s, want its own arenas", v)
				}
			}},
		{"unwire cpu1 from fossil1", func(g *Grid) error { return g.Unwire("cpu1", "fossil1") },
			"fossil1 cpu1 fossil2 auth1", func(t *testing.T, g *Grid) {
				c := config(t, g, "cpu1")
				edits := MergeIni([]KV{{"fs", "10.0.9.10"}, {"auth", "10.0.9.10"}, {"*nomp", "1"}}, c)
				if !slices.Contains(edits, IniEdit{Key: "fs", Delete: true}) || !slices.Contains(edits, IniEdit{Key: "auth", Delete: true}) {
					t.Errorf("unwired cpu1 edits %v: want fs and auth deleted", edits)
				}
				if strings.Contains(config(t, g, "fossil1").AuthNdb, "hostid=") {
					t.Error("fossil1 still lists a speaks-for entry for cpu1")
				}
			}},
		{"rewire cpu1 to fossil2 with auth1", func(g *Grid) error {
			if err := g.Unwire("cpu1", "fossil1"); err != nil {
				return err
			}
			if _, err := g.Wire("cpu1", "fossil2"); err != nil {
				return err
			}
			_, err := g.Wire("cpu1", "auth1")
			return err
		}, "fossil1 cpu1 fossil2 auth1", func(t *testing.T, g *Grid) {
			c := config(t, g, "cpu1")
			fs, _ := c.Value("fs")
			auth, _ := c.Value("auth")
			if fs != g.Node("fossil2").IP.String() || auth != g.Node("auth1").IP.String() {
				t.Errorf("cpu1 fs=%s auth=%s", fs, auth)
			}
		}},
		{"rename cpu1", func(g *Grid) error { return g.Rename("cpu1", "cpu9") },
			"fossil1 cpu9 fossil2 auth1", func(t *testing.T, g *Grid) {
				if v, _ := config(t, g, "cpu9").Value("sysname"); v != "cpu9" {
					t.Errorf("sysname %s", v)
				}
				if !strings.Contains(config(t, g, "fossil2").Ndb, "sys=cpu9 ip=10.0.9.11 ether=") {
					t.Errorf("ndb does not know cpu9:\n%s", config(t, g, "fossil2").Ndb)
				}
			}},
		{"rename fossil2 (sysname stays helix, cpus use its ip)", func(g *Grid) error { return g.Rename("fossil2", "files") },
			"fossil1 files auth1", nil},
		{"new fossil1 address", func(g *Grid) error { return g.SetIP("fossil1", ip("10.0.9.99")) },
			"fossil1 cpu1 fossil2 auth1", func(t *testing.T, g *Grid) {
				if v, _ := config(t, g, "cpu1").Value("fs"); v != "10.0.9.99" {
					t.Errorf("cpu1 fs=%s", v)
				}
			}},
		{"new cpu2 address (DHCP: only the ndb changes)", func(g *Grid) error { return g.SetIP("cpu2", ip("10.0.9.98")) },
			"fossil1 fossil2 auth1", nil},
		{"static boot: new cpu2 address", func(g *Grid) error { return g.SetIP("cpu2", ip("10.0.9.98")) },
			"fossil1 fossil2 auth1 cpu2", nil},
		{"new cpu1 owner", func(g *Grid) error { return g.SetIdentity("cpu1", "glenda", "grid") },
			"fossil1 cpu1", nil},
		{"move is not configuration", func(g *Grid) error { return g.Move("cpu1", 1, 2) }, "", nil},
		{"arrange is not configuration", func(g *Grid) error { g.Arrange(); return nil }, "", nil},
		{"add an unwired cpu", func(g *Grid) error {
			_, err := g.AddNode(NodeSpec{Name: "cpu3", Kind: KindCPU, Seed: minCPUSeed})
			return err
		}, "fossil1 fossil2 auth1 cpu3", nil},
		{"clone cpu1", func(g *Grid) error { _, err := g.CloneNode("cpu1", ""); return err },
			"fossil1 fossil2 auth1 cpu3", func(t *testing.T, g *Grid) {
				c := config(t, g, "cpu3")
				if v, _ := c.Value("fs"); v != g.Node("fossil1").IP.String() {
					t.Errorf("clone of cpu1 has fs=%s", v)
				}
			}},
		{"remove auth1", func(g *Grid) error { return g.RemoveNode("auth1") },
			"fossil1 fossil2 cpu2", func(t *testing.T, g *Grid) {
				if _, ok := config(t, g, "cpu2").Value("auth"); ok {
					t.Error("cpu2 still has auth= after its auth server was removed")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := build(t)
			if strings.HasPrefix(tc.name, "static boot:") {
				g.SetStaticBoot(true)
				for _, n := range g.Nodes {
					n.AppliedGen = n.ConfigGen
				}
			}
			got, err := g.Affected(tc.change)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tc.affected {
				t.Errorf("Affected = %q, want %q", strings.Join(got, " "), tc.affected)
			}
			if len(g.Pending()) != 0 {
				t.Fatalf("Affected changed the grid: pending %v", g.Pending())
			}
			if err := tc.change(g); err != nil {
				t.Fatal(err)
			}
			var pending []string
			for _, n := range g.Pending() {
				pending = append(pending, n.Name)
			}
			if strings.Join(pending, " ") != tc.affected {
				t.Errorf("pending after the change %q, want %q", strings.Join(pending, " "), tc.affected)
			}
			if tc.check != nil {
				tc.check(t, g)
			}
		})
	}
}

// TestMergeIniProperties: applying MergeIni's edits to any plan9.ini makes
// the owned keys right in one step and keeps every other line, in order.
func TestMergeIniProperties(t *testing.T) {
	g := docGrid(t, true)
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"bootfile", "bootargs", "nobootprompt", "fs", "auth", "venti", "sysname", "console", "service", "*nomp", "baud", "mouseport", "user"}
	for _, name := range []string{"fossil1", "cpuc"} {
		c := config(t, g, name)
		for i := 0; i < 500; i++ {
			var cur []KV
			for j := rng.IntN(12); j > 0; j-- {
				cur = append(cur, KV{keys[rng.IntN(len(keys))], []string{"0", "1", "tcp", "x"}[rng.IntN(4)]})
			}
			out := ApplyIni(cur, MergeIni(cur, c))
			if again := MergeIni(out, c); len(again) != 0 {
				t.Fatalf("%s: %v -> %v still needs %v", name, cur, out, again)
			}
			var userIn, userOut []KV
			for _, kv := range cur {
				if !slices.Contains(c.Owned, kv.Key) {
					userIn = append(userIn, kv)
				}
			}
			for _, kv := range out {
				if !slices.Contains(c.Owned, kv.Key) {
					userOut = append(userOut, kv)
				}
			}
			if !slices.Equal(userIn, userOut) {
				t.Fatalf("%s: user keys changed: %v -> %v", name, userIn, userOut)
			}
			for _, kv := range c.Ini {
				if n := slices.Index(out, kv); n < 0 {
					t.Fatalf("%s: %v missing from %v", name, kv, out)
				}
			}
		}
	}
}

// TestNdb checks the peers section against the entries that made
// auth/debug and ndb/csquery work on C (plan9-grid-roles.md 4.2), and its
// replacement in an existing /lib/ndb/local.
func TestNdb(t *testing.T) {
	g := docGrid(t, true)
	f, c := g.Node("fossil1"), g.Node("cpuc")
	want := "# gridlord grid grid: begin (generated; edits up to the end line are replaced)\n" +
		"ipnet=grid ip=10.0.2.0 ipmask=255.255.255.0 ipgw=10.0.2.1 auth=10.0.2.2 authdom=grid fs=10.0.2.2 venti=10.0.2.254\n" +
		"authdom=grid auth=10.0.2.2\n" +
		"sys=venti ip=10.0.2.254\n" +
		"sys=fossil1 ip=10.0.2.2 ether=" + f.MAC.Ndb() + " venti=10.0.2.254\n" +
		"sys=cpuc ip=" + c.IP.String() + " ether=" + c.MAC.Ndb() + " fs=10.0.2.2 auth=10.0.2.2\n" +
		"# gridlord grid grid: end\n"
	if got := g.Ndb(); got != want {
		t.Errorf("ndb:\n%s\nwant\n%s", got, want)
	}
	if len(f.MAC.Ndb()) != 12 {
		t.Errorf("ether=%s is not 12 hex digits", f.MAC.Ndb())
	}
	stock := "#\n# stock /lib/ndb/local\n#\ndatabase=\n\tfile=/lib/ndb/local\n"
	once := ReplaceSection(stock, g.Ndb())
	if once != stock+want {
		t.Errorf("first insert:\n%s", once)
	}
	if err := g.Rename("cpuc", "cpud"); err != nil {
		t.Fatal(err)
	}
	twice := ReplaceSection(once+"sys=other ip=1.2.3.4\n", g.Ndb())
	if twice != stock+g.Ndb()+"sys=other ip=1.2.3.4\n" || strings.Contains(twice, "cpuc") {
		t.Errorf("replacement:\n%s", twice)
	}
	if got := g.RemoveSection(twice); got != stock+"sys=other ip=1.2.3.4\n" {
		t.Errorf("removal:\n%s", got)
	}
	// Speaks-for entries on the auth server, for its cpus' owners.
	sf := g.SpeaksFor(f)
	if !strings.Contains(sf, "\nhostid=bootes\n\tuid=!sys uid=!adm uid=*\n") {
		t.Errorf("speaks-for:\n%s", sf)
	}
}
