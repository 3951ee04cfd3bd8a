package app

import (
	"context"
	"errors"

	"gridlord/engine/grid"
)

// WirePlan is what wiring one node to another does.
type WirePlan struct {
	// Replaces is the node the new link takes the place of: a cpu dragged
	// onto a second fossil roots from it instead of its first, a fossil
	// dragged onto another venti archives there instead, a cpu dragged onto
	// another auth server authenticates there instead. "" when the link is
	// simply added.
	Replaces string
	// Kind is the kind of the replaced link (root, archive or auth).
	Kind string
}

// planWire says what wiring from to to in g would do: add a link, replace
// the node's link of the same kind (grid.Rewire, tried on a copy), or
// nothing (a *grid.WiringError says why). g is not changed.
func planWire(g *grid.Grid, from, to string) (WirePlan, error) {
	err := g.CanWire(from, to)
	var we *grid.WiringError
	if err == nil || !errors.As(err, &we) {
		return WirePlan{}, err
	}
	sim, cerr := g.Copy()
	if cerr != nil {
		return WirePlan{}, cerr
	}
	l, old, rerr := sim.Rewire(from, to)
	if rerr != nil || old == nil {
		return WirePlan{}, err
	}
	return WirePlan{Replaces: old.Name, Kind: string(l.Kind)}, nil
}

// CanWire reports, without changing anything, whether from may be wired to
// to, as a new link or in place of from's link of the same kind (see
// Wire); the error (a *grid.WiringError when the pair is refused) says why
// not.
func (a *App) CanWire(ctx context.Context, from, to string) error {
	g, err := a.snapshot(ctx)
	if err != nil {
		return err
	}
	_, err = planWire(g, from, to)
	return err
}

// Wire links from to to (cpu → fossil, fossil → venti, cpu → auth). When
// from already has a link of that kind to another node (a cpu roots from
// exactly one fossil), the new link replaces it: dragging a cpu onto a
// second fossil means "boot from that one". The plan says what was
// replaced. A running node keeps its configuration until it restarts (it
// shows as pending). A pair the grid refuses changes nothing and returns
// a *grid.WiringError.
//
// A replacement is one engine command, rewire, so nobody watching sees
// the node without its link.
func (a *App) Wire(ctx context.Context, from, to string) (WirePlan, error) {
	b := a.engine()
	g, err := b.Grid(ctx)
	if err != nil {
		return WirePlan{}, err
	}
	plan, err := planWire(g, from, to)
	if err != nil {
		return plan, err
	}
	if plan.Replaces == "" {
		return plan, b.Ctl(ctx, "wire", from, to)
	}
	return plan, b.Ctl(ctx, "rewire", from, to)
}
