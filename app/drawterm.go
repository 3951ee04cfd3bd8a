package app

import (
	"context"
	"fmt"
	"io"
	"strings"

	"gridlord/engine/drawterm"
)

// forwards parses the fwd= field of a node status line,
// "fwd=17010:127.0.0.1:40001,567:127.0.0.1:40002", into guest port → host
// address.
func forwards(status string) map[string]string {
	fw := map[string]string{}
	for _, f := range strings.Split(statusField(status, "fwd"), ",") {
		if port, host, ok := strings.Cut(f, ":"); ok {
			fw[port] = host
		}
	}
	return fw
}

// statusField returns the value of key=VALUE in a node status line.
func statusField(status, key string) string {
	for _, f := range strings.Fields(status) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// Drawterm opens drawterm on a running cpu node, as its host owner. The
// engine names the loopback forwards of the node's cpu and auth ports in
// its status line (fwd=17010:127.0.0.1:PORT,567:127.0.0.1:PORT,...): the
// cpu port the drawterm found speaks (17019 rcpu for 9front's, 17010 for
// Bell Labs') and the auth port 567. Errors say
// what to do: install drawterm, start the node, or wait for it.
func (a *App) Drawterm(ctx context.Context, name string, out io.Writer) (*drawterm.Session, error) {
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
	bin, err := drawterm.Find(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("%w; %s", err, drawterm.InstallHint())
	}
	fw := forwards(st)
	port := "17010"
	if bin.Flavor == drawterm.Front9 {
		port = "17019"
	}
	t := drawterm.Target{CPU: fw[port], Auth: fw["567"], User: n.User}
	if t.CPU == "" {
		return nil, fmt.Errorf("the engine forwards no port %s (for %s drawterm) to %s yet (status %q): wait until it has booted", port, bin.Flavor, name, st)
	}
	return drawterm.Launch(ctx, bin, t, out)
}
