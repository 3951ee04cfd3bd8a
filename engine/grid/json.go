package grid

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// MAC is a 48-bit Ethernet address. In JSON it is "52:54:00:12:34:56";
// the zero MAC (the embedded venti's) is "".
type MAC [6]byte

// String returns the address as six colon-separated hex bytes, as QEMU's
// -device ...,mac= wants it; "" for the zero MAC.
func (m MAC) String() string {
	if m.IsZero() {
		return ""
	}
	return net.HardwareAddr(m[:]).String()
}

// Ndb returns the address as Plan 9 ndb writes ether=: 12 hex digits.
func (m MAC) Ndb() string { return fmt.Sprintf("%x", m[:]) }

// IsZero reports whether m is all zeros.
func (m MAC) IsZero() bool { return m == MAC{} }

// MarshalText implements encoding.TextMarshaler.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts what
// net.ParseMAC does for 6-byte addresses, and "" for zero.
func (m *MAC) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*m = MAC{}
		return nil
	}
	hw, err := net.ParseMAC(string(b))
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("mac %q is not six hex bytes like 52:54:00:12:34:56", b)
	}
	copy(m[:], hw)
	return nil
}

// DeriveMAC returns the MAC of the node with the given ID: QEMU's prefix
// 52:54:00 (its first byte has the locally-administered bit set and the
// multicast bit clear) followed by the first three bytes of the SHA-256 of
// the UUID's 16 bytes (engine/network.MACFromUUID computes the same), or,
// for attempt n > 0, of those bytes followed by n as 4 big-endian bytes.
// attempt starts at 0 and is raised only when the result collides with
// another node's MAC in the same grid (or is QEMU's default
// 52:54:00:12:34:56), so a node keeps the same MAC for its whole life.
func DeriveMAC(id uuid.UUID, attempt int) MAC {
	b := id[:]
	if attempt > 0 {
		b = append(b[:16:16], byte(attempt>>24), byte(attempt>>16), byte(attempt>>8), byte(attempt))
	}
	h := sha256.Sum256(b)
	return MAC{0x52, 0x54, 0x00, h[0], h[1], h[2]}
}

// qemuDefaultMAC is what QEMU gives every NIC without mac=.
var qemuDefaultMAC = MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// The JSON field types: conversions drop the methods so encoding/json does
// the work, and decodeObject/encodeObject keep the unknown members.
type (
	positionFields Position
	nodeFields     Node
	linkFields     Link
	networkFields  Network
	seedFields     SeedRecord
	gridFields     Grid
)

// MarshalJSON implements json.Marshaler, keeping unknown members.
func (p Position) MarshalJSON() ([]byte, error) { return encodeObject(positionFields(p), p.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (p *Position) UnmarshalJSON(b []byte) error {
	var f positionFields
	if err := decodeObject(b, &f, &f.Extra); err != nil {
		return err
	}
	*p = Position(f)
	return nil
}

// MarshalJSON implements json.Marshaler, keeping unknown members.
func (n Node) MarshalJSON() ([]byte, error) { return encodeObject(nodeFields(n), n.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (n *Node) UnmarshalJSON(b []byte) error {
	var f nodeFields
	if err := decodeObject(b, &f, &f.Extra); err != nil {
		return err
	}
	*n = Node(f)
	return nil
}

// MarshalJSON implements json.Marshaler, keeping unknown members.
func (l Link) MarshalJSON() ([]byte, error) { return encodeObject(linkFields(l), l.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (l *Link) UnmarshalJSON(b []byte) error {
	var f linkFields
	if err := decodeObject(b, &f, &f.Extra); err != nil {
		return err
	}
	*l = Link(f)
	return nil
}

// MarshalJSON implements json.Marshaler, keeping unknown members.
func (n Network) MarshalJSON() ([]byte, error) { return encodeObject(networkFields(n), n.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (n *Network) UnmarshalJSON(b []byte) error {
	var f networkFields
	if err := decodeObject(b, &f, &f.Extra); err != nil {
		return err
	}
	*n = Network(f)
	return nil
}

// MarshalJSON implements json.Marshaler, keeping unknown members.
func (s SeedRecord) MarshalJSON() ([]byte, error) { return encodeObject(seedFields(s), s.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (s *SeedRecord) UnmarshalJSON(b []byte) error {
	var f seedFields
	if err := decodeObject(b, &f, &f.Extra); err != nil {
		return err
	}
	*s = SeedRecord(f)
	return nil
}

// Marshal returns grid.json's bytes: indented JSON ending in a newline.
func (g *Grid) Marshal() ([]byte, error) {
	b, err := encodeObject(gridFields{
		Version: g.Version, Name: g.Name, Network: g.Network,
		Nodes: g.Nodes, Links: g.Links, Seeds: g.Seeds,
	}, g.Extra)
	if err != nil {
		return nil, fmt.Errorf("encode grid %s: %w", g.Name, err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, fmt.Errorf("encode grid %s: %w", g.Name, err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Parse decodes and validates grid.json bytes. name labels every error
// (normally the file's path). The grid it returns has no directory; use
// Load for a grid on disk. Options other than WithCatalog are ignored.
func Parse(name string, data []byte, opts ...Option) (*Grid, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	g, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	g.catalog = o.catalog
	g.refresh()
	return g, nil
}

func parse(data []byte) (*Grid, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty: restore grid.json.bak or recreate the grid")
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(data, se.Offset)
			return nil, fmt.Errorf("line %d, column %d: %v", line, col, se)
		}
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil || probe.Version == nil {
		return nil, errors.New(`no "version" number: this is not a Gridlord grid.json`)
	}
	if *probe.Version > SchemaVersion {
		return nil, fmt.Errorf("schema version %d was written by a newer Gridlord (this one reads up to %d): upgrade Gridlord", *probe.Version, SchemaVersion)
	}
	if *probe.Version < 1 {
		return nil, fmt.Errorf("schema version %d is not valid (want %d)", *probe.Version, SchemaVersion)
	}
	var f gridFields
	if err := decodeObject(data, &f, &f.Extra); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			where := te.Field
			if where == "" {
				where = "a value"
			}
			return nil, fmt.Errorf("%s: JSON %s where %s was expected", where, te.Value, te.Type)
		}
		return nil, err
	}
	g := &Grid{Version: f.Version, Name: f.Name, Network: f.Network, Nodes: f.Nodes, Links: f.Links, Seeds: f.Seeds, Extra: f.Extra}
	if err := g.validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

var (
	sysnameRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,26}$`)
	gridNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// userRE is an nvram authid/authdom: printable, no spaces or '=', and
	// short enough for Nvrsafe (authid 28, authdom 48 bytes with the NUL).
	userRE    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,27}$`)
	authDomRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,47}$`)
)

// checkName reports whether name can be a node name.
func checkName(name string) error {
	if !sysnameRE.MatchString(name) {
		return fmt.Errorf("node name %q must start with a letter and have at most 27 letters, digits or '-' (it becomes the Plan 9 sysname)", name)
	}
	return nil
}

// validate checks everything Parse must refuse.
func (g *Grid) validate() error {
	if !gridNameRE.MatchString(g.Name) {
		return fmt.Errorf("grid name %q must be 1-64 letters, digits, '.', '_' or '-'", g.Name)
	}
	if err := g.Network.validate(); err != nil {
		return err
	}
	if err := checkFailover(g.Network.Failover); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	ids := map[uuid.UUID]bool{}
	names := map[string]bool{}
	ips := map[netip.Addr]string{}
	macs := map[MAC]string{}
	embedded := ""
	for i, n := range g.Nodes {
		if n == nil {
			return fmt.Errorf("nodes[%d] is null", i)
		}
		what := fmt.Sprintf("node %d (%s)", i, n.Name)
		if n.ID == uuid.Nil {
			return fmt.Errorf("%s: no id", what)
		}
		if ids[n.ID] {
			return fmt.Errorf("%s: id %s used twice", what, n.ID)
		}
		ids[n.ID] = true
		if err := checkName(n.Name); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		if names[n.Name] {
			return fmt.Errorf("%s: name used twice", what)
		}
		names[n.Name] = true
		if !n.Kind.Valid() {
			return fmt.Errorf("%s: kind %q is not one of venti, fossil, fossil+auth, cpu, auth", what, n.Kind)
		}
		if n.Embedded && n.Kind != KindVenti {
			return fmt.Errorf("%s: only a venti can be embedded", what)
		}
		if n.AppliedGen > n.ConfigGen {
			return fmt.Errorf("%s: appliedGen %d is ahead of configGen %d", what, n.AppliedGen, n.ConfigGen)
		}
		if n.User != "" && !userRE.MatchString(n.User) {
			return fmt.Errorf("%s: user %q must be 1-27 letters, digits, '.', '_' or '-'", what, n.User)
		}
		if n.AuthDom != "" && !authDomRE.MatchString(n.AuthDom) {
			return fmt.Errorf("%s: authDom %q must be 1-47 letters, digits, '.', '_' or '-'", what, n.AuthDom)
		}
		if n.CloneOf != nil && *n.CloneOf == n.ID {
			return fmt.Errorf("%s: cloneOf names the node itself", what)
		}
		if !n.HasVM() {
			if embedded != "" {
				return fmt.Errorf("%s: a grid has at most one embedded venti (%s is one)", what, embedded)
			}
			embedded = n.Name
			if n.IP != g.Network.Host {
				return fmt.Errorf("%s: the embedded venti's ip must be the network's host address %s, not %s", what, g.Network.Host, n.IP)
			}
			if !n.MAC.IsZero() {
				return fmt.Errorf("%s: the embedded venti has no NIC, so no mac", what)
			}
			continue
		}
		if n.Seed == "" {
			return fmt.Errorf("%s: no seed", what)
		}
		if n.MemoryMB < 16 || n.MemoryMB > 1<<20 {
			return fmt.Errorf("%s: memoryMB %d is out of range (16 to 1048576)", what, n.MemoryMB)
		}
		if err := g.Network.usable(n.IP); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if other, ok := ips[n.IP]; ok {
			return fmt.Errorf("%s: ip %s is also %s's", what, n.IP, other)
		}
		ips[n.IP] = n.Name
		if n.MAC.IsZero() || n.MAC[0]&1 != 0 {
			return fmt.Errorf("%s: mac %q must be a non-zero unicast address", what, n.MAC)
		}
		if other, ok := macs[n.MAC]; ok {
			return fmt.Errorf("%s: mac %s is also %s's", what, n.MAC, other)
		}
		macs[n.MAC] = n.Name
	}
	seeds := map[string]bool{}
	for i, s := range g.Seeds {
		if s == nil {
			return fmt.Errorf("seeds[%d] is null", i)
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("seeds[%d]: %w", i, err)
		}
		if seeds[s.Name] {
			return fmt.Errorf("seeds[%d]: seed %s recorded twice", i, s.Name)
		}
		seeds[s.Name] = true
	}
	links := g.Links
	g.Links = nil
	for i, l := range links {
		if l == nil {
			return fmt.Errorf("links[%d] is null", i)
		}
		from, to := g.NodeByID(l.From), g.NodeByID(l.To)
		if from == nil || to == nil {
			return fmt.Errorf("links[%d]: %s end %s is not a node of the grid", i, map[bool]string{true: "from", false: "to"}[from == nil], map[bool]uuid.UUID{true: l.From, false: l.To}[from == nil])
		}
		if err := g.checkWire(from, to, l.Kind); err != nil {
			return fmt.Errorf("links[%d]: %w", i, err)
		}
		g.Links = append(g.Links, l)
	}
	if g.Links == nil {
		g.Links = []*Link{}
	}
	if g.Nodes == nil {
		g.Nodes = []*Node{}
	}
	return nil
}

// validate checks the network's addresses.
func (nw *Network) validate() error {
	p := nw.Subnet
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("network subnet %q is not an IPv4 prefix like 10.0.9.0/24", p)
	}
	if p.Bits() < 8 || p.Bits() > 24 {
		return fmt.Errorf("network subnet %s: prefix length must be 8 to 24", p)
	}
	if p.Masked() != p {
		return fmt.Errorf("network subnet %s has host bits set (did you mean %s?)", p, p.Masked())
	}
	for _, a := range []struct {
		what string
		ip   netip.Addr
	}{{"gateway", nw.Gateway}, {"host", nw.Host}} {
		if !p.Contains(a.ip) || a.ip == p.Addr() || a.ip == broadcast(p) {
			return fmt.Errorf("network %s %q is not a host address in %s", a.what, a.ip, p)
		}
	}
	if nw.Gateway == nw.Host {
		return fmt.Errorf("network gateway and host are both %s", nw.Host)
	}
	return nil
}

// usable reports whether ip can be a VM node's address.
func (nw *Network) usable(ip netip.Addr) error {
	p := nw.Subnet
	switch {
	case !ip.IsValid():
		return errors.New("no ip")
	case !p.Contains(ip):
		return fmt.Errorf("ip %s is outside the grid's subnet %s", ip, p)
	case ip == p.Addr() || ip == broadcast(p):
		return fmt.Errorf("ip %s is the subnet's network or broadcast address", ip)
	case ip == nw.Gateway:
		return fmt.Errorf("ip %s is the network's gateway", ip)
	case ip == nw.Host:
		return fmt.Errorf("ip %s is the network's host address (the embedded venti's)", ip)
	}
	return nil
}

// broadcast returns the last address of p (IPv4).
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// Mask returns the subnet mask in dotted form (255.255.255.0).
func (nw *Network) Mask() string {
	m := net.CIDRMask(nw.Subnet.Bits(), 32)
	return net.IP(m).String()
}

// reservedNames returns the sysnames of seeds' own roots (e.g. helix) that
// no node may be called.
func (g *Grid) reservedNames() []string {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range g.Seeds {
		add(s.LocalSysname)
	}
	if g.catalog != nil {
		for _, s := range g.catalog.Seeds {
			add(s.LocalSysname)
		}
	}
	return out
}

// checkNewName checks a name for a node being added or renamed.
func (g *Grid) checkNewName(name string, self *Node) error {
	if err := checkName(name); err != nil {
		return err
	}
	if other := g.Node(name); other != nil && other != self {
		return fmt.Errorf("a node called %s already exists", name)
	}
	for _, r := range g.reservedNames() {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("cannot call a node %s: a seed's file server runs /cfg/%s/cpurc (keyfs and authsrv) on every machine of that name; pick another name", name, r)
		}
	}
	return nil
}
