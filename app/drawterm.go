package app

import (
	"context"
	"fmt"
	"io"

	"gridlord/engine/drawterm"
	"gridlord/engine/gridfs"
)

// Drawterm opens drawterm on a running cpu node, as its host owner, where
// the engine says it is reached (its forwards of the node's cpu port and
// of its auth server's ticket and secstore ports, the protocol, and the
// password when the grid knows it). Errors say what to do: install
// drawterm, start the node, or wait for it. Its messages go to out.
func (a *App) Drawterm(ctx context.Context, name string, out io.Writer) (*drawterm.Session, error) {
	return a.drawterm(ctx, name, nil, out)
}

// DrawtermText is Drawterm in drawterm-9front's text mode (-G): what is
// written to the returned writer is typed at the node's rc, its answers go
// to out. Closing the writer ends the session's input.
func (a *App) DrawtermText(ctx context.Context, name string, out io.Writer) (io.WriteCloser, *drawterm.Session, error) {
	pr, pw := io.Pipe()
	s, err := a.drawterm(ctx, name, pr, out)
	if err != nil {
		pr.Close()
		return nil, nil, err
	}
	return pw, s, nil
}

// drawterm launches drawterm on name; a non-nil tty means text mode.
func (a *App) drawterm(ctx context.Context, name string, tty io.Reader, out io.Writer) (*drawterm.Session, error) {
	g, err := a.engine().Grid(ctx)
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
	st, err := a.status(ctx, name)
	if err != nil {
		return nil, err
	}
	if st.State != gridfs.StateRunning {
		return nil, fmt.Errorf("%s is not ready (%s): start it and wait until it is running", name, st.State)
	}
	t, err := a.engine().Drawterm(ctx, name)
	if err != nil {
		return nil, err
	}
	bin, err := drawterm.Find(ctx, "")
	if err != nil {
		return nil, err
	}
	t.NoGraphics = tty != nil
	return drawterm.LaunchTTY(ctx, bin, t, tty, out)
}
