package grid

import (
	"fmt"
	"slices"
)

// WiringError is a refused link. Its message says why and what to do
// instead: "cannot wire venti1 to cpu1: a venti does not boot from
// anything; drag a cpu onto a fossil".
type WiringError struct {
	// From and To are the node names, in the order the user gave them.
	From, To string
	// Reason explains the refusal and suggests what to do.
	Reason string
}

// Error returns "cannot wire FROM to TO: REASON".
func (e *WiringError) Error() string {
	return fmt.Sprintf("cannot wire %s to %s: %s", e.From, e.To, e.Reason)
}

// Wire links from to to, inferring the link kind from their kinds:
// cpu → fossil or fossil+auth is LinkRoot, cpu → auth is LinkAuth, fossil or
// fossil+auth → venti is LinkArchive. Any other pair is refused with a
// *WiringError, as is a second root or archive or auth link from the same
// node. Wiring makes from (and whatever else the change reaches) pending.
func (g *Grid) Wire(from, to string) (*Link, error) {
	f, err := g.mustNode(from)
	if err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	t, err := g.mustNode(to)
	if err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	k, reason := inferLink(f, t)
	if reason != "" {
		return nil, &WiringError{From: from, To: to, Reason: reason}
	}
	return g.wire(f, t, k)
}

// WireAs links from to to with an explicit kind; use it for the one pair
// Wire cannot guess: LinkAuth from a cpu to a fossil+auth it does not root
// from.
func (g *Grid) WireAs(from, to string, k LinkKind) (*Link, error) {
	f, err := g.mustNode(from)
	if err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	t, err := g.mustNode(to)
	if err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	return g.wire(f, t, k)
}

func (g *Grid) wire(f, t *Node, k LinkKind) (*Link, error) {
	if err := g.checkWire(f, t, k); err != nil {
		return nil, err
	}
	l := &Link{From: f.ID, To: t.ID, Kind: k}
	g.Links = append(g.Links, l)
	g.refresh()
	return l, nil
}

// Unwire removes every link from from to to. It is an error if there is
// none.
func (g *Grid) Unwire(from, to string) error {
	f, err := g.mustNode(from)
	if err != nil {
		return fmt.Errorf("unwire: %w", err)
	}
	t, err := g.mustNode(to)
	if err != nil {
		return fmt.Errorf("unwire: %w", err)
	}
	n := len(g.Links)
	g.Links = slices.DeleteFunc(g.Links, func(l *Link) bool { return l.From == f.ID && l.To == t.ID })
	if len(g.Links) == n {
		return fmt.Errorf("unwire %s from %s: they are not wired (links go from the cpu to the fossil, and from the fossil to the venti)", from, to)
	}
	g.refresh()
	return nil
}

// CanWire reports whether Wire(from, to) would succeed, and if not, why.
// The GUI uses it while the user drags.
func (g *Grid) CanWire(from, to string) error {
	f, err := g.mustNode(from)
	if err != nil {
		return err
	}
	t, err := g.mustNode(to)
	if err != nil {
		return err
	}
	k, reason := inferLink(f, t)
	if reason != "" {
		return &WiringError{From: from, To: to, Reason: reason}
	}
	return g.checkWire(f, t, k)
}

// inferLink returns the link kind for f → t, or the reason there is none.
func inferLink(f, t *Node) (LinkKind, string) {
	if f.ID == t.ID {
		return "", "a node cannot be wired to itself"
	}
	switch f.Kind {
	case KindVenti:
		switch {
		case t.Kind.IsFossil():
			return "", fmt.Sprintf("a venti does not boot from anything; drag %s onto %s to archive it there", t.Name, f.Name)
		case t.Kind == KindCPU:
			return "", "a venti does not boot from anything; drag a cpu onto a fossil"
		case t.Kind == KindAuth:
			return "", fmt.Sprintf("a venti does not boot from anything; drag a cpu onto %s to use it for authentication", t.Name)
		default:
			return "", "a venti does not boot from anything; drag a fossil onto a venti"
		}
	case KindFossil, KindFossilAuth:
		switch t.Kind {
		case KindVenti:
			return LinkArchive, ""
		case KindFossil, KindFossilAuth:
			return "", fmt.Sprintf("a fossil archives to a venti, not to another fossil; drag %s onto a venti", f.Name)
		case KindCPU:
			return "", fmt.Sprintf("a fossil does not boot from a cpu; drag %s onto %s so the cpu roots from it", t.Name, f.Name)
		case KindAuth:
			return "", fmt.Sprintf("a fossil checks its users itself and is not wired to an auth server; drag a cpu onto %s", t.Name)
		}
	case KindCPU:
		switch t.Kind {
		case KindFossil, KindFossilAuth:
			return LinkRoot, ""
		case KindAuth:
			return LinkAuth, ""
		case KindVenti:
			return "", fmt.Sprintf("a cpu boots from a fossil, not from a venti; drag %s onto a fossil", f.Name)
		case KindCPU:
			return "", fmt.Sprintf("a cpu boots from a fossil, not from another cpu; drag %s onto a fossil", f.Name)
		}
	case KindAuth:
		if t.Kind == KindCPU {
			return "", fmt.Sprintf("an auth server boots from its own disk; drag %s onto %s to use it for authentication", t.Name, f.Name)
		}
		return "", fmt.Sprintf("an auth server boots from its own disk and is not wired to %s; drag a cpu onto %s", t.Kind.article(), f.Name)
	}
	return "", fmt.Sprintf("unknown kinds %q and %q", f.Kind, t.Kind)
}

// checkWire checks a link of kind k from f to t against the kind rules and
// the one-link-of-each-kind rule.
func (g *Grid) checkWire(f, t *Node, k LinkKind) error {
	refuse := func(format string, args ...any) error {
		return &WiringError{From: f.Name, To: t.Name, Reason: fmt.Sprintf(format, args...)}
	}
	if f.ID == t.ID {
		return refuse("a node cannot be wired to itself")
	}
	switch k {
	case LinkRoot:
		if f.Kind != KindCPU || !t.Kind.IsFossil() {
			return refuse("a root link goes from a cpu to a fossil, not from %s to %s", f.Kind.article(), t.Kind.article())
		}
	case LinkArchive:
		if !f.Kind.IsFossil() || t.Kind != KindVenti {
			return refuse("an archive link goes from a fossil to a venti, not from %s to %s", f.Kind.article(), t.Kind.article())
		}
	case LinkAuth:
		if f.Kind != KindCPU || !t.Kind.ServesAuth() {
			return refuse("an auth link goes from a cpu to an auth server or fossil+auth, not from %s to %s", f.Kind.article(), t.Kind.article())
		}
	default:
		return refuse("unknown link kind %q (root, archive or auth)", k)
	}
	for _, l := range g.Links {
		if l.From != f.ID {
			continue
		}
		if l.To == t.ID && l.Kind == k {
			return refuse("%s is already wired to %s", f.Name, t.Name)
		}
		if l.Kind != k {
			continue
		}
		cur := g.NodeByID(l.To)
		curName := "?"
		if cur != nil {
			curName = cur.Name
		}
		switch k {
		case LinkRoot:
			return refuse("%s already roots from %s, and a cpu roots from exactly one fossil; unwire %s from %s first", f.Name, curName, f.Name, curName)
		case LinkArchive:
			return refuse("%s already archives to %s, and a fossil archives to exactly one venti; unwire %s from %s first", f.Name, curName, f.Name, curName)
		case LinkAuth:
			return refuse("%s already authenticates with %s; unwire %s from %s first", f.Name, curName, f.Name, curName)
		}
	}
	return nil
}

// Rewire links from to to like Wire, replacing from's existing link of the
// same kind (a cpu's root or auth, a fossil's archive) in one change: what
// a person means by dragging a cpu onto another fossil. It returns the new
// link and the node the replaced one went to (nil if there was none). A
// refused pair changes nothing.
func (g *Grid) Rewire(from, to string) (*Link, *Node, error) {
	f, err := g.mustNode(from)
	if err != nil {
		return nil, nil, fmt.Errorf("rewire: %w", err)
	}
	t, err := g.mustNode(to)
	if err != nil {
		return nil, nil, fmt.Errorf("rewire: %w", err)
	}
	k, reason := inferLink(f, t)
	if reason != "" {
		return nil, nil, &WiringError{From: from, To: to, Reason: reason}
	}
	old := g.Target(f, k)
	if old == t {
		return nil, nil, &WiringError{From: from, To: to, Reason: fmt.Sprintf("%s already %s %s", from, linkVerb(k), to)}
	}
	saved := slices.Clone(g.Links)
	g.Links = slices.DeleteFunc(g.Links, func(l *Link) bool { return l.From == f.ID && l.Kind == k })
	l, err := g.wire(f, t, k)
	if err != nil {
		g.Links = saved
		g.refresh()
		return nil, nil, err
	}
	return l, old, nil
}

// linkVerb says what a link of kind k does, for messages.
func linkVerb(k LinkKind) string {
	switch k {
	case LinkRoot:
		return "roots from"
	case LinkArchive:
		return "archives to"
	}
	return "authenticates with"
}
