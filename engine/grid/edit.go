package grid

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"

	"github.com/google/uuid"
)

// Defaults for new nodes when neither the caller nor the seed says.
const (
	// DefaultMemoryMB is a VM node's guest memory.
	DefaultMemoryMB = 512
	// DefaultUser is the host owner (authid) of new nodes.
	DefaultUser = "bootes"
	// DefaultAuthDom is the auth domain of new nodes.
	DefaultAuthDom = "grid"
)

// NodeSpec describes a node to add. Zero fields get defaults.
type NodeSpec struct {
	// Name is the node's name; "" picks the next free "<kind>N" (cpu2).
	Name string
	// Kind is the node's role (required).
	Kind Kind
	// Embedded asks for the engine's own venti (KindVenti only).
	Embedded bool
	// Seed names the seed image (required unless Embedded); it must list
	// Kind among its roles.
	Seed string
	// MemoryMB defaults to the seed's, else DefaultMemoryMB.
	MemoryMB int
	// IP defaults to the next free address (see NextIP).
	IP netip.Addr
	// User and AuthDom default to the seed's nvram identity, else
	// DefaultUser and DefaultAuthDom.
	User, AuthDom string
	// Position defaults to the foot of the kind's column.
	Position *Position
	// ID defaults to a new random UUID (set it only to recreate a node).
	ID uuid.UUID
}

// AddNode adds a node, allocating its ID, MAC and IP, and returns it.
// The new node is pending: its disk has never been configured.
func (g *Grid) AddNode(spec NodeSpec) (*Node, error) {
	n, err := g.newNode(spec)
	if err != nil {
		name := spec.Name
		if name == "" {
			name = "a " + string(spec.Kind)
		}
		return nil, fmt.Errorf("add %s to grid %s: %w", name, g.Name, err)
	}
	g.Nodes = append(g.Nodes, n)
	g.refresh()
	return n, nil
}

func (g *Grid) newNode(spec NodeSpec) (*Node, error) {
	if !spec.Kind.Valid() {
		return nil, fmt.Errorf("kind %q is not one of venti, fossil, fossil+auth, cpu, auth", spec.Kind)
	}
	n := &Node{ID: spec.ID, Name: spec.Name, Kind: spec.Kind, Embedded: spec.Embedded}
	if n.ID == uuid.Nil {
		n.ID = uuid.New()
	} else if g.NodeByID(n.ID) != nil {
		return nil, fmt.Errorf("id %s is taken", n.ID)
	}
	if n.Name == "" {
		n.Name = g.NextName(spec.Kind)
	}
	if err := g.checkNewName(n.Name, nil); err != nil {
		return nil, err
	}
	if spec.Embedded {
		if spec.Kind != KindVenti {
			return nil, fmt.Errorf("only a venti can be embedded, not %s", spec.Kind.article())
		}
		for _, m := range g.Nodes {
			if !m.HasVM() {
				return nil, fmt.Errorf("the grid already has an embedded venti (%s); add a venti VM instead", m.Name)
			}
		}
		if spec.Seed != "" || spec.IP.IsValid() && spec.IP != g.Network.Host {
			return nil, errors.New("the embedded venti has no seed and always sits at the network's host address")
		}
		n.IP = g.Network.Host
	} else {
		if spec.Seed == "" {
			return nil, fmt.Errorf("%s needs a seed image", spec.Kind.article())
		}
		s, err := g.Seed(spec.Seed)
		if err != nil {
			return nil, err
		}
		if !s.CanPlay(string(spec.Kind)) {
			return nil, fmt.Errorf("seed %s cannot boot as %s: it can be %v", s.Name, spec.Kind, s.Roles)
		}
		n.Seed = s.Name
		n.MemoryMB = firstNonZero(spec.MemoryMB, s.MemoryMB, DefaultMemoryMB)
		if n.MemoryMB < 16 || n.MemoryMB > 1<<20 {
			return nil, fmt.Errorf("memory %d MiB is out of range (16 to 1048576)", n.MemoryMB)
		}
		n.User = firstNonEmpty(spec.User, s.AuthID, DefaultUser)
		n.AuthDom = firstNonEmpty(spec.AuthDom, s.AuthDom, DefaultAuthDom)
		if !userRE.MatchString(n.User) || !authDomRE.MatchString(n.AuthDom) {
			return nil, fmt.Errorf("identity %q@%q: user and auth domain must be letters, digits, '.', '_' or '-'", n.User, n.AuthDom)
		}
		if spec.IP.IsValid() {
			if err := g.checkIP(spec.IP, nil); err != nil {
				return nil, err
			}
			n.IP = spec.IP
		} else {
			ip, err := g.NextIP()
			if err != nil {
				return nil, err
			}
			n.IP = ip
		}
		n.MAC = g.nextMAC(n.ID)
	}
	if spec.Position != nil {
		n.Position = *spec.Position
	} else {
		n.Position = g.freeSlot(n.Kind)
	}
	return n, nil
}

func firstNonZero(v ...int) int {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

func firstNonEmpty(v ...string) string {
	for _, x := range v {
		if x != "" {
			return x
		}
	}
	return ""
}

// namePrefix is the stem of generated node names of kind k.
func namePrefix(k Kind) string {
	if k == KindFossilAuth {
		return "fossil"
	}
	return string(k)
}

// NextName returns the first free name "<kind>N" (N from 1) for kind k.
func (g *Grid) NextName(k Kind) string {
	for i := 1; ; i++ {
		name := fmt.Sprintf("%s%d", namePrefix(k), i)
		if g.checkNewName(name, nil) == nil {
			return name
		}
	}
}

// NextIP returns the first free address for a VM node: from the subnet's
// FirstNodeOffset-th address upwards, then from .2 up to it, skipping the
// gateway, the host address and addresses in use.
func (g *Grid) NextIP() (netip.Addr, error) {
	p := g.Network.Subnet
	start := offset(p, FirstNodeOffset)
	if !p.Contains(start) {
		start = offset(p, 2)
	}
	try := func(from, to netip.Addr) (netip.Addr, bool) {
		for a := from; p.Contains(a) && a != to; a = a.Next() {
			if g.checkIP(a, nil) == nil {
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	if a, ok := try(start, netip.Addr{}); ok {
		return a, nil
	}
	if a, ok := try(offset(p, 1), start); ok {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("no free address left in %s: remove a node or use a larger subnet", p)
}

// checkIP reports whether ip can be given to a VM node (self may already
// hold it).
func (g *Grid) checkIP(ip netip.Addr, self *Node) error {
	if err := g.Network.usable(ip); err != nil {
		return err
	}
	for _, m := range g.Nodes {
		if m != self && m.IP == ip {
			return fmt.Errorf("ip %s is taken by %s", ip, m.Name)
		}
	}
	return nil
}

// nextMAC derives the MAC for id that no other node uses.
func (g *Grid) nextMAC(id uuid.UUID) MAC {
	for attempt := 0; ; attempt++ {
		m := DeriveMAC(id, attempt)
		if m == qemuDefaultMAC || slices.ContainsFunc(g.Nodes, func(n *Node) bool { return n.MAC == m }) {
			continue
		}
		return m
	}
}

// CloneNode adds a node like src: the same kind, seed, memory and identity,
// and the same outgoing links (a clone of cpu1 roots from cpu1's fossil),
// with a new ID, MAC, IP and name ("" picks the next free one). Its disk is
// to be copied from src's (CloneOf); copying it is the caller's job and
// should happen while src is stopped.
func (g *Grid) CloneNode(src, name string) (*Node, error) {
	s, err := g.mustNode(src)
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	if !s.HasVM() {
		return nil, fmt.Errorf("clone %s: there is only one embedded venti per grid; add a venti VM instead", src)
	}
	pos := s.Position
	pos.Y += RowHeight
	pos.Extra = Extra{}
	n, err := g.newNode(NodeSpec{Name: name, Kind: s.Kind, Seed: s.Seed, MemoryMB: s.MemoryMB, User: s.User, AuthDom: s.AuthDom, Position: &pos})
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", src, err)
	}
	id := s.ID
	n.CloneOf = &id
	g.Nodes = append(g.Nodes, n)
	for _, l := range g.Links {
		if l.From == s.ID {
			g.Links = append(g.Links, &Link{From: n.ID, To: l.To, Kind: l.Kind})
		}
	}
	g.refresh()
	return n, nil
}

// RemoveNode deletes a node and every link to or from it. Its dependants
// become incomplete (see Check) and pending. Nodes cloned from it forget
// that (their disks then come from the seed). Deleting the node's
// directory and stopping its VM are the caller's job.
func (g *Grid) RemoveNode(name string) error {
	n, err := g.mustNode(name)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	g.Nodes = slices.DeleteFunc(g.Nodes, func(m *Node) bool { return m == n })
	g.Links = slices.DeleteFunc(g.Links, func(l *Link) bool { return l.From == n.ID || l.To == n.ID })
	for _, m := range g.Nodes {
		if m.CloneOf != nil && *m.CloneOf == n.ID {
			m.CloneOf = nil
		}
	}
	g.refresh()
	return nil
}

// Rename gives a node a new name. Links follow (they hold IDs); the node
// and every node whose configuration names it become pending.
func (g *Grid) Rename(old, name string) error {
	n, err := g.mustNode(old)
	if err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	if old == name {
		return nil
	}
	if err := g.checkNewName(name, n); err != nil {
		return fmt.Errorf("rename %s: %w", old, err)
	}
	n.Name = name
	g.refresh()
	return nil
}

// SetIP gives a VM node a new address in the grid's subnet.
func (g *Grid) SetIP(name string, ip netip.Addr) error {
	n, err := g.mustNode(name)
	if err != nil {
		return fmt.Errorf("set ip: %w", err)
	}
	if !n.HasVM() {
		return fmt.Errorf("set ip of %s: the embedded venti always sits at the network's host address %s", name, g.Network.Host)
	}
	if err := g.checkIP(ip, n); err != nil {
		return fmt.Errorf("set ip of %s: %w", name, err)
	}
	n.IP = ip
	g.refresh()
	return nil
}

// SetMemory sets a VM node's guest memory in MiB (takes effect at its next
// start; not a configuration change).
func (g *Grid) SetMemory(name string, mb int) error {
	n, err := g.mustNode(name)
	if err != nil {
		return fmt.Errorf("set memory: %w", err)
	}
	if !n.HasVM() || mb < 16 || mb > 1<<20 {
		return fmt.Errorf("set memory of %s to %d MiB: only a VM node, 16 to 1048576 MiB", name, mb)
	}
	n.MemoryMB = mb
	return nil
}

// SetIdentity sets a VM node's nvram host owner and auth domain.
func (g *Grid) SetIdentity(name, user, authDom string) error {
	n, err := g.mustNode(name)
	if err != nil {
		return fmt.Errorf("set identity: %w", err)
	}
	if !n.HasVM() {
		return fmt.Errorf("set identity of %s: the embedded venti has no nvram", name)
	}
	if !userRE.MatchString(user) || !authDomRE.MatchString(authDom) {
		return fmt.Errorf("set identity of %s to %q@%q: user and auth domain must be letters, digits, '.', '_' or '-'", name, user, authDom)
	}
	n.User, n.AuthDom = user, authDom
	g.refresh()
	return nil
}

// Move puts a node at a canvas position (not a configuration change).
func (g *Grid) Move(name string, x, y float64) error {
	n, err := g.mustNode(name)
	if err != nil {
		return fmt.Errorf("move: %w", err)
	}
	if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
		return fmt.Errorf("move %s to (%v, %v): not a finite position", name, x, y)
	}
	n.Position.X, n.Position.Y = x, y
	return nil
}

// MarkApplied records that configuration generation gen (NodeConfig.Gen)
// was written to the node's disk. A gen older than one already recorded is
// ignored; a gen newer than the node's ConfigGen is an error.
func (g *Grid) MarkApplied(name string, gen uint64) error {
	n, err := g.mustNode(name)
	if err != nil {
		return fmt.Errorf("mark applied: %w", err)
	}
	if gen > n.ConfigGen {
		return fmt.Errorf("mark applied: %s has configuration generation %d, not %d", name, n.ConfigGen, gen)
	}
	n.AppliedGen = max(n.AppliedGen, gen)
	return nil
}

// Pending returns the nodes whose disks lack their current configuration,
// in grid order.
func (g *Grid) Pending() []*Node {
	var out []*Node
	for _, n := range g.Nodes {
		if n.Pending() {
			out = append(out, n)
		}
	}
	return out
}

// Affected reports which nodes a change would make pending: it applies
// change to a copy of the grid and returns, in grid order, the names (after
// the change) of the nodes whose derived configuration differs or that are
// new. The grid itself is not changed. An error from change is
// returned as is.
func (g *Grid) Affected(change func(*Grid) error) ([]string, error) {
	c, err := g.Copy()
	if err != nil {
		return nil, err
	}
	before := map[uuid.UUID]string{}
	for _, n := range c.Nodes {
		before[n.ID] = n.ConfigSum
	}
	if err := change(c); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range c.Nodes {
		if sum, ok := before[n.ID]; !ok || sum != n.ConfigSum {
			out = append(out, n.Name)
		}
	}
	return out, nil
}

// Copy returns a deep copy of the grid without a directory (so it cannot
// be saved over the original).
func (g *Grid) Copy() (*Grid, error) {
	data, err := g.Marshal()
	if err != nil {
		return nil, err
	}
	c, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("copy grid %s: %w", g.Name, err)
	}
	c.catalog = g.catalog
	c.refresh()
	return c, nil
}

// SetOutbound lets the grid's guests reach beyond the grid or not (see
// Network.Outbound); a running switch keeps its setting until the grid
// restarts.
func (g *Grid) SetOutbound(on bool) {
	g.Network.Outbound = on
	g.refresh()
}

// SetFailover makes the fossils that archive to the embedded venti use
// the mirror venti at addr (host:port) instead, from their next boot; ""
// switches them back. See Network.Failover.
func (g *Grid) SetFailover(addr string) error {
	if err := checkFailover(addr); err != nil {
		return err
	}
	g.Network.Failover = addr
	g.refresh()
	return nil
}

// checkFailover validates a Network.Failover address.
func checkFailover(addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" || port == "0" {
		return fmt.Errorf("failover %q: want the mirror venti's host:port (gridlord mirror status lists them) or off", addr)
	}
	return nil
}

// SetStaticBoot switches how 4e/9legacy cpu nodes get their address (see
// Network.StaticBoot); every such cpu becomes pending.
func (g *Grid) SetStaticBoot(on bool) {
	g.Network.StaticBoot = on
	g.refresh()
}
