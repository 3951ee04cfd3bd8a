package gridfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
)

// ErrInUse is wrapped by Listen's error when a live server already answers
// on the socket.
var ErrInUse = errors.New("engine socket in use")

// CtlError is a ctl command the engine refused. Msg is the engine's message
// (recovered by reading the ctl fid after the failed write) and Errno the
// errno 9P carried.
type CtlError struct {
	// Path is the ctl file written, e.g. "/nodes/cpu1/ctl".
	Path string
	// Line is the command as written.
	Line string
	// Msg is the engine's error text.
	Msg string
	// Errno is the errno the write failed with.
	Errno linux.Errno
}

// Error implements error: "PATH: COMMAND: MESSAGE".
func (e *CtlError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Path, strings.TrimSpace(e.Line), e.Msg)
}

// HidePasswords returns a command line with the value of every
// password= word replaced, for errors and logs: /identity's commands hold
// passwords, and an error is shown in the window and printed.
func HidePasswords(line string) string {
	words, err := ParseCtl([]byte(line))
	if err != nil {
		if strings.Contains(line, "password=") {
			return "(a command holding a password)"
		}
		return line
	}
	hid := false
	for i, w := range words {
		if strings.HasPrefix(w, "password=") {
			words[i], hid = "password=(hidden)", true
		}
	}
	if !hid {
		return line
	}
	return QuoteWords(words)
}

// Unwrap returns the errno.
func (e *CtlError) Unwrap() error { return e.Errno }

// Client talks to an engine's gridfs. All methods are safe for concurrent
// use. Operations whose ctx ends first return ctx.Err(); the request itself
// still completes on the server (a ctl command is not undone).
type Client struct {
	sockPath string
	conn     net.Conn
	c        *p9.Client
	root     p9.File

	evMu      sync.Mutex // one WaitEvent at a time
	ev        p9.File    // /events, opened at Dial
	evPending chan error // outstanding events read, if any

	closeOnce sync.Once
}

// Dial connects to the engine serving gridfs at sockPath (a unix socket, or
// on Windows the file holding the loopback address) and opens /events, so
// WaitEvent sees every change after Dial returns.
func Dial(ctx context.Context, sockPath string) (*Client, error) {
	conn, c, root, err := attach(ctx, sockPath)
	if err != nil {
		return nil, err
	}
	cl := &Client{sockPath: sockPath, conn: conn, c: c, root: root}
	ev, err := cl.open(ctx, "events", p9.ReadOnly)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("gridfs: open events on %s: %w", sockPath, err)
	}
	cl.ev = ev
	return cl, nil
}

// attach dials sockPath, negotiates 9P2000.L and attaches to the root,
// honouring ctx's deadline and cancellation during the handshake.
func attach(ctx context.Context, sockPath string) (net.Conn, *p9.Client, p9.File, error) {
	conn, err := dialAddr(ctx, sockPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("gridfs: connect to engine at %s: %w (is the engine running?)", sockPath, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	c, err := p9.NewClient(conn)
	var root p9.File
	if err == nil {
		root, err = c.Attach("/")
	}
	if !stop() || ctx.Err() != nil {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("gridfs: connect to engine at %s: %w", sockPath, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("gridfs: 9P handshake with %s: %w", sockPath, err)
	}
	return conn, c, root, nil
}

// Close ends the connection; blocked calls return errors.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.conn.Close() })
	return err
}

// do runs fn, returning early with ctx.Err() if ctx ends first.
func do(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// splitPath turns "nodes/cpu1/ctl" or "/nodes/cpu1/ctl" into walk names.
func splitPath(path string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(strings.Trim(path, "/"), "/") {
		if n == "" {
			continue
		}
		if n == "." || n == ".." {
			return nil, fmt.Errorf("gridfs: bad path %q: no . or .. allowed", path)
		}
		names = append(names, n)
	}
	return names, nil
}

// open walks to path from root and opens it with mode.
func (c *Client) open(ctx context.Context, path string, mode p9.OpenFlags) (p9.File, error) {
	names, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	var (
		mu        sync.Mutex // guards f and abandoned
		f         p9.File
		abandoned bool // ctx ended first: the walker closes what it opened
	)
	err = do(ctx, func() error {
		_, wf, err := c.root.Walk(names)
		if err != nil {
			return err
		}
		if _, _, err := wf.Open(mode); err != nil {
			wf.Close()
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			wf.Close()
			return context.Canceled
		}
		f = wf
		return nil
	})
	if err != nil {
		mu.Lock()
		abandoned = true
		if f != nil {
			f.Close()
		}
		mu.Unlock()
		if errors.Is(err, linux.ENOENT) {
			return nil, fmt.Errorf("gridfs: /%s: %w", strings.Join(names, "/"), os.ErrNotExist)
		}
		return nil, fmt.Errorf("gridfs: open /%s: %w", strings.Join(names, "/"), err)
	}
	return f, nil
}

// readAll reads f from offset 0 to EOF.
func readAll(f p9.File) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		n, err := f.ReadAt(buf, int64(out.Len()))
		out.Write(buf[:n])
		if err == io.EOF || (err == nil && n == 0) {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

// ReadFile returns the whole content of the file at path, e.g.
// "grid.json", "nodes/cpu1/status", "venti/stats". A missing file gives an
// error wrapping os.ErrNotExist.
func (c *Client) ReadFile(ctx context.Context, path string) ([]byte, error) {
	f, err := c.open(ctx, path, p9.ReadOnly)
	if err != nil {
		return nil, err
	}
	var b []byte
	err = do(ctx, func() error {
		defer f.Close()
		var err error
		b, err = readAll(f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gridfs: read %s: %w", path, err)
	}
	return b, nil
}

// ReadDir lists the directory at path, e.g. "nodes" (in grid order) or
// "nodes/cpu1".
func (c *Client) ReadDir(ctx context.Context, path string) ([]string, error) {
	d, err := c.open(ctx, path, p9.ReadOnly)
	if err != nil {
		return nil, err
	}
	var names []string
	err = do(ctx, func() error {
		defer d.Close()
		var off uint64
		for {
			ds, err := d.Readdir(off, 64<<10)
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				return nil
			}
			for _, de := range ds {
				names = append(names, de.Name)
				off = de.Offset
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("gridfs: list %s: %w", path, err)
	}
	return names, nil
}

// Ctl writes one grid command (e.g. "up", "wire cpu1 fossil1") to /ctl.
// A refused command gives a *CtlError carrying the engine's message.
func (c *Client) Ctl(ctx context.Context, line string) error {
	return c.ctl(ctx, "ctl", line)
}

// Identity writes one command to /identity (see IdentityVerbs); a refused
// command gives a *CtlError.
func (c *Client) Identity(ctx context.Context, line string) error {
	return c.ctl(ctx, "identity", line)
}

// NodeCtl writes one command (e.g. "start") to /nodes/NODE/ctl. A missing
// node gives an error wrapping os.ErrNotExist; a refused command a *CtlError.
func (c *Client) NodeCtl(ctx context.Context, node, line string) error {
	if err := checkNodeName(node); err != nil {
		return err
	}
	return c.ctl(ctx, "nodes/"+node+"/ctl", line)
}

func checkNodeName(node string) error {
	if node == "" || node == "." || node == ".." || strings.ContainsAny(node, "/\x00") {
		return fmt.Errorf("gridfs: bad node name %q: a node name is not empty, \".\" or \"..\" and has no '/' or NUL", node)
	}
	return nil
}

// ctl writes line to the ctl file at path and, if the write fails, reads
// the same fid to get the engine's message (see the package comment).
//
// Under a Cancellable ctx the command is attached (AttachedWord) to a
// connection of its own, closed when ctx ends: the engine then cancels it.
func (c *Client) ctl(ctx context.Context, path, line string) error {
	if IsCancellable(ctx) && c.root != nil {
		return c.attachedCtl(ctx, path, line)
	}
	f, err := c.open(ctx, path, p9.ReadWrite)
	if err != nil {
		return err
	}
	return do(ctx, func() error {
		defer f.Close()
		_, werr := f.WriteAt([]byte(line), 0)
		if werr == nil {
			return nil
		}
		ce := &CtlError{Path: "/" + path, Line: HidePasswords(line), Msg: werr.Error()}
		if !errors.As(werr, &ce.Errno) {
			return fmt.Errorf("gridfs: write /%s: %w", path, werr)
		}
		if b, rerr := readAll(f); rerr == nil {
			if msg, ok := strings.CutPrefix(string(b), "error: "); ok {
				ce.Msg = strings.TrimSpace(msg)
			}
		}
		return ce
	})
}

// OpenCons opens node's console on a connection of its own: reads stream
// console output (the recent scrollback first) and block until more
// arrives; writes type into the VM. Close ends the stream, also unblocking
// a pending Read. A node without a console gives an error naming its status.
func (c *Client) OpenCons(ctx context.Context, node string) (io.ReadWriteCloser, error) {
	if err := checkNodeName(node); err != nil {
		return nil, err
	}
	conn, pc, root, err := attach(ctx, c.sockPath)
	if err != nil {
		return nil, err
	}
	sub := &Client{sockPath: c.sockPath, conn: conn, c: pc, root: root}
	f, err := sub.open(ctx, "nodes/"+node+"/cons", p9.ReadWrite)
	if err != nil {
		sub.Close()
		if errors.Is(err, linux.ENXIO) {
			st, serr := c.ReadFile(ctx, "nodes/"+node+"/status")
			if serr == nil {
				return nil, fmt.Errorf("gridfs: node %s has no console (status: %s)", node, strings.TrimSpace(string(st)))
			}
			return nil, fmt.Errorf("gridfs: node %s has no console", node)
		}
		return nil, err
	}
	return &consConn{cl: sub, f: f}, nil
}

// consConn is an open cons file on its own connection.
type consConn struct {
	cl     *Client
	f      p9.File
	mu     sync.Mutex
	closed bool
}

// Read implements io.Reader; it returns io.EOF when the console hub closes
// or after Close.
func (c *consConn) Read(p []byte) (int, error) {
	n, err := c.f.ReadAt(p, 0)
	if err != nil && c.isClosed() {
		return n, io.EOF
	}
	return n, err
}

// Write implements io.Writer.
func (c *consConn) Write(p []byte) (int, error) {
	n, err := c.f.WriteAt(p, 0)
	if err != nil {
		if c.isClosed() {
			return n, os.ErrClosed
		}
		if errors.Is(err, linux.ENOTCONN) {
			return n, fmt.Errorf("gridfs: console is not connected to a VM: %w", err)
		}
		return n, fmt.Errorf("gridfs: write console: %w", err)
	}
	return n, nil
}

func (c *consConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close implements io.Closer by closing the console's connection.
func (c *consConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.cl.Close()
}

// WaitEvent blocks until the grid has changed since the previous WaitEvent
// returned nil (or since Dial). If ctx ends first it returns ctx.Err(); the
// read stays pending and the next WaitEvent picks up its result, so no
// change is lost.
func (c *Client) WaitEvent(ctx context.Context) error {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.evPending == nil {
		ch := make(chan error, 1)
		go func() {
			buf := make([]byte, 64)
			n, err := c.ev.ReadAt(buf, 0)
			if err == nil && !bytes.HasPrefix(buf[:n], []byte("changed ")) {
				err = fmt.Errorf("gridfs: unexpected events line %q", buf[:n])
			}
			ch <- err
		}()
		c.evPending = ch
	}
	select {
	case err := <-c.evPending:
		c.evPending = nil
		if err != nil {
			return fmt.Errorf("gridfs: wait for event: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OpenLog opens the engine's event log (/log) on a connection of its own:
// reads return the events kept (see Event), then block until the next;
// Close ends the stream, also unblocking a pending Read.
func (c *Client) OpenLog(ctx context.Context) (io.ReadCloser, error) {
	conn, pc, root, err := attach(ctx, c.sockPath)
	if err != nil {
		return nil, err
	}
	sub := &Client{sockPath: c.sockPath, conn: conn, c: pc, root: root}
	f, err := sub.open(ctx, "log", p9.ReadOnly)
	if err != nil {
		sub.Close()
		return nil, fmt.Errorf("gridfs: open the event log: %w", err)
	}
	return &consConn{cl: sub, f: f}, nil
}

// attachedCtl writes AttachedWord and line to the ctl file at path on a
// connection of its own, which it closes when ctx ends: the engine cancels
// the command then.
func (c *Client) attachedCtl(ctx context.Context, path, line string) error {
	conn, pc, root, err := attach(ctx, c.sockPath)
	if err != nil {
		return err
	}
	sub := &Client{sockPath: c.sockPath, conn: conn, c: pc, root: root}
	defer sub.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	err = sub.ctl(context.WithoutCancel(context.WithValue(ctx, cancellableKey{}, false)), path, AttachedWord+" "+line)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ce, ok := err.(*CtlError); ok {
		ce.Line = HidePasswords(line)
	}
	return err
}
