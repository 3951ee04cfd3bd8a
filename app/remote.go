package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gridlord/engine/drawterm"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// Remote is the window's connection to the grid's engine: a gridfs client
// on the engine's socket (GRIDDIR/engine.sock, grid.SocketName). Every
// command is a ctl write, every snapshot a file read, and changes arrive by
// reading /events. Its methods are safe for concurrent use.
type Remote struct {
	dir string
	c   *gridfs.Client

	// One goroutine reads /events (the client allows one reader) and
	// fans each change out to every subscriber of Changes.
	pumpOnce sync.Once
	stop     context.CancelFunc
	notes    Notifier
	errMu    sync.Mutex
	err      error // why the event stream ended, if it did

	// EnginePID is the process id of the engine daemon Connect started (or
	// that a concurrent start put in its place), 0 when it attached to one
	// already running.
	EnginePID int
}

// DialRemote connects to the engine daemon serving the grid in dir.
func DialRemote(ctx context.Context, dir string) (*Remote, error) {
	c, err := gridfs.Dial(ctx, filepath.Join(dir, grid.SocketName))
	if err != nil {
		return nil, err
	}
	return &Remote{dir: dir, c: c, stop: func() {}}, nil
}

// Close closes the connection; the daemon and its VMs keep running.
func (r *Remote) Close() error {
	r.pumpOnce.Do(func() {}) // no pump may start after Close
	r.stop()
	return r.c.Close()
}

// GridDir is the grid's directory on this machine.
func (r *Remote) GridDir() string { return r.dir }

// Grid returns a private copy of the grid model: /grid.json, parsed.
func (r *Remote) Grid(ctx context.Context) (*grid.Grid, error) {
	b, err := r.c.ReadFile(ctx, "grid.json")
	if err != nil {
		return nil, err
	}
	return grid.Parse(filepath.Join(r.dir, grid.FileName)+" (from the engine)", b)
}

// NodeStatus is a node's status line (gridfs.ParseNodeStatus reads it).
func (r *Remote) NodeStatus(ctx context.Context, node string) (string, error) {
	b, err := r.c.ReadFile(ctx, "nodes/"+node+"/status")
	return strings.TrimSpace(string(b)), err
}

// Ctl runs one grid command (gridfs.GridVerbs).
func (r *Remote) Ctl(ctx context.Context, words ...string) error {
	return r.c.Ctl(ctx, gridfs.QuoteWords(words))
}

// NodeCtl runs one node command (gridfs.NodeVerbs).
func (r *Remote) NodeCtl(ctx context.Context, node string, words ...string) error {
	return r.c.NodeCtl(ctx, node, gridfs.QuoteWords(words))
}

// NodeIni is the node's plan9.ini: from its disk, or the one it will get.
func (r *Remote) NodeIni(ctx context.Context, node string) ([]byte, error) {
	return r.c.ReadFile(ctx, "nodes/"+node+"/ini")
}

// Identity writes one command to the engine's /identity
// (gridfs.IdentityVerbs).
func (r *Remote) Identity(ctx context.Context, line string) error { return r.c.Identity(ctx, line) }

// Drawterm says how drawterm reaches a running node (the engine's
// /nodes/NAME/drawterm, made from the grid's auth server and the node's
// forwards).
func (r *Remote) Drawterm(ctx context.Context, node string) (drawterm.Target, error) {
	b, err := r.c.ReadFile(ctx, "nodes/"+node+"/drawterm")
	if err != nil {
		return drawterm.Target{}, err
	}
	t, err := drawterm.ParseTarget(b)
	if err != nil {
		return t, fmt.Errorf("node %s: %w", node, err)
	}
	return t, nil
}

// OpenConsole attaches to a node's serial console.
func (r *Remote) OpenConsole(ctx context.Context, node string) (io.ReadWriteCloser, error) {
	return r.c.OpenCons(ctx, node)
}

// Changes subscribes to changes of the grid and of node states: the
// channel receives after every change from now on (changes that come while
// the receiver is busy merge into one). It is closed when ctx ends or the
// engine's event stream fails (see Err). Any number of subscribers may
// listen; one goroutine reads /events for all of them.
func (r *Remote) Changes(ctx context.Context) <-chan struct{} {
	r.pumpOnce.Do(func() {
		pctx, cancel := context.WithCancel(context.Background())
		r.stop = cancel
		go r.pump(pctx)
	})
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan struct{}, 1)
	in := r.notes.Subscribe(ctx)
	go func() {
		defer close(out)
		defer cancel()
		for range in {
			if r.Err() != nil {
				return
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// Err is why the event stream failed, nil while it works.
func (r *Remote) Err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

// pump reads /events until it fails, announcing each change; a failure is
// kept for Err and announced too, which ends every subscription.
func (r *Remote) pump(ctx context.Context) {
	for {
		err := r.c.WaitEvent(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.errMu.Lock()
				r.err = fmt.Errorf("engine events: %w", err)
				r.errMu.Unlock()
				r.notes.Notify()
			}
			return
		}
		r.notes.Notify()
	}
}

// Venti returns the venti's statistics: /venti/stats parsed.
func (r *Remote) Venti(ctx context.Context) (VentiStatus, error) {
	b, err := r.c.ReadFile(ctx, "venti/stats")
	if err != nil {
		return VentiStatus{}, err
	}
	return ParseVentiStats(b), nil
}

// ParseVentiStats reads the engine's "key value" statistics lines. Unknown
// keys are ignored; the names of store.Stats fields are accepted in any
// case, as are the short forms blocks, bytes/stored and written.
func ParseVentiStats(b []byte) VentiStatus {
	var v VentiStatus
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		n, _ := strconv.ParseInt(val, 10, 64)
		switch strings.ToLower(strings.ReplaceAll(key, "_", "")) {
		case "addr", "address":
			v.Addr = val
		case "blocks":
			v.Blocks = n
		case "storedbytes", "stored", "bytes":
			v.StoredBytes = n
		case "clientbytes", "written", "writtenbytes":
			v.WrittenBytes = n
		case "error", "err":
			v.Err = val
		}
	}
	return v
}

// ConnectOptions configure Connect.
type ConnectOptions struct {
	// GridDir is the grid the engine serves.
	GridDir string
	// Engine is the gridlord executable to start "gridlord engine -grid DIR"
	// with when no engine answers; "" starts none.
	Engine string
	// EngineArgs are extra arguments for that command.
	EngineArgs []string
	// Wait is how long to wait for a started engine to answer (default 60s).
	Wait time.Duration
	// Logger receives progress (default: discarded).
	Logger *slog.Logger
}

// Connect attaches to the engine daemon serving opts.GridDir, first
// starting one detached (it outlives this process, as VMs must) when none
// answers and opts.Engine is set. Its output goes to GridDir/engine.log.
func Connect(ctx context.Context, opts ConnectOptions) (*Remote, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := DialRemote(ctx, opts.GridDir)
	if err == nil || opts.Engine == "" {
		return r, err
	}
	if err := os.MkdirAll(opts.GridDir, 0o755); err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	c, pid, err := gridfs.Spawn(ctx, opts.GridDir, gridfs.SpawnOptions{Exe: opts.Engine, Args: opts.EngineArgs, Wait: opts.Wait, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return &Remote{dir: opts.GridDir, c: c, stop: func() {}, EnginePID: pid}, nil
}
