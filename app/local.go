package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gridlord/engine/drawterm"
	"gridlord/engine/grid"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// Runner runs the VMs of a grid for the in-process backend: it is the
// engine-side half of Local. A real runner drives QEMU; tests use one with
// stand-in guests. Methods are safe for concurrent use.
type Runner interface {
	// Start boots node n of g (its dependencies are already started or
	// starting). It returns once the start is under way; the state then
	// moves on by itself.
	Start(ctx context.Context, g *grid.Grid, n *grid.Node) error
	// Stop shuts n down: cleanly, or at once with force (power off).
	Stop(ctx context.Context, n *grid.Node, force bool) error
	// Reset recreates stopped n's disk from its seed (the engine's "reset").
	Reset(ctx context.Context, n *grid.Node) error
	// State is n's state: stopped, starting, running, stopping or failed.
	State(n *grid.Node) string
	// Console attaches to n's serial console.
	Console(n *grid.Node) (io.ReadWriteCloser, error)
	// Changed is closed at the next change of any node's state.
	Changed() <-chan struct{}
}

// LocalOptions configure OpenLocal. The zero value is ready to use.
type LocalOptions struct {
	// DataDir holds the venti store and the grids (default DefaultDataDir()).
	DataDir string
	// GridDir is the grid to open (default DataDir/grids/default); the
	// default grid is created there on first use.
	GridDir string
	// VentiAddr is the embedded venti's listen address (default
	// DefaultVentiAddr). Addresses other than loopback must be given here
	// explicitly.
	VentiAddr string
	// Runner runs VMs; nil means none: start, stop and consoles then fail
	// with ErrEngineNotRunning.
	Runner Runner
	// Logger receives the engine's logs (default: discarded).
	Logger *slog.Logger
}

// Local is the in-process backend: the embedded venti (store and server)
// and the grid model, edited and saved here, with VMs run by an optional
// Runner.
type Local struct {
	log    *slog.Logger
	store  *store.Store
	cancel context.CancelFunc
	served chan error
	runner Runner
	notes  Notifier
	done   chan struct{} // closed by Close
	closed sync.Once

	addr     string
	ventiErr string

	mu   sync.Mutex // guards grid
	grid *grid.Grid
}

var _ Backend = (*Local)(nil)

// OpenLocal starts the embedded venti on opts.VentiAddr over the store in
// DataDir/venti and opens the grid, creating the default grid on first use.
// If the venti address is taken, OpenLocal still succeeds and Venti reports
// why the venti is not serving.
func OpenLocal(ctx context.Context, opts LocalOptions) (*Local, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		d, err := DefaultDataDir()
		if err != nil {
			return nil, err
		}
		opts.DataDir = d
	}
	if opts.GridDir == "" {
		opts.GridDir = filepath.Join(opts.DataDir, "grids", "default")
	}
	if opts.VentiAddr == "" {
		opts.VentiAddr = DefaultVentiAddr
	}
	st, err := store.Open(filepath.Join(opts.DataDir, "venti"), store.WithLogger(opts.Logger))
	if err != nil {
		return nil, fmt.Errorf("open the embedded venti: %w", err)
	}
	g, err := openGrid(opts.GridDir)
	if err != nil {
		st.Close()
		return nil, err
	}
	l := &Local{log: opts.Logger, store: st, grid: g, runner: opts.Runner, served: make(chan error, 1), done: make(chan struct{})}
	if l.runner != nil {
		go l.pumpRunner(l.done)
	}
	ln, err := net.Listen("tcp", opts.VentiAddr)
	if err != nil {
		l.ventiErr = fmt.Sprintf("cannot listen on %s (%v); is another venti running?", opts.VentiAddr, err)
		close(l.served)
		return l, nil
	}
	l.addr = ln.Addr().String()
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	srv := venti.NewServer(st, venti.WithLogger(opts.Logger))
	go func() { l.served <- srv.Serve(sctx, ln); close(l.served) }()
	opts.Logger.Info("embedded venti serving", "addr", l.addr, "store", st.Dir())
	return l, nil
}

// openGrid loads the grid in dir, creating the default grid there first if
// there is none.
func openGrid(dir string) (*grid.Grid, error) {
	g, err := grid.Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		g, err = grid.New(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open grid: %w", err)
	}
	return g, nil
}

// Close stops the venti server and closes the store. VMs a Runner started
// are the Runner's to stop.
func (l *Local) Close() error {
	l.closed.Do(func() { close(l.done) })
	if l.cancel != nil {
		l.cancel()
	}
	<-l.served
	return l.store.Close()
}

// VentiAddr is the address the embedded venti listens on ("" if it could
// not listen).
func (l *Local) VentiAddr() string { return l.addr }

// GridDir implements Backend.
func (l *Local) GridDir() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grid.Dir()
}

// Grid implements Backend.
func (l *Local) Grid(context.Context) (*grid.Grid, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grid.Copy()
}

// Venti implements Backend.
func (l *Local) Venti(context.Context) (VentiStatus, error) {
	s := l.store.Stats()
	return VentiStatus{
		Addr:         l.addr,
		Blocks:       s.Blocks,
		StoredBytes:  s.StoredBytes,
		WrittenBytes: int64(s.ClientBytes),
		Err:          l.ventiErr,
	}, nil
}

// Changes implements Backend.
func (l *Local) Changes(ctx context.Context) <-chan struct{} { return l.notes.Subscribe(ctx) }

// Err implements Backend: the in-process grid's events never fail.
func (l *Local) Err() error { return nil }

// pumpRunner turns the runner's state changes into the grid's change
// events until the backend closes.
func (l *Local) pumpRunner(done <-chan struct{}) {
	for {
		select {
		case <-l.runner.Changed():
			l.notes.Notify()
		case <-done:
			return
		}
	}
}

// state is node n's state (l.mu held).
func (l *Local) state(n *grid.Node) string {
	switch {
	case !n.HasVM() && l.ventiErr == "":
		return "running"
	case !n.HasVM():
		return "failed"
	case l.runner == nil:
		return "stopped"
	}
	return l.runner.State(n)
}

// NodeStatus implements Backend.
func (l *Local) NodeStatus(_ context.Context, name string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.grid.Node(name)
	if n == nil {
		return "", fmt.Errorf("no node %q in grid %s", name, l.grid.Name)
	}
	s := l.state(n)
	if n.IP.IsValid() {
		s += " ip=" + n.IP.String()
	}
	return s + " pending=" + strconv.FormatBool(n.Pending()), nil
}

// Identity implements Backend: the in-process backend writes nvram itself
// (ResetIdentity) and cannot reach keyfs.
func (l *Local) Identity(context.Context, string) error { return ErrEngineNotRunning }

// Drawterm implements Backend: only the engine daemon runs cpu nodes.
func (l *Local) Drawterm(context.Context, string) (drawterm.Target, error) {
	return drawterm.Target{}, ErrEngineNotRunning
}

// NodeIni implements Backend: the plan9.ini on the node's disk when it has
// one, else the Gridlord-owned entries it will get.
func (l *Local) NodeIni(_ context.Context, name string) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.grid.Node(name)
	if n == nil {
		return nil, fmt.Errorf("no node %q in grid %s", name, l.grid.Name)
	}
	if disk := NodeDisk(l.grid.Dir(), n); disk != "" {
		return readDiskIni(disk)
	}
	c, err := l.grid.Config(name)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, kv := range c.Ini {
		fmt.Fprintf(&b, "%s=%s\n", kv.Key, kv.Value)
	}
	return []byte(b.String()), nil
}

// OpenConsole implements Backend.
func (l *Local) OpenConsole(_ context.Context, name string) (io.ReadWriteCloser, error) {
	l.mu.Lock()
	n := l.grid.Node(name)
	l.mu.Unlock()
	if n == nil {
		return nil, fmt.Errorf("no node %q", name)
	}
	if !n.HasVM() {
		return nil, fmt.Errorf("%s is the embedded venti: it has no console", name)
	}
	if l.runner == nil {
		return nil, ErrEngineNotRunning
	}
	return l.runner.Console(n)
}

// NodeCtl implements Backend. start starts the node's dependencies first,
// stop and poweroff stop its dependants first (grid.StartOrder, StopOrder).
func (l *Local) NodeCtl(ctx context.Context, name string, words ...string) error {
	if len(words) == 0 {
		return errors.New("empty node command")
	}
	switch words[0] {
	case "wire", "unwire", "rewire":
		if len(words) != 2 {
			return fmt.Errorf("usage: %s TARGET", words[0])
		}
		return l.Ctl(ctx, words[0], name, words[1])
	case "clone":
		if len(words) != 2 {
			return errors.New("usage: clone NEWNAME")
		}
		return l.Ctl(ctx, "clone", name, words[1])
	case "start", "stop", "poweroff", "reset":
	default:
		return fmt.Errorf("unknown node command %q: want start, stop, poweroff, reset, wire, unwire or clone", words[0])
	}
	if l.runner == nil {
		return fmt.Errorf("%s %s: %w", words[0], name, ErrEngineNotRunning)
	}
	l.mu.Lock()
	g, err := l.grid.Copy()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if g.Node(name) == nil {
		return fmt.Errorf("no node %q in grid %s", name, g.Name)
	}
	return l.run(ctx, g, words[0], name)
}

// run starts or stops the named nodes (all when none) in the engine's order.
func (l *Local) run(ctx context.Context, g *grid.Grid, verb string, names ...string) error {
	var order []*grid.Node
	var err error
	if verb == "start" {
		order, err = g.StartOrder(names...)
	} else {
		order, err = g.StopOrder(names...)
	}
	if err != nil {
		return err
	}
	for _, n := range order {
		if !n.HasVM() {
			continue
		}
		st := l.runner.State(n)
		switch verb {
		case "start":
			if st == "running" || st == "starting" {
				continue
			}
			for _, p := range g.Check() {
				if p.Node == n.Name && p.Severity == grid.SeverityError {
					return fmt.Errorf("cannot start %s: %s", n.Name, p.Message)
				}
			}
			err = l.runner.Start(ctx, g, n)
		case "stop", "poweroff":
			if st == "stopped" {
				continue
			}
			err = l.runner.Stop(ctx, n, verb == "poweroff")
		case "reset":
			if n.Name != names[0] {
				continue
			}
			err = l.runner.Reset(ctx, n)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", verb, n.Name, err)
		}
	}
	return nil
}

// Ctl implements Backend.
func (l *Local) Ctl(ctx context.Context, words ...string) error {
	if len(words) == 0 {
		return errors.New("empty grid command")
	}
	verb, args := words[0], words[1:]
	switch verb {
	case "up", "down":
		if l.runner == nil {
			return fmt.Errorf("%s: %w", verb, ErrEngineNotRunning)
		}
		g, err := l.Grid(ctx)
		if err != nil {
			return err
		}
		if verb == "up" {
			return l.run(ctx, g, "start")
		}
		return l.run(ctx, g, "stop")
	case "remove":
		if len(args) == 1 {
			l.mu.Lock()
			n := l.grid.Node(args[0])
			st := ""
			if n != nil && n.HasVM() {
				st = l.state(n)
			}
			l.mu.Unlock()
			if st != "" && st != "stopped" && st != "failed" {
				return fmt.Errorf("remove %s: it is %s; stop it first", args[0], st)
			}
		}
	}
	return l.edit(func(g *grid.Grid) error { return ApplyCtl(g, words...) })
}

// EditVerbs returns the grid commands that only edit the model (ApplyCtl).
func EditVerbs() []string {
	return []string{"add", "arrange", "clone", "identity", "ip", "memory", "move", "remove", "rename", "rewire", "unwire", "wire"}
}

// ApplyCtl applies one model-editing grid command (see Backend.Ctl and
// EditVerbs) to g. It is how Local edits its grid, and how wizards preview
// what a command list will do, on a copy.
func ApplyCtl(g *grid.Grid, words ...string) error {
	if len(words) == 0 {
		return errors.New("empty grid command")
	}
	verb, args := words[0], words[1:]
	want := func(n int, usage string) error {
		if len(args) != n {
			return fmt.Errorf("usage: %s %s", verb, usage)
		}
		return nil
	}
	switch verb {
	case "add":
		if err := want(3, "KIND NAME SEED"); err != nil {
			return err
		}
		_, err := g.AddNode(grid.NodeSpec{Kind: grid.Kind(args[0]), Name: args[1], Seed: args[2]})
		return err
	case "remove":
		if err := want(1, "NAME"); err != nil {
			return err
		}
		return g.RemoveNode(args[0])
	case "clone":
		if err := want(2, "SRC NEW"); err != nil {
			return err
		}
		_, err := g.CloneNode(args[0], args[1])
		return err
	case "wire":
		if err := want(2, "FROM TO"); err != nil {
			return err
		}
		_, err := g.Wire(args[0], args[1])
		return err
	case "unwire":
		if err := want(2, "FROM TO"); err != nil {
			return err
		}
		return g.Unwire(args[0], args[1])
	case "rewire":
		if err := want(2, "FROM TO"); err != nil {
			return err
		}
		_, _, err := g.Rewire(args[0], args[1])
		return err
	case "move":
		if err := want(3, "NAME X Y"); err != nil {
			return err
		}
		x, err1 := strconv.ParseFloat(args[1], 64)
		y, err2 := strconv.ParseFloat(args[2], 64)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("move %s: bad position: %w", args[0], err)
		}
		return g.Move(args[0], x, y)
	case "arrange":
		g.Arrange()
		return nil
	case "identity":
		if err := want(3, "NAME USER AUTHDOM"); err != nil {
			return err
		}
		return g.SetIdentity(args[0], args[1], args[2])
	case "memory":
		if err := want(2, "NAME MB"); err != nil {
			return err
		}
		mb, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("memory %s: %q is not a number of MiB", args[0], args[1])
		}
		return g.SetMemory(args[0], mb)
	case "ip":
		if err := want(2, "NAME ADDR"); err != nil {
			return err
		}
		ip, err := netip.ParseAddr(args[1])
		if err != nil {
			return fmt.Errorf("ip %s: %w", args[0], err)
		}
		return g.SetIP(args[0], ip)
	case "rename":
		if err := want(2, "OLD NEW"); err != nil {
			return err
		}
		return g.Rename(args[0], args[1])
	}
	verbs := append([]string{"up", "down"}, EditVerbs()...)
	slices.Sort(verbs)
	return fmt.Errorf("unknown grid command %q: want one of %s", verb, strings.Join(verbs, ", "))
}

// edit applies change to the grid and saves it. If the change or the save
// fails, the grid is reloaded from its file, so a failed edit changes
// nothing. Every successful edit is announced to Changes.
func (l *Local) edit(change func(*grid.Grid) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := change(l.grid)
	if err == nil {
		err = l.grid.Save()
	}
	if err != nil {
		if g, lerr := grid.Load(l.grid.Dir()); lerr == nil {
			l.grid = g
		}
		return err
	}
	l.notes.Notify()
	return nil
}

// reload rereads the grid from its directory (after another program, or
// this one through a file, changed it) and announces the change.
func (l *Local) reload() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	g, err := grid.Load(l.grid.Dir())
	if err != nil {
		return err
	}
	l.grid = g
	l.notes.Notify()
	return nil
}
