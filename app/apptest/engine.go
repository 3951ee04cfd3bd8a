package apptest

import (
	"context"
	"fmt"

	"gridlord/app"
	"gridlord/engine/console"
	"gridlord/engine/gridfs"
)

// Engine serves an app.Local (with this package's Runner) as a
// gridfs.Engine: a stand-in for the engine daemon whose grid is a real grid
// directory and whose VMs are the Runner's.
type Engine struct {
	L *app.Local
	R *Runner
}

var _ gridfs.Engine = (*Engine)(nil)

// GridJSON implements gridfs.Engine.
func (e *Engine) GridJSON() ([]byte, error) {
	g, err := e.L.Grid(context.Background())
	if err != nil {
		return nil, err
	}
	return g.Marshal()
}

// Ctl implements gridfs.Engine.
func (e *Engine) Ctl(ctx context.Context, words []string) error { return e.L.Ctl(ctx, words...) }

// Nodes implements gridfs.Engine.
func (e *Engine) Nodes() []string {
	g, err := e.L.Grid(context.Background())
	if err != nil {
		return nil
	}
	var names []string
	for _, n := range g.Nodes {
		names = append(names, n.Name)
	}
	return names
}

// NodeCtl implements gridfs.Engine.
func (e *Engine) NodeCtl(ctx context.Context, node string, words []string) error {
	return e.L.NodeCtl(ctx, node, words...)
}

// NodeStatus implements gridfs.Engine.
func (e *Engine) NodeStatus(node string) (string, error) {
	return e.L.NodeStatus(context.Background(), node)
}

// NodeIni implements gridfs.Engine.
func (e *Engine) NodeIni(node string) ([]byte, error) {
	return e.L.NodeIni(context.Background(), node)
}

// Console implements gridfs.Engine.
func (e *Engine) Console(node string) (*console.Hub, error) {
	g, err := e.L.Grid(context.Background())
	if err != nil {
		return nil, err
	}
	n := g.Node(node)
	if n == nil {
		return nil, fmt.Errorf("no node %q", node)
	}
	h := e.R.Hub(n)
	if h == nil {
		return nil, fmt.Errorf("%s was never started", node)
	}
	return h, nil
}

// NodeLog implements gridfs.Engine.
func (e *Engine) NodeLog(node string) ([]byte, error) {
	h, err := e.Console(node)
	if err != nil {
		return nil, err
	}
	return h.Scrollback(), nil
}

// Identity implements gridfs.Engine: the stand-in engine's nodes have no
// disks.
func (e *Engine) Identity(context.Context, []string) error {
	return fmt.Errorf("the stand-in engine's nodes have no nvram")
}

// NodeDrawterm implements gridfs.Engine: the stand-in engine runs no VMs.
func (e *Engine) NodeDrawterm(node string) ([]byte, error) {
	return nil, fmt.Errorf("node %s: the stand-in engine runs no cpu service", node)
}

// VentiMirrors implements gridfs.Engine: no mirrors.
func (e *Engine) VentiMirrors() ([]byte, error) { return nil, nil }

// Seeds implements gridfs.Engine.
func (e *Engine) Seeds() ([]string, error) { return nil, nil }

// VentiStats implements gridfs.Engine.
func (e *Engine) VentiStats() ([]byte, error) {
	v, err := e.L.Venti(context.Background())
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "addr %s\nblocks %d\nstoredBytes %d\nclientBytes %d\n", v.Addr, v.Blocks, v.StoredBytes, v.WrittenBytes), nil
}

// Changed implements gridfs.Engine: a change of the grid or of a VM.
func (e *Engine) Changed() <-chan struct{} {
	ch := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	sub := e.L.Changes(ctx)
	go func() {
		<-sub
		cancel()
		close(ch)
	}()
	return ch
}
