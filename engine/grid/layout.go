package grid

import (
	"cmp"
	"fmt"
	"slices"
)

// Canvas layout, in canvas units.
const (
	// Margin is the distance of the first column and row from the origin.
	Margin = 40
	// ColumnWidth separates the kind columns.
	ColumnWidth = 200
	// RowHeight separates nodes within a column.
	RowHeight = 120
)

// column returns the layout column of kind k: venti, fossils, cpus, auth
// servers, left to right.
func column(k Kind) int {
	switch k {
	case KindVenti:
		return 0
	case KindFossil, KindFossilAuth:
		return 1
	case KindCPU:
		return 2
	default:
		return 3
	}
}

// freeSlot returns the position below the lowest node in kind k's column.
func (g *Grid) freeSlot(k Kind) Position {
	col := column(k)
	p := Position{X: Margin + float64(col)*ColumnWidth, Y: Margin}
	for _, n := range g.Nodes {
		if column(n.Kind) == col && n.Position.Y+RowHeight > p.Y {
			p.Y = n.Position.Y + RowHeight
		}
	}
	return p
}

// Arrange lays the nodes out left to right by dependency: ventis (the
// embedded one first), then fossils, then cpus, then auth servers, one
// column each, RowHeight apart. Within a column nodes follow what they
// depend on (a fossil's row order follows its venti's, a cpu's its
// fossil's), then their names, so links cross as little as this simple
// scheme allows. Positions are not configuration: nothing becomes pending.
func (g *Grid) Arrange() {
	rank := map[*Node]int{}
	cols := make([][]*Node, 4)
	for _, n := range g.Nodes {
		c := column(n.Kind)
		cols[c] = append(cols[c], n)
	}
	parentRank := func(n *Node) int {
		for _, k := range []LinkKind{LinkArchive, LinkRoot, LinkAuth} {
			if t := g.Target(n, k); t != nil {
				if r, ok := rank[t]; ok {
					return r
				}
			}
		}
		return -1
	}
	for c, nodes := range cols {
		slices.SortStableFunc(nodes, func(a, b *Node) int {
			if a.HasVM() != b.HasVM() {
				if !a.HasVM() {
					return -1
				}
				return 1
			}
			return cmp.Or(cmp.Compare(parentRank(a), parentRank(b)), cmp.Compare(a.Name, b.Name))
		})
		for i, n := range nodes {
			rank[n] = i
			n.Position.X = Margin + float64(c)*ColumnWidth
			n.Position.Y = Margin + float64(i)*RowHeight
		}
	}
}

// Severity says whether a Problem stops a node from working.
type Severity string

// Problem severities.
const (
	// SeverityError: the node cannot boot or serve as wired.
	SeverityError Severity = "error"
	// SeverityWarning: the node boots, but something will not work.
	SeverityWarning Severity = "warning"
)

// Problem is something wrong with a grid that wiring alone did not refuse,
// usually because a change left it incomplete.
type Problem struct {
	// Node names the node the problem is about.
	Node string `json:"node"`
	// Severity says whether the node can work at all.
	Severity Severity `json:"severity"`
	// Message says what is wrong, what it causes and what to do.
	Message string `json:"message"`
}

// String returns "node: severity: message".
func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Node, p.Severity, p.Message) }

// Check lists what would stop the grid working: cpus without a fossil or
// auth server, auth domain mismatches, fossils without a venti, unknown
// seeds, names reserved by a seed. The engine refuses to start a node with
// an error-severity problem; the GUI shows them on the canvas.
func (g *Grid) Check() []Problem {
	var out []Problem
	add := func(n *Node, sev Severity, format string, args ...any) {
		out = append(out, Problem{Node: n.Name, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	reserved := g.reservedNames()
	ndb := g.ndbOnce()
	for _, n := range g.Nodes {
		if slices.Contains(reserved, n.Name) {
			add(n, SeverityError, "a seed's file server runs /cfg/%s/cpurc (keyfs and authsrv) on any machine called %s; rename the node", n.Name, n.Name)
		}
		if !n.HasVM() {
			continue
		}
		if _, err := g.deriveWith(n, ndb); err != nil {
			add(n, SeverityError, "%v", err)
			continue
		}
		switch {
		case n.Kind == KindCPU:
			f := g.Target(n, LinkRoot)
			if f == nil {
				add(n, SeverityError, "no file server: drag %s onto a fossil (without fs= its boot stops at the 'filesystem IP address' prompt)", n.Name)
			}
			a := g.AuthServer(n)
			switch {
			case a == nil && f != nil:
				add(n, SeverityError, "no auth server: %s is a plain fossil, so wire %s to an auth server (without auth= its boot stops at the 'authentication server IP address' prompt)", f.Name, n.Name)
			case a == nil:
				add(n, SeverityError, "no auth server: drag %s onto a fossil+auth or an auth server", n.Name)
			case a.AuthDom != n.AuthDom:
				add(n, SeverityError, "auth domain %s differs from %s's %s: the boot fails with 'no key matches … dom=%s' and reboots; give both the same auth domain", n.AuthDom, a.Name, a.AuthDom, a.AuthDom)
			case a.User != n.User:
				add(n, SeverityWarning, "host owner %s differs from %s's %s: %s needs a keyfs entry and a fossil user for %s, and a speaks-for entry, or the boot fails (plan9-grid-roles.md 4.3)", n.User, a.Name, a.User, a.Name, n.User)
			}
		case n.Kind.IsFossil():
			if g.Target(n, LinkArchive) == nil {
				if s, _ := g.Seed(n.Seed); s.LocalVenti == "" {
					add(n, SeverityWarning, "archives to no venti: archival snapshots will fail; drag %s onto a venti", n.Name)
				}
			}
		}
	}
	return out
}
