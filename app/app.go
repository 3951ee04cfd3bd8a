package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gridlord/engine/grid"
)

// DefaultVentiAddr is where the embedded venti listens unless told otherwise:
// loopback only.
const DefaultVentiAddr = "127.0.0.1:17034"

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

// App is what the window holds: a Backend and the last grid snapshot it
// returned, with one method per user action. Its methods are safe for
// concurrent use and may block on the engine: call them off the UI
// goroutine.
type App struct {
	log *slog.Logger

	swaps Notifier // fires when the backend is replaced

	mu   sync.Mutex
	b    Backend
	last *grid.Grid // the grid as of the last View
}

// setBackend makes b the backend and wakes Watch so it follows.
func (a *App) setBackend(b Backend) {
	a.mu.Lock()
	a.b, a.last = b, nil
	a.mu.Unlock()
	a.swaps.Notify()
}

// New returns an App over b.
func New(b Backend, log *slog.Logger) *App {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &App{b: b, log: log}
}

// Backend returns the current backend.
func (a *App) Backend() Backend {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b
}

// SwitchBackend makes b the backend (after New grid or Open grid) and
// closes the previous one.
func (a *App) SwitchBackend(b Backend) error {
	old := a.Backend()
	a.setBackend(b)
	if old != nil && old != b {
		return old.Close()
	}
	return nil
}

// Close closes the backend.
func (a *App) Close() error { return a.Backend().Close() }

// View returns a snapshot of the grid and every node's state for drawing.
func (a *App) View(ctx context.Context) (GridView, error) {
	b := a.Backend()
	g, err := b.Grid(ctx)
	if err != nil {
		return GridView{}, err
	}
	a.mu.Lock()
	a.last = g
	a.mu.Unlock()
	v := GridView{Name: g.Name, Dir: b.GridDir()}
	problems := map[string][]string{}
	for _, p := range g.Check() {
		problems[p.Node] = append(problems[p.Node], string(p.Severity)+": "+p.Message)
	}
	for _, n := range g.Nodes {
		nv := NodeView{
			ID:       n.ID.String(),
			Name:     n.Name,
			Kind:     string(n.Kind),
			Seed:     n.Seed,
			MemoryMB: n.MemoryMB,
			User:     n.User,
			AuthDom:  n.AuthDom,
			State:    "stopped",
			Embedded: !n.HasVM(),
			X:        float32(n.Position.X),
			Y:        float32(n.Position.Y),
			Problems: problems[n.Name],
		}
		if n.IP.IsValid() {
			nv.IP = n.IP.String()
		}
		if st, err := b.NodeStatus(ctx, n.Name); err == nil {
			nv.State = firstWord(st)
		} else {
			nv.State = "failed"
			nv.Problems = append(nv.Problems, "status: "+err.Error())
		}
		// A configuration not yet on the disk is pending only while the VM
		// runs on the old one: a stopped node gets it when it starts.
		nv.Pending = n.Pending() && nv.Up()
		v.Nodes = append(v.Nodes, nv)
	}
	for _, l := range g.Links {
		v.Links = append(v.Links, LinkView{From: l.From.String(), To: l.To.String(), Kind: string(l.Kind)})
	}
	return v, nil
}

// Venti returns the venti's status for the status bar.
func (a *App) Venti(ctx context.Context) VentiStatus {
	v, err := a.Backend().Venti(ctx)
	if err != nil {
		v.Err = err.Error()
	}
	return v
}

// snapshot returns the last grid View saw, fetching one if there is none.
func (a *App) snapshot(ctx context.Context) (*grid.Grid, error) {
	a.mu.Lock()
	g := a.last
	a.mu.Unlock()
	if g != nil {
		return g, nil
	}
	return a.Backend().Grid(ctx)
}

// Unwire removes the link from from to to.
func (a *App) Unwire(ctx context.Context, from, to string) error {
	return a.Backend().Ctl(ctx, "unwire", from, to)
}

// Move records a node's new position on the canvas.
func (a *App) Move(ctx context.Context, name string, x, y float32) error {
	return a.Backend().Ctl(ctx, "move", name,
		strconv.FormatFloat(float64(x), 'f', -1, 32), strconv.FormatFloat(float64(y), 'f', -1, 32))
}

// Arrange lays the grid out left to right by dependency.
func (a *App) Arrange(ctx context.Context) error { return a.Backend().Ctl(ctx, "arrange") }

// NodeCtl runs start, stop, poweroff or reset on a node.
func (a *App) NodeCtl(ctx context.Context, name, verb string) error {
	return a.Backend().NodeCtl(ctx, name, verb)
}

// Toggle starts a stopped (or failed) node and stops a running (or
// starting) one, returning the verb it used.
func (a *App) Toggle(ctx context.Context, name string) (string, error) {
	st, err := a.Backend().NodeStatus(ctx, name)
	if err != nil {
		return "", err
	}
	verb := "start"
	switch firstWord(st) {
	case "running", "starting":
		verb = "stop"
	case "stopping":
		return "", fmt.Errorf("%s is already stopping", name)
	}
	return verb, a.NodeCtl(ctx, name, verb)
}

// UpAll starts every node, dependencies first.
func (a *App) UpAll(ctx context.Context) error { return a.Backend().Ctl(ctx, "up") }

// DownAll stops every node, dependants first.
func (a *App) DownAll(ctx context.Context) error { return a.Backend().Ctl(ctx, "down") }

// AddNode adds a node of kind with seed; name "" picks the next free one.
func (a *App) AddNode(ctx context.Context, kind, name, seed string) (string, error) {
	if name == "" {
		g, err := a.Backend().Grid(ctx)
		if err != nil {
			return "", err
		}
		name = g.NextName(grid.Kind(kind))
	}
	return name, a.Backend().Ctl(ctx, "add", kind, name, seed)
}

// Remove deletes a node and its links.
func (a *App) Remove(ctx context.Context, name string) error {
	return a.Backend().Ctl(ctx, "remove", name)
}

// Ini returns the node's plan9.ini.
func (a *App) Ini(ctx context.Context, name string) ([]byte, error) {
	return a.Backend().NodeIni(ctx, name)
}

// Config derives what Gridlord writes to a node (grid.Config) from the
// current grid.
func (a *App) Config(ctx context.Context, name string) (*grid.NodeConfig, error) {
	g, err := a.Backend().Grid(ctx)
	if err != nil {
		return nil, err
	}
	return g.Config(name)
}

// Properties are the editable properties of a node.
type Properties struct {
	Name     string
	MemoryMB int
	IP       string
}

// SetProperties changes a node's name, memory and address to p, one
// command per changed field (renaming last).
func (a *App) SetProperties(ctx context.Context, name string, p Properties) error {
	g, err := a.Backend().Grid(ctx)
	if err != nil {
		return err
	}
	n := g.Node(name)
	if n == nil {
		return fmt.Errorf("no node %q", name)
	}
	b := a.Backend()
	if p.MemoryMB != n.MemoryMB {
		if err := b.Ctl(ctx, "memory", name, strconv.Itoa(p.MemoryMB)); err != nil {
			return err
		}
	}
	if ip := strings.TrimSpace(p.IP); ip != "" && ip != n.IP.String() {
		if err := b.Ctl(ctx, "ip", name, ip); err != nil {
			return err
		}
	}
	if p.Name != "" && p.Name != name {
		return b.Ctl(ctx, "rename", name, p.Name)
	}
	return nil
}

// Watch calls changed after every change the backend reports until ctx
// ends: the window's only source of refreshes, so there is no polling. It
// follows backend switches (StartEngine, SwitchBackend). When the engine's
// event stream fails it calls changed once, so the window can show why,
// and subscribes again after a pause that grows to at most 5 seconds.
func (a *App) Watch(ctx context.Context, changed func()) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		swapped := a.swaps.Changed()
		b := a.Backend()
		sctx, cancel := context.WithCancel(ctx)
		sub := b.Changes(sctx)
		failed := true
	loop:
		for {
			select {
			case _, ok := <-sub:
				if !ok {
					break loop
				}
				pause = 100 * time.Millisecond
				changed()
			case <-swapped:
				failed = false
				changed()
				break loop
			case <-ctx.Done():
				failed = false
				break loop
			}
		}
		cancel()
		if !failed || ctx.Err() != nil {
			continue
		}
		a.log.Warn("engine events", "err", b.Err())
		changed()
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// Open opens the in-process backend (see OpenLocal) and returns an App over
// it: the window's fallback when no engine daemon answers.
func Open(ctx context.Context, opts LocalOptions) (*App, error) {
	l, err := OpenLocal(ctx, opts)
	if err != nil {
		return nil, err
	}
	return New(l, opts.Logger), nil
}
