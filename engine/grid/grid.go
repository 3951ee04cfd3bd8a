// Package grid is the model of a Gridlord grid: its nodes (venti, fossil,
// cpu and auth servers), the links between them, its network, and the
// configuration every node needs because of those links.
//
// A grid lives in a directory:
//
//	grid.json        the model (this package), schema version SchemaVersion
//	grid.json.bak    the previous version, kept by every Save
//	nodes/<uuid>/    one directory per node: disk, console log, sockets
//
// The model is the single source of truth for the packages that act on it.
// It does no I/O except reading and writing grid.json in the grid directory:
// everything else is a pure function returning data. Config derives what a
// node's disk must say (plan9.ini keys Gridlord owns, fossil and venti
// config block lines, nvram identity, ndb entries); MergeIni, ApplyIni and
// MergeConfigBlock turn that into edits of what is on a disk now. Applying
// them to disks, starting VMs and serving the grid are other packages' work.
//
// # Changes and pending configuration
//
// Change a grid only through its methods (AddNode, CloneNode, RemoveNode,
// Rename, SetIP, Wire, Unwire, ...). They enforce the wiring rules and, after
// every change, recompute each node's derived configuration: a node whose
// configuration changed gets a new ConfigGen. A node is pending while
// ConfigGen > AppliedGen; whoever writes the configuration to the node's disk
// calls MarkApplied with the generation it wrote. A running node therefore
// stays pending until it is stopped and rewritten, typically at its next
// start. Affected reports which nodes a change would make pending, without
// making it.
//
// # Network and identity conventions
//
// The grid's subnet (default 10.0.9.0/24) has the switch's gateway at its
// first address and the host address at its last usable one (.254), where
// the switch exposes the embedded venti to guests on port 17034 (and no
// other host service). VM nodes get fixed addresses from .10
// up (NextIP) and MACs derived from their UUIDs (DeriveMAC: 52:54:00 plus 3
// bytes of a hash, locally administered unicast); Leases lists them for the
// switch's DHCP server. Node names are Plan 9 sysnames, except that a node
// booting a seed's own root keeps the seed's LocalSysname (helix), and no
// node may be called that.
//
// # For the packages built on this one
//
//   - engine/network: Network, Leases.
//   - engine/qemu: Node.MAC.String() for -device ...,mac=; the seed's Arch,
//     NIC and DiskBus via Grid.Seed; Node.MemoryMB; Grid.NodeDir.
//   - engine/plan9disk: Config, then MergeIni/ApplyIni on plan9.ini,
//     MergeConfigBlock on the fossil and venti config blocks, and
//     NodeConfig.Identity for nvram; then MarkApplied.
//   - the engine daemon: StartOrder/StopOrder, Pending, Check, Save; the
//     ndb sections (NodeConfig.Ndb, AuthNdb) through ReplaceSection on the
//     node's /lib/ndb files, which only a running node can write.
//
// # Concurrency
//
// A Grid is not safe for concurrent use; its owner (the engine daemon)
// serialises access. Only one process may Save a grid directory at a time.
package grid

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/uuid"

	"gridlord/images"
)

// SchemaVersion is the grid.json schema version this package writes. It is
// raised only for incompatible changes; fields added later by newer versions
// are preserved (see Extra), so older Gridlords keep working with them.
const SchemaVersion = 1

// File names inside a grid directory and a node directory.
const (
	// FileName is the model file.
	FileName = "grid.json"
	// BackupName is the previous version of the model file.
	BackupName = "grid.json.bak"
	// BadName is where Save moves a grid.json that no longer parses.
	BadName = "grid.json.bad"
	// NodesDir holds one directory per node, named by the node's UUID.
	NodesDir = "nodes"
)

// Kind is a node's role in the grid.
type Kind string

// The node kinds.
const (
	// KindVenti stores blocks (tcp 17034). Embedded=true means the venti
	// server inside the engine, reached at Network.Host; otherwise a VM.
	KindVenti Kind = "venti"
	// KindFossil is a file server: local fossil root, serves 9P on tcp 564,
	// archives to a venti.
	KindFossil Kind = "fossil"
	// KindFossilAuth is a fossil that is also the auth server (keyfs,
	// authsrv on tcp 567): node F of plan9-grid-roles.md.
	KindFossilAuth Kind = "fossil+auth"
	// KindCPU is a cpu server whose root comes from a fossil over tcp.
	KindCPU Kind = "cpu"
	// KindAuth is a standalone auth server booting its own disk.
	KindAuth Kind = "auth"
)

// Kinds returns every kind, in layout order (left to right).
func Kinds() []Kind { return []Kind{KindVenti, KindFossil, KindFossilAuth, KindCPU, KindAuth} }

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return slices.Contains(Kinds(), k) }

// IsFossil reports whether k serves a fossil root (fossil or fossil+auth).
func (k Kind) IsFossil() bool { return k == KindFossil || k == KindFossilAuth }

// ServesAuth reports whether k runs an auth server (auth or fossil+auth).
func (k Kind) ServesAuth() bool { return k == KindAuth || k == KindFossilAuth }

// article returns "a" or "an" for k in messages.
func (k Kind) article() string {
	if k == KindAuth {
		return "an auth server"
	}
	return "a " + string(k)
}

// LinkKind says what a link means.
type LinkKind string

// The link kinds. A link always points from the dependant to what it needs.
const (
	// LinkRoot: a cpu roots from a fossil (fs= in its plan9.ini).
	LinkRoot LinkKind = "root"
	// LinkArchive: a fossil archives to a venti (venti= in its plan9.ini).
	LinkArchive LinkKind = "archive"
	// LinkAuth: a cpu authenticates with an auth server (auth=). A cpu that
	// roots from a fossil+auth uses it for auth without this link.
	LinkAuth LinkKind = "auth"
)

// Position is a node's place on the GUI canvas, in canvas units.
type Position struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	Extra
}

// Node is one machine of the grid.
type Node struct {
	// ID never changes; links, node directories and MACs derive from it.
	ID uuid.UUID `json:"id"`
	// Name is the node's name and, for most kinds, its Plan 9 sysname:
	// a letter, then letters, digits or '-', at most 27 characters.
	Name string `json:"name"`
	// Kind is the node's role.
	Kind Kind `json:"kind"`
	// Embedded marks the venti served by the engine itself (no VM); only
	// for KindVenti. Its IP is always Network.Host.
	Embedded bool `json:"embedded,omitempty"`
	// Seed names the seed image the node's disk is cloned from (a catalog
	// entry or one of Grid.Seeds); empty for the embedded venti.
	Seed string `json:"seed,omitempty"`
	// MemoryMB is the guest memory in MiB; 0 for the embedded venti.
	MemoryMB int `json:"memoryMB,omitempty"`
	// MAC is the NIC address, derived from ID (see DeriveMAC); zero for the
	// embedded venti.
	MAC MAC `json:"mac"`
	// IP is the node's fixed address in the grid's subnet.
	IP netip.Addr `json:"ip"`
	// Position is where the GUI draws the node.
	Position Position `json:"position"`
	// User is the host owner written to the node's nvram (authid).
	User string `json:"user,omitempty"`
	// AuthDom is the auth domain written to the node's nvram; a cpu's must
	// equal its auth server's.
	AuthDom string `json:"authDom,omitempty"`
	// CloneOf, when set, names the node whose disk this node's disk is
	// first copied from instead of the seed (CloneNode).
	CloneOf *uuid.UUID `json:"cloneOf,omitempty"`
	// FossilFrom, when set, names the file-system snapshot (a seed whose
	// Snapshot kind is fs) this fossil node's file system is formatted
	// from at its first start, over the seed's (SpawnNode).
	FossilFrom string `json:"fossilFrom,omitempty"`
	// ConfigGen counts changes of the node's derived configuration.
	ConfigGen uint64 `json:"configGen"`
	// AppliedGen is the last ConfigGen written to the node's disk.
	AppliedGen uint64 `json:"appliedGen"`
	// ConfigSum fingerprints the derived configuration of ConfigGen.
	ConfigSum string `json:"configSum,omitempty"`
	Extra
}

// HasVM reports whether the node runs as a QEMU VM (all but the embedded
// venti).
func (n *Node) HasVM() bool { return !(n.Kind == KindVenti && n.Embedded) }

// Pending reports whether the node's disk does not yet have its current
// configuration.
func (n *Node) Pending() bool { return n.ConfigGen > n.AppliedGen }

// Link is a directed dependency between two nodes, by ID.
type Link struct {
	// From is the dependant (the cpu, or the fossil).
	From uuid.UUID `json:"from"`
	// To is what it needs (the fossil, venti or auth server).
	To uuid.UUID `json:"to"`
	// Kind says what the link means.
	Kind LinkKind `json:"kind"`
	Extra
}

// Network is the grid's private network: one virtual switch per grid.
type Network struct {
	// Subnet is the IPv4 network of the grid (default 10.0.9.0/24).
	Subnet netip.Prefix `json:"subnet"`
	// Gateway is the switch's own address: DHCP, DNS, default route
	// (default .1).
	Gateway netip.Addr `json:"gateway"`
	// Host is the address at which guests reach the host services the
	// switch exposes, the embedded venti on 17034 (default .254,
	// gvisor-tap-vsock's convention).
	Host netip.Addr `json:"host"`
	// StaticBoot makes 4e/9legacy cpu nodes configure their address in
	// plan9.ini (nobootprompt=tcp -g GW ether /net/ether0 IP MASK) instead
	// of by DHCP.
	StaticBoot bool `json:"staticBoot,omitempty"`
	// Outbound lets the grid's guests reach addresses beyond the grid (the
	// host's LAN, the internet) through the switch's gateway; off by
	// default: guests reach the grid and the host services the engine
	// exposes, nothing else.
	Outbound bool `json:"outbound,omitempty"`
	// Failover is the host:port of a mirror venti (see engine/mirror) that
	// the fossils archiving to the embedded venti use instead, from their
	// next boot: guests reach it at Host on FailoverPort. Empty: none.
	Failover string `json:"failover,omitempty"`
	Extra
}

// SeedRecord is a seed stored in the grid (an imported local image).
type SeedRecord struct {
	images.Seed
	Extra
}

// Grid is the model of one grid. Read its fields freely; change it only
// through its methods (see the package comment).
type Grid struct {
	// Version is the schema version (SchemaVersion).
	Version int `json:"version"`
	// Name names the grid; it is the ndb ipnet name.
	Name string `json:"name"`
	// Network is the grid's network.
	Network Network `json:"network"`
	// Nodes are the grid's nodes, in creation order.
	Nodes []*Node `json:"nodes"`
	// Links are the links between nodes.
	Links []*Link `json:"links"`
	// Seeds are seed records imported into this grid; they are looked up
	// before the catalog's.
	Seeds []*SeedRecord `json:"seeds,omitempty"`
	Extra

	dir     string
	catalog *images.Catalog
}

// Dir returns the grid directory ("" for a grid that was only parsed).
func (g *Grid) Dir() string { return g.dir }

// Node returns the node called name, or nil.
func (g *Grid) Node(name string) *Node {
	for _, n := range g.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeByID returns the node with the given ID, or nil.
func (g *Grid) NodeByID(id uuid.UUID) *Node {
	for _, n := range g.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// mustNode returns the node called name or an error saying it is missing.
func (g *Grid) mustNode(name string) (*Node, error) {
	if n := g.Node(name); n != nil {
		return n, nil
	}
	var names []string
	for _, n := range g.Nodes {
		names = append(names, n.Name)
	}
	return nil, fmt.Errorf("no node called %q in grid %s (nodes: %s)", name, g.Name, strings.Join(names, ", "))
}

// NodeDir returns the directory of node n's disk, logs and sockets.
func (g *Grid) NodeDir(n *Node) string {
	if g.dir == "" {
		return ""
	}
	return filepath.Join(g.dir, NodesDir, n.ID.String())
}

// Catalog returns the seed catalog the grid resolves seed names against.
func (g *Grid) Catalog() *images.Catalog { return g.catalog }

// Seed resolves a seed name: the grid's own records first, then the
// catalog.
func (g *Grid) Seed(name string) (images.Seed, error) {
	for _, s := range g.Seeds {
		if s.Name == name {
			return s.Seed, nil
		}
	}
	if g.catalog != nil {
		if s, ok := g.catalog.Lookup(name); ok {
			return s, nil
		}
	}
	return images.Seed{}, fmt.Errorf("unknown seed %q: import it (gridlord seed import) or pick one of: %s", name, strings.Join(g.seedNames(), ", "))
}

func (g *Grid) seedNames() []string {
	var n []string
	for _, s := range g.Seeds {
		n = append(n, s.Name)
	}
	if g.catalog != nil {
		n = append(n, g.catalog.Names()...)
	}
	return n
}

// AddSeed records an imported seed in the grid (see images.Local). A seed
// of the same name is replaced, so re-importing updates the record (for
// example with its vac score).
func (g *Grid) AddSeed(s images.Seed) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("add seed to grid %s: %w", g.Name, err)
	}
	for _, r := range g.Seeds {
		if r.Name == s.Name {
			r.Seed = s
			g.refresh()
			return nil
		}
	}
	g.Seeds = append(g.Seeds, &SeedRecord{Seed: s})
	g.refresh()
	return nil
}

// links returns the links from node id of kind k.
func (g *Grid) linksFrom(id uuid.UUID, k LinkKind) []*Link {
	var out []*Link
	for _, l := range g.Links {
		if l.From == id && l.Kind == k {
			out = append(out, l)
		}
	}
	return out
}

// Target returns the node that n's link of kind k points to, or nil.
func (g *Grid) Target(n *Node, k LinkKind) *Node {
	for _, l := range g.linksFrom(n.ID, k) {
		return g.NodeByID(l.To)
	}
	return nil
}

// AuthServer returns the auth server n authenticates with: its auth link's
// target, else the fossil+auth it roots from; nil if none.
func (g *Grid) AuthServer(n *Node) *Node {
	if a := g.Target(n, LinkAuth); a != nil {
		return a
	}
	if f := g.Target(n, LinkRoot); f != nil && f.Kind == KindFossilAuth {
		return f
	}
	return nil
}

// Dependants returns the nodes with a link pointing to n, in grid order.
func (g *Grid) Dependants(n *Node) []*Node {
	var out []*Node
	for _, m := range g.Nodes {
		for _, l := range g.Links {
			if l.From == m.ID && l.To == n.ID {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// Dependencies returns the nodes n's links point to, in grid order.
func (g *Grid) Dependencies(n *Node) []*Node {
	var out []*Node
	for _, m := range g.Nodes {
		for _, l := range g.Links {
			if l.From == n.ID && l.To == m.ID {
				out = append(out, m)
				break
			}
		}
	}
	return out
}
