package gridfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/hugelgupf/p9/p9"
)

// Option configures New.
type Option func(*fsys)

// WithContext sets the context the file tree lives in: ctl commands run
// under it (not under the client's connection, so a command keeps going
// when the client that wrote it goes away), and blocking reads of cons and
// events end when it is done. The default is context.Background().
func WithContext(ctx context.Context) Option {
	return func(f *fsys) { f.ctx = ctx }
}

// WithLogger sets the logger for ctl commands and failures (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(f *fsys) {
		if l != nil {
			f.log = l
		}
	}
}

// WithVerbs adds or replaces ctl verbs: grid ones for /ctl and node ones for
// /nodes/NAME/ctl (GridVerbs and NodeVerbs are the defaults).
func WithVerbs(grid, node []Verb) Option {
	return func(f *fsys) {
		for _, v := range grid {
			f.gridVerbs[v.Name] = v
		}
		for _, v := range node {
			f.nodeVerbs[v.Name] = v
		}
	}
}

// fsys is the state shared by every connection to one file tree.
type fsys struct {
	e          Engine
	ctx        context.Context
	log        *slog.Logger
	gridVerbs  verbTable
	nodeVerbs  verbTable
	identVerbs verbTable
	events     *notifier
	lastErr    lastErrors
}

func newFsys(e Engine, opts ...Option) *fsys {
	f := &fsys{
		e:          e,
		ctx:        context.Background(),
		log:        slog.New(slog.DiscardHandler),
		gridVerbs:  newVerbTable(GridVerbs()),
		nodeVerbs:  newVerbTable(NodeVerbs()),
		identVerbs: newVerbTable(IdentityVerbs()),
		events:     &notifier{e: e},
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// New returns the grid's file tree as a p9.Attacher, for p9.NewServer.
// Blocking reads (cons, events) on a tree made by New end only when they
// are satisfied or WithContext's context ends, and hugelgupf/p9 waits for
// them before it releases a closed connection; Serve instead ends them as
// soon as their client disconnects, so prefer Serve.
func New(e Engine, opts ...Option) p9.Attacher {
	f := newFsys(e, opts...)
	return &attacher{fs: f, conn: f.ctx}
}

// attacher hands out the root of the tree for one connection; conn ends
// when that connection does.
type attacher struct {
	fs   *fsys
	conn context.Context
}

// Attach implements p9.Attacher.
func (a *attacher) Attach() (p9.File, error) {
	return newRoot(a), nil
}

// Serve serves the tree of e on ln until ctx is done, then closes ln and
// every connection and returns nil once all handlers have finished. Each
// connection gets its own p9.Server, and its blocking reads end (releasing
// their console readers) when the client disconnects. Other accept errors
// are returned. opts (e.g. WithVerbs) configure the tree as for New.
func Serve(ctx context.Context, ln net.Listener, e Engine, log *slog.Logger, opts ...Option) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := newFsys(e, append([]Option{WithContext(ctx), WithLogger(log)}, opts...)...)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
	)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	defer func() {
		cancel()
		<-stopped
		wg.Wait()
	}()

	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("gridfs: accept on %s: %w", ln.Addr(), err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			connCtx, connCancel := context.WithCancel(ctx)
			srv := p9.NewServer(&attacher{fs: f, conn: connCtx}, p9.WithServerLogger(ulogAdapter{log}))
			log.Debug("gridfs client connected", "remote", c.RemoteAddr())
			srv.Handle(&hangupReader{r: c, hangup: connCancel}, c)
			connCancel()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
			log.Debug("gridfs client gone", "remote", c.RemoteAddr())
		}()
	}
}

// hangupReader calls hangup when the connection's read side fails (the
// client went away), so blocked file reads on it can end and the p9 server,
// which waits for in-flight requests, can release the connection.
type hangupReader struct {
	r      io.ReadCloser
	hangup context.CancelFunc
}

func (h *hangupReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err != nil {
		h.hangup()
	}
	return n, err
}

func (h *hangupReader) Close() error { return h.r.Close() }

// ulogAdapter sends hugelgupf/p9's printf-style logging to slog at debug level.
type ulogAdapter struct{ l *slog.Logger }

func (u ulogAdapter) Printf(format string, v ...any) {
	u.l.Debug("p9: " + fmt.Sprintf(format, v...))
}

// notifier turns Engine.Changed into a sequence number that events readers
// compare against their cursor. It needs no goroutine: whoever observes the
// current channel closed advances the sequence.
type notifier struct {
	e  Engine
	mu sync.Mutex
	ch <-chan struct{}
	n  uint64
}

// current returns the sequence number after accounting for any change that
// has already happened, and the channel that closes at the next one.
func (n *notifier) current() (uint64, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		if n.ch == nil {
			n.ch = n.e.Changed()
		}
		select {
		case <-n.ch:
			n.n++
			n.ch = n.e.Changed()
			continue
		default:
		}
		return n.n, n.ch
	}
}

// wait blocks until the sequence number exceeds after and returns it.
func (n *notifier) wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		seq, ch := n.current()
		if seq > after {
			return seq, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// lastErrors remembers the most recent failure of each ctl file, shown to
// readers that did not write the failed command (e.g. a shell on a kernel
// mount, whose echo and cat use different fids).
type lastErrors struct {
	mu sync.Mutex
	m  map[string]string
}

func (l *lastErrors) set(path, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]string)
	}
	if msg == "" {
		delete(l.m, path)
		return
	}
	l.m[path] = msg
}

func (l *lastErrors) get(path string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[path]
}

// errContextDone reports whether err came from a finished context.
func errContextDone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
