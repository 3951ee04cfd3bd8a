package app

import (
	"context"
	"fmt"
	"io"

	"gridlord/engine/drawterm"
)

// Drawterm opens drawterm on a running cpu node, as its host owner, where
// the engine says it is reached (its forwards of the node's cpu port and
// of its auth server's ticket and secstore ports, the protocol, and the
// password when the grid knows it). Errors say what to do: install
// drawterm, start the node, or wait for it. With noGraphics drawterm-9front
// runs in text mode (-G), its terminal on out.
func (a *App) Drawterm(ctx context.Context, name string, noGraphics bool, out io.Writer) (*drawterm.Session, error) {
	g, err := a.Backend().Grid(ctx)
	if err != nil {
		return nil, err
	}
	n := g.Node(name)
	if n == nil {
		return nil, fmt.Errorf("no node %q", name)
	}
	if n.Kind != "cpu" {
		return nil, fmt.Errorf("%s is a %s: drawterm connects to cpu servers", name, n.Kind)
	}
	st, err := a.Backend().NodeStatus(ctx, name)
	if err != nil {
		return nil, err
	}
	if s := firstWord(st); s != "running" {
		return nil, fmt.Errorf("%s is not ready (%s): start it and wait until it is running", name, s)
	}
	t, err := a.Backend().Drawterm(ctx, name)
	if err != nil {
		return nil, err
	}
	bin, err := drawterm.Find(ctx, "")
	if err != nil {
		return nil, err
	}
	t.NoGraphics = noGraphics
	return drawterm.Launch(ctx, bin, t, out)
}
