package app

import (
	"context"
	"errors"
	"fmt"

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

	// restorable: wiring the node back to Replaces makes a link of the
	// same kind, so a failed rewire can be undone.
	restorable bool
}

// planWire says what wiring from to to in g would do: add a link, replace
// the node's link of the same kind, or nothing (a *grid.WiringError says
// why). g is not changed.
func planWire(g *grid.Grid, from, to string) (WirePlan, error) {
	err := g.CanWire(from, to)
	var we *grid.WiringError
	if err == nil || !errors.As(err, &we) {
		return WirePlan{}, err
	}
	f, t := g.Node(from), g.Node(to)
	if f == nil || t == nil {
		return WirePlan{}, err
	}
	for _, l := range g.Links {
		if l.From != f.ID || l.To == t.ID {
			continue
		}
		cur := g.NodeByID(l.To)
		if cur == nil {
			continue
		}
		sim, cerr := g.Copy()
		if cerr != nil {
			return WirePlan{}, cerr
		}
		if sim.Unwire(from, cur.Name) != nil || sim.CanWire(from, to) != nil {
			continue
		}
		// The engine's unwire removes every link between the pair; if
		// there is more than this one, rewiring would lose the others.
		for _, o := range g.Links {
			if o != l && o.From == f.ID && o.To == cur.ID {
				return WirePlan{}, &grid.WiringError{From: from, To: to, Reason: fmt.Sprintf(
					"%s has both a %s and a %s link to %s, and moving one would drop the other; unwire %s from %s first",
					from, l.Kind, o.Kind, cur.Name, from, cur.Name)}
			}
		}
		back, _ := sim.Wire(from, cur.Name) // what "wire FROM OLD" would restore
		return WirePlan{Replaces: cur.Name, Kind: string(l.Kind), restorable: back != nil && back.Kind == l.Kind}, nil
	}
	return WirePlan{}, err
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
// A replacement is two engine commands, unwire then wire; if the wire
// fails the old link is restored when it can be.
func (a *App) Wire(ctx context.Context, from, to string) (WirePlan, error) {
	b := a.Backend()
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
	if err := b.Ctl(ctx, "unwire", from, plan.Replaces); err != nil {
		return plan, fmt.Errorf("rewire %s from %s to %s: %w", from, plan.Replaces, to, err)
	}
	if err := b.Ctl(ctx, "wire", from, to); err != nil {
		if !plan.restorable {
			return plan, fmt.Errorf("rewire %s from %s to %s: %w (the %s link to %s is gone: wire it again by hand)", from, plan.Replaces, to, err, plan.Kind, plan.Replaces)
		}
		if rerr := b.Ctl(ctx, "wire", from, plan.Replaces); rerr != nil {
			return plan, fmt.Errorf("rewire %s from %s to %s: %w (and restoring the link to %s failed: %v)", from, plan.Replaces, to, err, plan.Replaces, rerr)
		}
		return plan, fmt.Errorf("rewire %s from %s to %s: %w (the link to %s is restored)", from, plan.Replaces, to, err, plan.Replaces)
	}
	return plan, nil
}
