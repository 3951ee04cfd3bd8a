package grid

import (
	"fmt"
	"net/netip"
)

// StartOrder returns the named nodes together with everything they depend
// on, dependencies first: ventis, then fossils, then auth servers and cpus
// (a venti before the fossil that archives to it, a fossil before the cpus
// that root from it). With no names it orders the whole grid. Links always
// point down the layers venti ← fossil ← cpu → auth, so there are no cycles.
func (g *Grid) StartOrder(names ...string) ([]*Node, error) {
	start, err := g.nodesNamed(names)
	if err != nil {
		return nil, fmt.Errorf("start order: %w", err)
	}
	var out []*Node
	done := map[*Node]bool{}
	var visit func(n *Node)
	visit = func(n *Node) {
		if done[n] {
			return
		}
		done[n] = true
		for _, d := range g.Dependencies(n) {
			visit(d)
		}
		out = append(out, n)
	}
	for _, n := range start {
		visit(n)
	}
	return out, nil
}

// StopOrder returns the named nodes together with everything that depends
// on them, dependants first: the reverse of StartOrder's rule (cpus stop
// before their fossil, a fossil before its venti). With no names it orders
// the whole grid.
func (g *Grid) StopOrder(names ...string) ([]*Node, error) {
	stop, err := g.nodesNamed(names)
	if err != nil {
		return nil, fmt.Errorf("stop order: %w", err)
	}
	var out []*Node
	done := map[*Node]bool{}
	var visit func(n *Node)
	visit = func(n *Node) {
		if done[n] {
			return
		}
		done[n] = true
		for _, d := range g.Dependants(n) {
			visit(d)
		}
		out = append(out, n)
	}
	for _, n := range stop {
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
	// Name is the node's name (the DHCP host name).
	Name string
	// MAC is the node's NIC address.
	MAC MAC
	// IP is the address leased to it.
	IP netip.Addr
}

// Leases returns the static DHCP leases of every VM node, in grid order.
// The switch must hand out exactly these; the embedded venti has none (it
// is the host address, NATed to the host's loopback).
func (g *Grid) Leases() []Lease {
	var out []Lease
	for _, n := range g.Nodes {
		if n.HasVM() {
			out = append(out, Lease{Name: n.Name, MAC: n.MAC, IP: n.IP})
		}
	}
	return out
}
