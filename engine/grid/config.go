package grid

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"gridlord/images"
)

// Well-known ports of a Plan 9 grid.
const (
	FossilPort = 564   // 9fs: fossil serving 9P over tcp
	AuthPort   = 567   // ticket: authsrv
	VentiPort  = 17034 // venti
	// FailoverPort is where guests reach the grid's failover venti (a
	// mirror, Network.Failover) at the host address.
	FailoverPort = 17035
	CPUPort      = 17010 // ncpu: 4e cpu listener (drawterm -O)
	RCPUPort     = 17019 // rcpu: 9front cpu listener
	SecstorePort = 5356  // secstore
	// GridfsPort is where guests mount the grid's own tree (9P2000) at the
	// grid's host address: srv tcp!HOST!564.
	GridfsPort = 564
)

// ReadyPorts returns the ports a booted Plan 9 node of kind k from a seed of
// family f listens on once it is ready: a fossil's 564, an auth server's
// 567, a cpu server's cpu port (every 4e/9legacy role boots a cpu kernel,
// which runs the cpu listener; 9front's is rcpu), a venti VM's 17034.
func ReadyPorts(k Kind, f images.Family) []int {
	cpu := CPUPort
	if f == images.Family9front {
		cpu = RCPUPort
	}
	var ports []int
	if k.IsFossil() {
		ports = append(ports, FossilPort)
	}
	if k.ServesAuth() {
		ports = append(ports, AuthPort)
	}
	if k == KindVenti {
		ports = append(ports, VentiPort)
	}
	return append(ports, cpu)
}

// KV is one plan9.ini line, key=value.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Identity is what a node's nvram must hold: host owner and auth domain.
// The key (from the password) is not part of the model.
type Identity struct {
	AuthID  string `json:"authId"`
	AuthDom string `json:"authDom"`
}

// NodeConfig is everything Gridlord writes to (or, for ndb, into) one node
// because of its kind, seed and links. It is data only; see MergeIni,
// MergeConfigBlock and ReplaceSection for turning it into edits.
type NodeConfig struct {
	// Name, Kind and Seed identify the node.
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	Seed string `json:"seed,omitempty"`
	// Family is the seed's family (how the role is chosen).
	Family images.Family `json:"family,omitempty"`
	// Gen is the node's ConfigGen this configuration belongs to; pass it to
	// MarkApplied after writing. It is not part of the configuration.
	Gen uint64 `json:"-"`
	// Ini is the plan9.ini entries Gridlord wants, in this order.
	Ini []KV `json:"ini,omitempty"`
	// Owned is every plan9.ini key Gridlord owns for this node. Owned keys
	// missing from Ini must be deleted; keys not owned are the user's and
	// are never touched.
	Owned []string `json:"owned,omitempty"`
	// FossilConfig lists lines the fossil config block (fossil partition +
	// 127 KiB) must contain; nil if the node has no fossil to configure.
	FossilConfig []string `json:"fossilConfig,omitempty"`
	// VentiConfig lists lines the venti config block (arenas partition +
	// 248 KiB) must contain; only for venti VMs. Lines are directives: one
	// with the same first word is replaced.
	VentiConfig []string `json:"ventiConfig,omitempty"`
	// Identity is the nvram record; nil for the embedded venti.
	Identity *Identity `json:"identity,omitempty"`
	// Ndb is the section for /lib/ndb/local on the node's own root (nodes
	// that boot their own disk), describing every peer; see Grid.Ndb.
	Ndb string `json:"ndb,omitempty"`
	// AuthNdb is the section for /lib/ndb/auth on an auth server: the
	// speaks-for entries its cpus' host owners need.
	AuthNdb string `json:"authNdb,omitempty"`
}

// Value returns the desired value of key and whether Gridlord sets it.
func (c *NodeConfig) Value(key string) (string, bool) {
	for _, kv := range c.Ini {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Config derives the configuration of the named node from the grid (see
// NodeConfig). It fails if the node does not exist or its seed is unknown
// or cannot play its kind. A node whose links are incomplete still gets a
// configuration (missing fs= or auth= keys are then deleted); Check reports
// it.
//
// What each kind gets (4e/9legacy pick the role by kernel file; 9front by
// service=):
//
//	all VM nodes  bootfile (the seed's kernel for the kind), sysname, console=0
//	fossil        bootargs = nobootprompt = the seed's local root,
//	              venti=tcp!<venti ip>!17034 (unwired: the seed's own local
//	              venti, else none), fossil config "listen tcp!*!564"
//	fossil+auth   as fossil, plus speaks-for entries for its cpus' owners
//	cpu           nobootprompt=tcp, fs=<fossil ip>, auth=<auth ip>,
//	              service=cpu (9front); bootargs and venti deleted
//	auth          local root as fossil, service=cpu (9front); venti untouched
//	venti VM      local root, venti=<seed's local venti> tcp!*!17034 and venti
//	              config addr/httpaddr on all interfaces (inferred, not booted)
//
// A node booting the seed's own root keeps the seed's LocalSysname (helix
// for the 4e golden image, whose /cfg/helix/cpurc starts keyfs and
// authsrv); every other node's sysname is its name.
func (g *Grid) Config(name string) (*NodeConfig, error) {
	n, err := g.mustNode(name)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := g.derive(n)
	if err != nil {
		return nil, err
	}
	c.Gen = n.ConfigGen
	return c, nil
}

// derive computes n's configuration.
func (g *Grid) derive(n *Node) (*NodeConfig, error) { return g.deriveWith(n, g.Ndb) }

// ndbOnce returns g.Ndb computed at its first call only, for callers that
// derive every node: the ndb section is the same for all and costs a walk
// of the whole grid, so computing it per node made refresh and Check
// quadratic in the grid's size.
func (g *Grid) ndbOnce() func() string {
	var ndb string
	done := false
	return func() string {
		if !done {
			ndb, done = g.Ndb(), true
		}
		return ndb
	}
}

// deriveWith is derive taking the grid's ndb section from ndb.
func (g *Grid) deriveWith(n *Node, ndb func() string) (*NodeConfig, error) {
	c := &NodeConfig{Name: n.Name, Kind: n.Kind}
	if !n.HasVM() {
		return c, nil
	}
	s, err := g.Seed(n.Seed)
	if err != nil {
		return nil, fmt.Errorf("configure %s: %w", n.Name, err)
	}
	if !s.CanPlay(string(n.Kind)) {
		return nil, fmt.Errorf("configure %s: seed %s cannot boot as %s (it can be %v)", n.Name, s.Name, n.Kind, s.Roles)
	}
	c.Seed, c.Family = s.Name, s.Family
	c.Identity = &Identity{AuthID: n.User, AuthDom: n.AuthDom}
	kernel := s.Kernel(string(n.Kind))
	bootfile := kernel
	if s.Family.RoleByKernel() {
		bootfile = "sdC0!9fat!" + kernel
	}
	set := func(k, v string) { c.Ini = append(c.Ini, KV{k, v}) }
	ninefront := !s.Family.RoleByKernel()
	sysname := n.Name
	switch n.Kind {
	case KindCPU:
		c.Owned = []string{"bootfile", "bootargs", "nobootprompt", "fs", "auth", "venti", "sysname", "console"}
		set("bootfile", bootfile)
		boot := "tcp"
		if g.Network.StaticBoot && !ninefront {
			boot = fmt.Sprintf("tcp -g %s ether /net/ether0 %s %s", g.Network.Gateway, n.IP, g.Network.Mask())
		}
		set("nobootprompt", boot)
		if f := g.Target(n, LinkRoot); f != nil {
			set("fs", f.IP.String())
		}
		if a := g.AuthServer(n); a != nil {
			set("auth", a.IP.String())
		}
	case KindFossil, KindFossilAuth, KindAuth, KindVenti:
		c.Owned = []string{"bootfile", "bootargs", "nobootprompt", "sysname", "console"}
		set("bootfile", bootfile)
		set("bootargs", s.LocalRoot)
		set("nobootprompt", s.LocalRoot)
		if s.LocalSysname != "" {
			sysname = s.LocalSysname
		}
		switch {
		case n.Kind.IsFossil():
			c.Owned = append(c.Owned, "venti")
			if v := g.Target(n, LinkArchive); v != nil && v.Embedded && g.Network.Failover != "" {
				set("venti", fmt.Sprintf("tcp!%s!%d", g.Network.Host, FailoverPort))
			} else if v != nil {
				set("venti", fmt.Sprintf("tcp!%s!%d", v.IP, VentiPort))
			} else if s.LocalVenti != "" {
				set("venti", s.LocalVenti)
			}
			c.FossilConfig = []string{fmt.Sprintf("listen tcp!*!%d", FossilPort)}
		case n.Kind == KindVenti:
			c.Owned = append(c.Owned, "venti")
			set("venti", fmt.Sprintf("%s tcp!*!%d", s.LocalVenti, VentiPort))
			c.VentiConfig = []string{fmt.Sprintf("addr tcp!*!%d", VentiPort), "httpaddr tcp!*!8000"}
		}
		c.Ndb = ndb()
		if n.Kind.ServesAuth() {
			c.AuthNdb = g.SpeaksFor(n)
		}
	}
	if ninefront {
		c.Owned = append(c.Owned, "service")
		set("service", "cpu")
	}
	set("sysname", sysname)
	set("console", "0")
	return c, nil
}

// configSum fingerprints n's derived configuration.
func (g *Grid) configSum(n *Node, ndb func() string) string {
	c, err := g.deriveWith(n, ndb)
	var b []byte
	if err != nil {
		b = []byte("error: " + err.Error())
	} else if b, err = json.Marshal(c); err != nil {
		b = []byte("error: " + err.Error())
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// refresh recomputes every node's configuration fingerprint and raises the
// ConfigGen of those that changed. Nodes without a VM have nothing to
// apply and never stay pending.
func (g *Grid) refresh() {
	ndb := g.ndbOnce()
	for _, n := range g.Nodes {
		if sum := g.configSum(n, ndb); sum != n.ConfigSum {
			n.ConfigSum = sum
			n.ConfigGen++
		}
		if !n.HasVM() {
			n.AppliedGen = n.ConfigGen
		}
	}
}

// IniEdit is one change to plan9.ini.
type IniEdit struct {
	// Key is the variable.
	Key string `json:"key"`
	// Value is the new value (when not Delete).
	Value string `json:"value,omitempty"`
	// Delete removes every line setting Key.
	Delete bool `json:"delete,omitempty"`
}

// String returns "key=value" or "delete key".
func (e IniEdit) String() string {
	if e.Delete {
		return "delete " + e.Key
	}
	return e.Key + "=" + e.Value
}

// MergeIni compares a plan9.ini's current entries with a node's desired
// configuration and returns the edits that make the owned keys right,
// leaving every other key alone: a Set for each desired key that is
// missing, different, or set more than once, in c.Ini order; then a Delete
// for each owned key that is not desired but present. No edits means the
// file is right.
func MergeIni(current []KV, c *NodeConfig) []IniEdit {
	var edits []IniEdit
	for _, want := range c.Ini {
		n, same := 0, true
		for _, kv := range current {
			if kv.Key == want.Key {
				n++
				same = same && kv.Value == want.Value
			}
		}
		if n != 1 || !same {
			edits = append(edits, IniEdit{Key: want.Key, Value: want.Value})
		}
	}
	for _, k := range c.Owned {
		if _, wanted := c.Value(k); wanted {
			continue
		}
		if slices.ContainsFunc(current, func(kv KV) bool { return kv.Key == k }) {
			edits = append(edits, IniEdit{Key: k, Delete: true})
		}
	}
	return edits
}

// ApplyIni returns current with edits applied: a Set replaces the first
// line of its key in place and drops later ones, or appends the key at the
// end; a Delete drops every line of its key. current is not modified.
func ApplyIni(current []KV, edits []IniEdit) []KV {
	out := slices.Clone(current)
	for _, e := range edits {
		if e.Delete {
			out = slices.DeleteFunc(out, func(kv KV) bool { return kv.Key == e.Key })
			continue
		}
		i := slices.IndexFunc(out, func(kv KV) bool { return kv.Key == e.Key })
		if i < 0 {
			out = append(out, KV{e.Key, e.Value})
			continue
		}
		out[i].Value = e.Value
		rest := slices.DeleteFunc(out[i+1:], func(kv KV) bool { return kv.Key == e.Key })
		out = out[:i+1+len(rest)]
	}
	return out
}

// Config block headers and sizes (plan9-boot-facts.md 1.5).
const (
	// FossilConfigHeader starts the fossil config block (fossil partition
	// + 127 KiB).
	FossilConfigHeader = "fossil config\n"
	// FossilConfigMax is the fossil config block's size.
	FossilConfigMax = 1024
	// VentiConfigHeader starts the venti config block (arenas partition +
	// 248 KiB).
	VentiConfigHeader = "venti config\n"
	// VentiConfigMax is the venti config block's size.
	VentiConfigMax = 8192
)

// MergeConfigBlock returns the text of a fossil or venti config block that
// contains every line of want, and whether it differs from current.
// current is the block as read from disk (trailing NULs are ignored) and
// must start with header (FossilConfigHeader or VentiConfigHeader). Lines
// already present (ignoring surrounding blanks) stay as they are; missing
// ones are appended in order. With byVerb (venti config directives like
// addr), a wanted line replaces the existing line with the same first
// word. The result, without NUL padding, must fit in max bytes; padding it
// and writing it back are the caller's job.
func MergeConfigBlock(current []byte, header string, max int, want []string, byVerb bool) (string, bool, error) {
	text := strings.TrimRight(string(current), "\x00")
	what := strings.TrimSuffix(header, "\n")
	if !strings.HasPrefix(text, header) {
		return "", false, fmt.Errorf("%s block: it does not start %q (is this the right partition?)", what, what)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	changed := false
	for _, w := range want {
		w = strings.TrimSpace(w)
		if slices.ContainsFunc(lines, func(l string) bool { return strings.TrimSpace(l) == w }) {
			continue
		}
		changed = true
		if byVerb {
			verb := firstWord(w)
			if i := slices.IndexFunc(lines[1:], func(l string) bool { return firstWord(l) == verb }); i >= 0 {
				lines[i+1] = w
				continue
			}
		}
		lines = append(lines, w)
	}
	out := strings.Join(lines, "\n") + "\n"
	if len(out) > max {
		return "", false, fmt.Errorf("%s block: %d bytes with Gridlord's lines, more than the %d that fit", what, len(out), max)
	}
	return out, changed || out != text, nil
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// sectionMarkers returns the first and last line of the grid's ndb
// sections.
func (g *Grid) sectionMarkers() (begin, end string) {
	return fmt.Sprintf("# gridlord grid %s: begin (generated; edits up to the end line are replaced)", g.Name),
		fmt.Sprintf("# gridlord grid %s: end", g.Name)
}

// Ndb returns the grid's section for /lib/ndb/local: the ipnet with the
// gateway (and fs, auth, authdom and venti when the grid has one of each),
// an authdom=/auth= line per auth domain, and one sys= entry per node with
// its ip, ether and the fs, auth and venti it uses. It is the same for every
// node, so each knows its peers (plan9-grid-roles.md 4.2).
func (g *Grid) Ndb() string {
	var b strings.Builder
	begin, end := g.sectionMarkers()
	b.WriteString(begin + "\n")
	nw := &g.Network
	fmt.Fprintf(&b, "ipnet=%s ip=%s ipmask=%s ipgw=%s", g.Name, nw.Subnet.Addr(), nw.Mask(), nw.Gateway)
	var fossils, auths, ventis []*Node
	doms := map[string][]string{}
	var domOrder []string
	for _, n := range g.Nodes {
		switch {
		case n.Kind.IsFossil():
			fossils = append(fossils, n)
		case n.Kind == KindVenti:
			ventis = append(ventis, n)
		}
		if n.Kind.ServesAuth() {
			auths = append(auths, n)
			if _, ok := doms[n.AuthDom]; !ok {
				domOrder = append(domOrder, n.AuthDom)
			}
			doms[n.AuthDom] = append(doms[n.AuthDom], n.IP.String())
		}
	}
	if len(auths) == 1 {
		fmt.Fprintf(&b, " auth=%s authdom=%s", auths[0].IP, auths[0].AuthDom)
	}
	if len(fossils) == 1 {
		fmt.Fprintf(&b, " fs=%s", fossils[0].IP)
	}
	if len(ventis) == 1 {
		fmt.Fprintf(&b, " venti=%s", ventis[0].IP)
	}
	b.WriteString("\n")
	for _, d := range domOrder {
		fmt.Fprintf(&b, "authdom=%s", d)
		for _, ip := range doms[d] {
			fmt.Fprintf(&b, " auth=%s", ip)
		}
		b.WriteString("\n")
	}
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, "sys=%s ip=%s", n.Name, n.IP)
		if !n.MAC.IsZero() {
			fmt.Fprintf(&b, " ether=%s", n.MAC.Ndb())
		}
		if f := g.Target(n, LinkRoot); f != nil {
			fmt.Fprintf(&b, " fs=%s", f.IP)
		}
		if a := g.AuthServer(n); a != nil {
			fmt.Fprintf(&b, " auth=%s", a.IP)
		}
		if v := g.Target(n, LinkArchive); v != nil {
			fmt.Fprintf(&b, " venti=%s", v.IP)
		}
		b.WriteString("\n")
	}
	b.WriteString(end + "\n")
	return b.String()
}

// SpeaksFor returns the section for auth server a's /lib/ndb/auth: for each
// host owner of a cpu that authenticates with a, the entry
//
//	hostid=<owner>
//		uid=!sys uid=!adm uid=*
//
// which lets that cpu act for other users (plan9-grid-roles.md 4.3; shown
// for a hostowner other than bootes, inferred for bootes). With no cpu
// using a it is just the markers, so ReplaceSection clears old entries.
func (g *Grid) SpeaksFor(a *Node) string {
	var owners []string
	for _, n := range g.Nodes {
		if n.Kind == KindCPU && g.AuthServer(n) == a && !slices.Contains(owners, n.User) {
			owners = append(owners, n.User)
		}
	}
	var b strings.Builder
	begin, end := g.sectionMarkers()
	b.WriteString(begin + "\n")
	for _, o := range owners {
		fmt.Fprintf(&b, "hostid=%s\n\tuid=!sys uid=!adm uid=*\n", o)
	}
	b.WriteString(end + "\n")
	return b.String()
}

// ReplaceSection returns file (an ndb file's text) with section (from Ndb
// or SpeaksFor: its first and last lines are the grid's markers) in place
// of the same grid's previous section, or appended if there is none.
// Everything outside the markers is kept byte for byte. An empty section
// returns file unchanged (see Grid.RemoveSection).
func ReplaceSection(file, section string) string {
	if section == "" {
		return file
	}
	body := strings.TrimSuffix(section, "\n")
	begin := body[:strings.IndexByte(body+"\n", '\n')]
	end := body[strings.LastIndexByte(body, '\n')+1:]
	return replaceBetween(file, begin, end, section)
}

// RemoveSection returns file without grid g's ndb section.
func (g *Grid) RemoveSection(file string) string {
	begin, end := g.sectionMarkers()
	return replaceBetween(file, begin, end, "")
}

func replaceBetween(file, begin, end, with string) string {
	i := strings.Index(file, begin+"\n")
	if i < 0 || (i > 0 && file[i-1] != '\n') {
		if with == "" {
			return file
		}
		if file != "" && !strings.HasSuffix(file, "\n") {
			file += "\n"
		}
		return file + with
	}
	j := strings.Index(file[i:], "\n"+end+"\n")
	if j < 0 {
		// A begin marker without its end: replace to the end of the file
		// rather than leave a half section.
		return file[:i] + with
	}
	return file[:i] + with + file[i+j+len(end)+2:]
}
