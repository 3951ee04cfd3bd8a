package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"gridlord/engine/grid"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// DefaultVentiAddr is where the embedded venti listens unless told otherwise:
// loopback only.
const DefaultVentiAddr = "127.0.0.1:17034"

// Options configure Open. The zero value is ready to use.
type Options struct {
	// DataDir holds the venti store and the grids (default DefaultDataDir()).
	DataDir string
	// VentiAddr is the embedded venti's listen address (default
	// DefaultVentiAddr). Addresses other than loopback must be given here
	// explicitly.
	VentiAddr string
	// Logger receives the engine's logs (default: discarded).
	Logger *slog.Logger
}

// DefaultDataDir is where Gridlord keeps its data: $XDG_DATA_HOME/gridlord,
// or the platform's user configuration directory when that is unset.
func DefaultDataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "gridlord"), nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "gridlord"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find a data directory: %w", err)
	}
	return filepath.Join(d, "gridlord"), nil
}

// App is one running Gridlord: the embedded venti (store and server) and
// the open grid. Its methods are safe for concurrent use.
type App struct {
	log    *slog.Logger
	store  *store.Store
	cancel context.CancelFunc
	served chan error

	mu       sync.Mutex
	grid     *grid.Grid
	addr     string
	ventiErr string
}

// Open starts the embedded venti on opts.VentiAddr over the store in
// DataDir/venti and opens the default grid in DataDir/grids/default,
// creating it on first use. If the venti address is taken, Open still
// succeeds and VentiStatus reports why the venti is not serving.
func Open(ctx context.Context, opts Options) (*App, error) {
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
	if opts.VentiAddr == "" {
		opts.VentiAddr = DefaultVentiAddr
	}
	st, err := store.Open(filepath.Join(opts.DataDir, "venti"), store.WithLogger(opts.Logger))
	if err != nil {
		return nil, fmt.Errorf("open the embedded venti: %w", err)
	}
	g, err := openGrid(filepath.Join(opts.DataDir, "grids", "default"))
	if err != nil {
		st.Close()
		return nil, err
	}
	a := &App{log: opts.Logger, store: st, grid: g, served: make(chan error, 1)}
	ln, err := net.Listen("tcp", opts.VentiAddr)
	if err != nil {
		a.ventiErr = fmt.Sprintf("cannot listen on %s (%v); is another venti running?", opts.VentiAddr, err)
		close(a.served)
		return a, nil
	}
	a.addr = ln.Addr().String()
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	srv := venti.NewServer(st, venti.WithLogger(opts.Logger))
	go func() { a.served <- srv.Serve(sctx, ln); close(a.served) }()
	opts.Logger.Info("embedded venti serving", "addr", a.addr, "store", st.Dir())
	return a, nil
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

// Close stops the venti server and closes the store.
func (a *App) Close() error {
	if a.cancel != nil {
		a.cancel()
	}
	<-a.served
	return a.store.Close()
}

// VentiAddr is the address the embedded venti listens on ("" if it could
// not listen).
func (a *App) VentiAddr() string { return a.addr }

// Venti returns the embedded venti's status for the status bar.
func (a *App) Venti() VentiStatus {
	s := a.store.Stats()
	return VentiStatus{
		Addr:         a.addr,
		Blocks:       s.Blocks,
		StoredBytes:  s.StoredBytes,
		WrittenBytes: int64(s.ClientBytes),
		Err:          a.ventiErr,
	}
}

// Grid returns a snapshot of the open grid for drawing. VMs are not run by
// this version, so every node with a VM is shown stopped and the embedded
// venti running when it serves.
func (a *App) Grid() GridView {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := GridView{Name: a.grid.Name}
	for _, n := range a.grid.Nodes {
		nv := NodeView{
			ID:      n.ID.String(),
			Name:    n.Name,
			Kind:    string(n.Kind),
			State:   "stopped",
			Pending: n.Pending(),
			X:       float32(n.Position.X),
			Y:       float32(n.Position.Y),
		}
		if n.IP.IsValid() {
			nv.IP = n.IP.String()
		}
		if !n.HasVM() && a.ventiErr == "" {
			nv.State = "running"
		}
		v.Nodes = append(v.Nodes, nv)
	}
	for _, l := range a.grid.Links {
		v.Links = append(v.Links, LinkView{From: l.From.String(), To: l.To.String()})
	}
	return v
}

// MoveNode records a node's new position on the canvas and saves the grid.
func (a *App) MoveNode(id string, x, y float32) error {
	return a.editGrid(func(g *grid.Grid) error {
		for _, n := range g.Nodes {
			if n.ID.String() == id {
				return g.Move(n.Name, float64(x), float64(y))
			}
		}
		return fmt.Errorf("move node: no node with id %s", id)
	})
}

// Arrange lays the grid out left to right by dependency and saves it.
func (a *App) Arrange() error {
	return a.editGrid(func(g *grid.Grid) error { g.Arrange(); return nil })
}

// editGrid applies edit to the grid and saves it. If the edit or the save
// fails, the grid is reloaded from its file, so a failed edit changes
// nothing.
func (a *App) editGrid(edit func(*grid.Grid) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := edit(a.grid)
	if err == nil {
		err = a.grid.Save()
	}
	if err != nil {
		if g, lerr := grid.Load(a.grid.Dir()); lerr == nil {
			a.grid = g
		}
		return err
	}
	return nil
}
