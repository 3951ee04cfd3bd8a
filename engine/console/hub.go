// Package console holds the engine's single connection to each VM's serial
// port and fans it out to any number of readers and writers, in the spirit
// of Plan 9's hubfs: the GUI, a CLI attach and later the 9P file tree all
// see the same byte stream and may all type into it.
//
// A Hub keeps a bounded scrollback and an on-disk log (size-bounded and
// rotated), so boot output is never lost because nobody was looking.
// Readers have bounded buffers: one that falls behind loses its oldest
// unread bytes (counted in Dropped) and never stalls the VM or the other
// readers.
//
// Locking: Hub.mu guards the connection, the scrollback, the log and the
// reader set; each Reader has its own mutex for its buffer. The pump
// goroutine takes Hub.mu, then each Reader's mutex, never the reverse.
package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// ErrNotConnected is returned by Write when no serial connection is attached.
var ErrNotConnected = errors.New("console not connected")

// ErrClosed is returned after the Hub is closed.
var ErrClosed = errors.New("console hub closed")

// Options configures a Hub. Zero fields take the defaults shown.
type Options struct {
	// LogPath is the on-disk log; empty disables it.
	LogPath string
	// LogMaxBytes is the size at which the log is rotated (default 1 MiB).
	LogMaxBytes int64
	// LogKeep is how many rotated logs (LogPath.1 ... LogPath.N) are kept (default 3).
	LogKeep int
	// Scrollback is how many recent bytes the hub remembers (default 64 KiB).
	Scrollback int
	// ReaderBuffer is each reader's unread-byte limit (default 256 KiB).
	ReaderBuffer int
	// Log receives the hub's own diagnostics; nil discards them.
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = 1 << 20
	}
	if o.LogKeep <= 0 {
		o.LogKeep = 3
	}
	if o.Scrollback <= 0 {
		o.Scrollback = 64 << 10
	}
	if o.ReaderBuffer <= 0 {
		o.ReaderBuffer = 256 << 10
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Hub fans one serial connection out to many readers and writers. All
// methods are safe for concurrent use.
type Hub struct {
	name string
	opts Options

	mu         sync.Mutex
	conn       io.ReadWriteCloser // nil when detached
	gen        int                // bumped on every Attach
	scroll     []byte
	log        *rotLog
	logFailed  bool
	readers    map[*Reader]struct{}
	closed     bool
	wmu        sync.Mutex // serializes writes to conn
	totalBytes int64
}

// New returns a hub for the console of the VM called name. It opens (or
// appends to) the log file when Options.LogPath is set.
func New(name string, opts Options) (*Hub, error) {
	opts.defaults()
	h := &Hub{name: name, opts: opts, readers: make(map[*Reader]struct{})}
	if opts.LogPath != "" {
		l, err := openRotLog(opts.LogPath, opts.LogMaxBytes, opts.LogKeep)
		if err != nil {
			return nil, fmt.Errorf("console %s: %w", name, err)
		}
		h.log = l
	}
	return h, nil
}

// Attach makes conn the hub's serial connection, closing any previous one,
// and starts copying from it. The returned channel is closed when conn
// reaches EOF or fails (for example because QEMU exited); the hub then stays
// usable and keeps its readers, waiting for the next Attach.
func (h *Hub) Attach(conn io.ReadWriteCloser) <-chan struct{} {
	done := make(chan struct{})
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		conn.Close()
		close(done)
		return done
	}
	if h.conn != nil {
		h.conn.Close()
	}
	h.conn = conn
	h.gen++
	gen := h.gen
	h.mu.Unlock()
	go h.pump(conn, gen, done)
	return done
}

// Detach closes the current serial connection, if any, keeping the readers.
func (h *Hub) Detach() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
}

// Connected reports whether a serial connection is attached.
func (h *Hub) Connected() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conn != nil
}

func (h *Hub) pump(conn io.ReadWriteCloser, gen int, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			h.publish(buf[:n])
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				h.opts.Log.Debug("console read ended", "console", h.name, "err", err)
			}
			break
		}
	}
	h.mu.Lock()
	if h.gen == gen && h.conn == conn {
		h.conn = nil
	}
	h.mu.Unlock()
	conn.Close()
}

// publish hands bytes read from the VM to the scrollback, log and readers.
func (h *Hub) publish(p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return // the log is closed and the readers ended
	}
	h.totalBytes += int64(len(p))
	h.scroll = appendBounded(h.scroll, p, h.opts.Scrollback)
	if h.log != nil && !h.logFailed {
		if err := h.log.Write(p); err != nil {
			h.logFailed = true
			h.opts.Log.Error("console log write failed; logging stops", "console", h.name, "err", err)
		}
	}
	for r := range h.readers {
		r.push(p)
	}
}

// appendBounded appends p to b keeping only the last max bytes.
func appendBounded(b, p []byte, max int) []byte {
	if len(p) >= max {
		return append(b[:0], p[len(p)-max:]...)
	}
	if over := len(b) + len(p) - max; over > 0 {
		b = append(b[:0], b[over:]...)
	}
	return append(b, p...)
}

// Write sends p to the VM's serial port. Concurrent writers are serialized
// so their writes do not interleave within one call.
func (h *Hub) Write(p []byte) (int, error) {
	h.mu.Lock()
	conn, closed := h.conn, h.closed
	h.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	if conn == nil {
		return 0, fmt.Errorf("console %s: %w", h.name, ErrNotConnected)
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	n, err := conn.Write(p)
	if err != nil {
		return n, fmt.Errorf("console %s: write: %w", h.name, err)
	}
	return n, nil
}

// Scrollback returns a copy of the most recent console output.
func (h *Hub) Scrollback() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]byte(nil), h.scroll...)
}

// BytesSeen is the number of bytes read from the VM since the hub was made.
func (h *Hub) BytesSeen() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.totalBytes
}

// LastLines returns up to n of the last non-empty lines in the scrollback,
// with carriage returns removed.
func (h *Hub) LastLines(n int) []string {
	return lastLines(h.Scrollback(), n)
}

func lastLines(b []byte, n int) []string {
	var out []string
	for _, l := range strings.Split(string(bytes.ReplaceAll(b, []byte("\r"), nil)), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Subscribe returns a new Reader of the console output. With scrollback
// set, the reader first gets the remembered recent output. The caller must
// Close the reader.
func (h *Hub) Subscribe(scrollback bool) *Reader {
	r := &Reader{hub: h, max: h.opts.ReaderBuffer, notify: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		r.closed = true
		return r
	}
	if scrollback {
		r.push(h.scroll)
	}
	h.readers[r] = struct{}{}
	return r
}

// Close detaches the connection, ends every reader (they return io.EOF
// after their buffered bytes) and closes the log. It is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
	for r := range h.readers {
		r.end()
	}
	h.readers = nil
	if h.log != nil {
		return h.log.Close()
	}
	return nil
}

// Reader is one subscriber's view of the console output. Its buffer is
// bounded: when it is full the oldest unread bytes are dropped.
type Reader struct {
	hub    *Hub
	mu     sync.Mutex
	buf    []byte
	max    int
	drop   int64
	closed bool
	notify chan struct{}
}

func (r *Reader) push(p []byte) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	if !r.closed {
		before := len(r.buf) + len(p)
		r.buf = appendBounded(r.buf, p, r.max)
		r.drop += int64(before - len(r.buf))
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *Reader) end() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Read reads console output, blocking until some is available. It returns
// io.EOF once the reader or hub is closed and the buffer is drained.
func (r *Reader) Read(p []byte) (int, error) {
	return r.ReadContext(context.Background(), p)
}

// ReadContext is Read that also returns ctx.Err() when ctx ends first.
func (r *Reader) ReadContext(ctx context.Context, p []byte) (int, error) {
	for {
		r.mu.Lock()
		if len(r.buf) > 0 {
			n := copy(p, r.buf)
			r.buf = r.buf[n:]
			r.mu.Unlock()
			return n, nil
		}
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Dropped is the number of bytes this reader lost by falling behind.
func (r *Reader) Dropped() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drop
}

// Close unsubscribes the reader; pending Reads return io.EOF.
func (r *Reader) Close() error {
	r.hub.mu.Lock()
	if r.hub.readers != nil {
		delete(r.hub.readers, r)
	}
	r.hub.mu.Unlock()
	r.mu.Lock()
	r.buf = nil
	r.mu.Unlock()
	r.end()
	return nil
}
