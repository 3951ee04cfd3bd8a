package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// Options configure New. The zero value is ready to use.
type Options struct {
	// Logger receives what the App logs (default: discarded).
	Logger *slog.Logger
	// Connect reaches the engine serving another grid (Open grid, New
	// grid), starting one when none answers; nil only dials (DialRemote).
	Connect func(ctx context.Context, dir string) (*Remote, error)
}

// App is what the window holds: a connection to the grid's engine (a
// gridfs client, Remote) and the last grid snapshot it returned, with one
// method per user action. Its methods are safe for concurrent use and may
// block on the engine: call them off the UI goroutine.
type App struct {
	log     *slog.Logger
	connect func(ctx context.Context, dir string) (*Remote, error)

	swaps Notifier // fires when the engine connection is replaced

	mu   sync.Mutex
	r    *Remote
	last *grid.Grid // the grid as of the last View
}

// New returns an App talking to the engine behind r.
func New(r *Remote, opts Options) *App {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Connect == nil {
		opts.Connect = DialRemote
	}
	return &App{r: r, log: opts.Logger, connect: opts.Connect}
}

// engine returns the current engine connection.
func (a *App) engine() *Remote {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.r
}

// switchTo makes r the engine connection (after Open grid or New grid),
// closes the previous one (its engine keeps running) and wakes Watch.
func (a *App) switchTo(r *Remote) error {
	a.mu.Lock()
	old := a.r
	a.r, a.last = r, nil
	a.mu.Unlock()
	a.swaps.Notify()
	if old != nil && old != r {
		return old.Close()
	}
	return nil
}

// Close closes the connection; the engine and its VMs keep running.
func (a *App) Close() error { return a.engine().Close() }

// GridDir is the directory of the grid the App shows.
func (a *App) GridDir() string { return a.engine().GridDir() }

// status reads and parses a node's status.
func (a *App) status(ctx context.Context, name string) (gridfs.NodeStatus, error) {
	line, err := a.engine().NodeStatus(ctx, name)
	if err != nil {
		return gridfs.NodeStatus{}, err
	}
	return gridfs.ParseNodeStatus(line)
}

// View returns a snapshot of the grid and every node's state for drawing.
func (a *App) View(ctx context.Context) (GridView, error) {
	r := a.engine()
	g, err := r.Grid(ctx)
	if err != nil {
		return GridView{}, err
	}
	a.mu.Lock()
	a.last = g
	a.mu.Unlock()
	v := GridView{Name: g.Name, Dir: r.GridDir()}
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
			State:    gridfs.StateStopped,
			Embedded: !n.HasVM(),
			X:        float32(n.Position.X),
			Y:        float32(n.Position.Y),
			Problems: problems[n.Name],
		}
		if n.IP.IsValid() {
			nv.IP = n.IP.String()
		}
		if st, err := a.status(ctx, n.Name); err == nil {
			nv.State = st.State
			nv.PID = st.PID
			nv.Measured, nv.Uptime, nv.CPU, nv.RSS = st.Measured, st.Uptime, st.CPU, st.RSS
			nv.DefaultPassword = st.DefaultPassword
			if st.Err != "" {
				nv.Problems = append(nv.Problems, st.State+": "+st.Err)
			}
		} else {
			nv.State = gridfs.StateFailed
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
	v, err := a.engine().Venti(ctx)
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
	return a.engine().Grid(ctx)
}

// Unwire removes the link from from to to.
func (a *App) Unwire(ctx context.Context, from, to string) error {
	return a.engine().Ctl(ctx, "unwire", from, to)
}

// Move records a node's new position on the canvas.
func (a *App) Move(ctx context.Context, name string, x, y float32) error {
	return a.engine().Ctl(ctx, "move", name,
		strconv.FormatFloat(float64(x), 'f', -1, 32), strconv.FormatFloat(float64(y), 'f', -1, 32))
}

// Arrange lays the grid out left to right by dependency.
func (a *App) Arrange(ctx context.Context) error { return a.engine().Ctl(ctx, "arrange") }

// NodeCtl runs start, stop, poweroff or reset on a node.
func (a *App) NodeCtl(ctx context.Context, name, verb string) error {
	return a.engine().NodeCtl(ctx, name, verb)
}

// Toggle starts a stopped (or failed) node and stops a running (or
// starting) one, returning the verb it used.
func (a *App) Toggle(ctx context.Context, name string) (string, error) {
	st, err := a.status(ctx, name)
	if err != nil {
		return "", err
	}
	verb := "start"
	switch st.State {
	case gridfs.StateRunning, gridfs.StateStarting:
		verb = "stop"
	case gridfs.StateStopping:
		return "", fmt.Errorf("%s is already stopping", name)
	}
	return verb, a.NodeCtl(ctx, name, verb)
}

// UpAll starts every node, dependencies first.
func (a *App) UpAll(ctx context.Context) error { return a.engine().Ctl(ctx, "up") }

// DownAll stops every node, dependants first.
func (a *App) DownAll(ctx context.Context) error { return a.engine().Ctl(ctx, "down") }

// AddNode adds a node of kind; name "" picks the next free one, seed ""
// the grid's default seed.
func (a *App) AddNode(ctx context.Context, kind, name, seed string) (string, error) {
	if name == "" {
		g, err := a.engine().Grid(ctx)
		if err != nil {
			return "", err
		}
		name = g.NextName(grid.Kind(kind))
	}
	words := []string{"add", kind, name}
	if seed != "" {
		words = append(words, seed)
	}
	return name, a.engine().Ctl(ctx, words...)
}

// Remove deletes a stopped node, its links and its directory (its disk
// and console log): the engine refuses a node that runs.
func (a *App) Remove(ctx context.Context, name string) error {
	return a.engine().Ctl(ctx, "remove", name)
}

// Ini returns the node's plan9.ini.
func (a *App) Ini(ctx context.Context, name string) ([]byte, error) {
	return a.engine().NodeIni(ctx, name)
}

// Config derives what Gridlord writes to a node (grid.Config) from the
// current grid.
func (a *App) Config(ctx context.Context, name string) (*grid.NodeConfig, error) {
	g, err := a.engine().Grid(ctx)
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
	r := a.engine()
	g, err := r.Grid(ctx)
	if err != nil {
		return err
	}
	n := g.Node(name)
	if n == nil {
		return fmt.Errorf("no node %q", name)
	}
	if p.MemoryMB != n.MemoryMB {
		if err := r.Ctl(ctx, "memory", name, strconv.Itoa(p.MemoryMB)); err != nil {
			return err
		}
	}
	if ip := strings.TrimSpace(p.IP); ip != "" && ip != n.IP.String() {
		if err := r.Ctl(ctx, "ip", name, ip); err != nil {
			return err
		}
	}
	if p.Name != "" && p.Name != name {
		return r.Ctl(ctx, "rename", name, p.Name)
	}
	return nil
}

// OpenConsole attaches to a node's serial console: reads stream its
// output (scrollback first), writes type into it. Closing it never
// affects the VM.
func (a *App) OpenConsole(ctx context.Context, name string) (io.ReadWriteCloser, error) {
	return a.engine().OpenConsole(ctx, name)
}

// Identity is a new host owner, auth domain and password for
// ResetIdentity.
type Identity struct {
	User, AuthDom, Password string
	// FreshDisk first recreates each node's disk from its seed (the
	// engine's "reset"; everything written to the disk is lost).
	FreshDisk bool
	// Keyfs also changes the user in the auth servers' keyfs (typed at
	// their consoles by the engine): the nvram holds only the machine's
	// own key, the users' keys live in the auth server's file system, and
	// logins fail until both agree.
	Keyfs bool
}

// ResetIdentity gives the named nodes (every VM node when names is empty)
// a new host owner, auth domain and password (the old confighelper "r").
// The engine does it all under its node locks, through its write-only
// /identity (ctl lines are logged; this one holds a password): it stops
// the nodes, writes their nvram (making a disk first where there is none)
// and, with Keyfs, changes the auth servers' keyfs. It returns the nodes
// it wrote.
func (a *App) ResetIdentity(ctx context.Context, id Identity, names ...string) ([]string, error) {
	if err := grid.CheckPassword(id.User, id.Password); err != nil {
		return nil, err
	}
	if id.User == "" || id.AuthDom == "" {
		return nil, errors.New("give both a host owner and an auth domain")
	}
	r := a.engine()
	if len(names) == 0 {
		g, err := r.Grid(ctx)
		if err != nil {
			return nil, err
		}
		for _, n := range g.Nodes {
			if n.HasVM() {
				names = append(names, n.Name)
			}
		}
	}
	if id.FreshDisk {
		for _, n := range names {
			if err := r.NodeCtl(ctx, n, "reset"); err != nil {
				return nil, fmt.Errorf("recreate the disk of %s: %w", n, err)
			}
		}
	}
	words := []string{"set", "user=" + id.User, "authdom=" + id.AuthDom, "password=" + id.Password}
	if id.Keyfs {
		words = append(words, "keyfs=yes")
	}
	words = append(words, names...)
	if err := r.Identity(ctx, gridfs.QuoteWords(words)); err != nil {
		return nil, err
	}
	return names, nil
}

// CheckPassword refuses passwords too weak for a host owner's key (see
// grid.CheckPassword, which the engine applies too).
func CheckPassword(user, password string) error { return grid.CheckPassword(user, password) }

// Watch calls changed after every change the engine reports until ctx
// ends: the window's only source of refreshes, so there is no polling. It
// follows switches to another grid's engine. When the engine's event
// stream fails it calls changed once, so the window can show why, and
// subscribes again after a pause that grows to at most 5 seconds.
func (a *App) Watch(ctx context.Context, changed func()) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		swapped := a.swaps.Changed()
		r := a.engine()
		sctx, cancel := context.WithCancel(ctx)
		sub := r.Changes(sctx)
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
		a.log.Warn("engine events", "err", r.Err())
		changed()
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		pause = min(2*pause, 5*time.Second)
	}
}
