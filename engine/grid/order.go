package grid

import (
	"github.com/google/uuid"

	"fmt"
	"net/netip"
)

// StartOrder returns the named nodes together with everything they depend
// on, dependencies first: ventis, then fossils, then auth servers and cpus
// (a venti before the fossil that archives to it, a fossil before the cpus
// that root from it). With no names it orders the whole grid. Links always
// point down the layers venti ← fossil ← cpu → auth, so there are no cycles.
func (g *Grid) StartOrder(names ...string) ([]*Node, error) {
	return g.closureOrder("start order", g.Dependencies, names)
}

// StopOrder returns the named nodes together with everything that depends
// on them, dependants first: the reverse of StartOrder's rule (cpus stop
// before their fossil, a fossil before its venti). With no names it orders
// the whole grid.
func (g *Grid) StopOrder(names ...string) ([]*Node, error) {
	return g.closureOrder("stop order", g.Dependants, names)
}

// closureOrder returns the named nodes (all nodes if none) together with
// every node reachable from them through next, each after all of those it
// reaches: a depth-first post-order, visiting the start nodes and next's
// results in their given order. what prefixes errors.
func (g *Grid) closureOrder(what string, next func(*Node) []*Node, names []string) ([]*Node, error) {
	start, err := g.nodesNamed(names)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var out []*Node
	done := map[*Node]bool{}
	var visit func(n *Node)
	visit = func(n *Node) {
		if done[n] {
			return
		}
		done[n] = true
		for _, d := range next(n) {
			visit(d)
		}
		out = append(out, n)
	}
	for _, n := range start {
		visit(n)
	}
	return out, nil
}

func (g *Grid) nodesNamed(names []string) ([]*Node, error) {
	if len(names) == 0 {
		return g.Nodes, nil
	}
	var out []*Node
	for _, name := range names {
		n, err := g.mustNode(name)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Lease is a fixed address the grid's switch hands out by DHCP.
type Lease struct {
	// ID is the node's identity (it outlives renames).
	ID uuid.UUID
	// Name is the node's name (the DHCP host name).
	Name string
	// MAC is the node's NIC address.
	MAC MAC
	// IP is the address leased to it.
	IP netip.Addr
}

// Leases returns the static DHCP leases of every VM node, in grid order.
// The switch must hand out exactly these; the embedded venti has none (it
// is served at the host address, which the switch exposes).
func (g *Grid) Leases() []Lease {
	var out []Lease
	for _, n := range g.Nodes {
		if n.HasVM() {
			out = append(out, Lease{ID: n.ID, Name: n.Name, MAC: n.MAC, IP: n.IP})
		}
	}
	return out
}
