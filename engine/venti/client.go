package venti

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClientClosed is returned by calls on a Client after Close.
var ErrClientClosed = errors.New("venti client closed")

// ServerError is an Rerror reply; Text is the server's message. A "no block
// with score ... exists" error matches ErrNotFound with errors.Is.
type ServerError struct {
	Text string
}

// Error returns the server's text.
func (e *ServerError) Error() string { return "venti server: " + e.Text }

// Is makes a p9p "no block" error match ErrNotFound, and a server's
// report of a corrupt block match ErrCorrupt.
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return strings.HasPrefix(e.Text, "no block with score ")
	case ErrCorrupt:
		return strings.Contains(e.Text, ErrCorrupt.Error())
	}
	return false
}

// clientOptions are set by ClientOption.
type clientOptions struct {
	versions    []string
	serial      bool
	uid         string
	dialTimeout time.Duration
}

// ClientOption configures a Client.
type ClientOption func(*clientOptions)

// WithVersions restricts and orders the protocol versions the client
// offers (default "04", "02", as plan9port). Unknown versions make Dial and
// NewClient fail.
func WithVersions(versions ...string) ClientOption {
	return func(o *clientOptions) { o.versions = append([]string(nil), versions...) }
}

// WithSerialTag0 makes the client send every request with tag 0 and wait
// for its reply before sending the next, as Bell Labs liboventi clients
// (old fossil, old vac) do.
func WithSerialTag0() ClientOption { return func(o *clientOptions) { o.serial = true } }

// WithUID sets the uid sent in Thello (default "anonymous").
func WithUID(uid string) ClientOption { return func(o *clientOptions) { o.uid = uid } }

// WithDialTimeout bounds Dial's connect and handshake when the context
// has no deadline of its own (default 30 seconds).
func WithDialTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.dialTimeout = d }
}

// Client is a venti protocol client. It implements Store; concurrent calls
// are multiplexed over one connection with up to 256 requests in flight,
// and replies are matched by tag in any order. After a connection failure
// every call returns an error; a Client never reconnects.
type Client struct {
	conn    net.Conn
	version string
	sizeLen int
	br      *bufio.Reader
	addr    string

	out *connWriter // requests, after the handshake

	tags  chan uint8 // free tags
	calls [256]call

	errMu      sync.Mutex
	err        error         // why the connection died
	dead       chan struct{} // closed when the connection is unusable
	readerDone chan struct{}
	closing    atomic.Bool // Close has begun
	closeOnce  sync.Once
	closeErr   error
}

// callState is the life cycle of a tag.
type callState uint8

const (
	callIdle      callState = iota // tag is free
	callWaiting                    // request sent, caller waiting
	callReplied                    // reply handed over, caller not yet woken
	callAbandoned                  // caller gave up; drop the reply and free the tag
)

// call is the slot of one tag.
type call struct {
	mu    sync.Mutex
	state callState
	want  MsgType       // request type; the reply must be want+1 or Rerror
	count int           // Tread count: the most data the reply may carry
	dst   []byte        // Tread: the caller's buffer for the data, if it fits
	rep   Message       // the reply, valid after a receive on ch
	ch    chan struct{} // signalled (under mu) when rep is set

	// An asynchronous call (ReadAsync, WriteAsync) is completed by the
	// reader, which calls one of these instead of signalling ch.
	onRead  func([]byte, error)
	onWrite func(error)
	score   Score  // the score read, or the one the written data hashes to
	btype   Type   // the block type, for errors
	gen     uint32 // advanced each time an asynchronous call completes
	noCheck bool   // ReadAsyncUnchecked: the caller checks the data's SHA-1
}

// AsyncWriter is a Writer that can also pipeline writes: the caller queues
// them without waiting and learns of each one's outcome by a callback.
// Client implements it.
type AsyncWriter interface {
	Writer
	// WriteAsync queues the write of data as a block of type t whose
	// score the caller has computed as s, and returns once the request is
	// queued; data may be reused then. Unless WriteAsync returns an
	// error, done is called exactly once, from a goroutine of the
	// implementation, with nil once the store has the block under score s,
	// else an error; done must not block or call the writer. Empty data
	// completes at once (s must be ZeroScore).
	WriteAsync(ctx context.Context, t Type, data []byte, s Score, done func(error)) error
}

// AsyncReader is a Reader that can also pipeline reads. Client implements
// it.
type AsyncReader interface {
	Reader
	// ReadAsync queues the read of the block with score s and type t (at
	// most maxBytes) and returns once the request is queued. Unless
	// ReadAsync returns an error, done is called exactly once, from a
	// goroutine of the implementation, with the block's bytes, checked
	// to hash to s and read into buf when they fit in cap(buf), or with an
	// error; done must not block or call the reader. buf must not be
	// touched until done is called. ZeroScore completes at once.
	ReadAsync(ctx context.Context, s Score, t Type, maxBytes int, buf []byte, done func([]byte, error)) error
}

// UncheckedAsyncReader is an AsyncReader that can leave the SHA-1 check
// of the blocks it reads to the caller. Client implements it.
type UncheckedAsyncReader interface {
	AsyncReader
	// ReadAsyncUnchecked is ReadAsync, except that the bytes given to
	// done have not been checked against s: the caller must check them
	// (CheckRead) before it trusts them. A Client's connection has one
	// reader goroutine, which otherwise hashes every block it receives;
	// a caller that checks the blocks itself, on a goroutine of its own,
	// lets the hashing run in parallel with the reading.
	ReadAsyncUnchecked(ctx context.Context, s Score, t Type, maxBytes int, buf []byte, done func([]byte, error)) error
}

// RefAsyncWriter is an AsyncWriter that can also send a block from the
// caller's buffer without copying it. Client implements it.
type RefAsyncWriter interface {
	AsyncWriter
	// WriteAsyncRef is WriteAsync, except that data is sent from where
	// it lies, without a copy: it must not change until release has been
	// called. release is called exactly once, when data is no longer
	// needed: once it has been sent, when WriteAsyncRef fails, or when a
	// failed connection drops it unsent (at the latest by Close). It must
	// not block or call the writer.
	WriteAsyncRef(ctx context.Context, t Type, data []byte, s Score, done func(error), release func()) error
}

var (
	_ RefAsyncWriter       = (*Client)(nil)
	_ AsyncWriter          = (*Client)(nil)
	_ AsyncReader          = (*Client)(nil)
	_ UncheckedAsyncReader = (*Client)(nil)
)

// Dial connects to the venti at addr and performs the version exchange and
// hello. addr is "host:port", "host", or a Plan 9 dial string
// "tcp!host!port" ("venti" names port 17034); a missing port means 17034.
// ctx bounds connecting and the handshake; without a deadline a default
// dial timeout applies.
func Dial(ctx context.Context, addr string, opts ...ClientOption) (*Client, error) {
	o := newClientOptions(opts)
	hostport, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok && o.dialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.dialTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("venti dial %s: %w", addr, err)
	}
	c, err := NewClient(ctx, conn, opts...)
	if err != nil {
		return nil, fmt.Errorf("venti dial %s: %w", addr, err)
	}
	return c, nil
}

// ParseAddr turns a venti address into a "host:port" for net.Dial. It
// accepts "host:port", "host", "[v6addr]:port", and Plan 9 dial strings
// "tcp!host!port", "net!host!port", "tcp!host"; the port "venti" and a
// missing port mean 17034.
func ParseAddr(addr string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("venti address %q: %s (want host:port or tcp!host!port)", addr, why)
	}
	if addr == "" {
		return bad("empty")
	}
	host, port := addr, ""
	if strings.Contains(addr, "!") {
		f := strings.Split(addr, "!")
		switch {
		case len(f) == 3:
			if f[0] != "tcp" && f[0] != "net" {
				return bad("network " + f[0] + " is not tcp")
			}
			host, port = f[1], f[2]
		case len(f) == 2 && (f[0] == "tcp" || f[0] == "net"):
			host = f[1]
		case len(f) == 2:
			host, port = f[0], f[1]
		default:
			return bad("too many ! fields")
		}
	} else if h, p, err := net.SplitHostPort(addr); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
		host = addr[1 : len(addr)-1]
	} else if strings.Count(addr, ":") > 1 && net.ParseIP(addr) != nil {
		host = addr // bare IPv6 address
	} else if strings.Contains(addr, ":") {
		return bad(err.Error())
	}
	switch port {
	case "", "venti":
		port = strconv.Itoa(DefaultPort)
	default:
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return bad("port " + port + " is not a number 1..65535")
		}
	}
	if host == "*" {
		return bad("host * is not dialable")
	}
	return net.JoinHostPort(host, port), nil
}

func newClientOptions(opts []ClientOption) clientOptions {
	o := clientOptions{
		versions:    []string{Version04, Version02},
		uid:         "anonymous",
		dialTimeout: 30 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// NewClient performs the version exchange and hello over c and returns a
// client using it. The client owns c from then on; c is closed if the
// handshake fails. ctx bounds the handshake only.
func NewClient(ctx context.Context, c net.Conn, opts ...ClientOption) (*Client, error) {
	o := newClientOptions(opts)
	cl, err := newClient(ctx, c, o)
	if err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

func newClient(ctx context.Context, c net.Conn, o clientOptions) (*Client, error) {
	if len(o.versions) == 0 {
		return nil, errors.New("venti client: no protocol versions to offer")
	}
	for _, v := range o.versions {
		if _, err := frameSizeLen(v); err != nil || strings.ContainsAny(v, ":-") {
			return nil, fmt.Errorf("venti client: cannot offer version %q: want %q or %q", v, Version04, Version02)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		if err := c.SetDeadline(d); err != nil {
			return nil, fmt.Errorf("venti handshake: set deadline: %w", err)
		}
	}
	// A cancelled context unblocks the handshake's reads and writes.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	cl := &Client{
		conn:       c,
		br:         bufio.NewReaderSize(c, ioBufSize),
		addr:       c.RemoteAddr().String(),
		dead:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	err := cl.handshake(o)
	if !stop() || ctx.Err() != nil {
		return nil, fmt.Errorf("venti handshake with %s: %w", cl.addr, context.Cause(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("venti handshake with %s: %w", cl.addr, err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("venti handshake: clear deadline: %w", err)
	}
	ntags := 256
	if o.serial {
		ntags = 1
	}
	cl.tags = make(chan uint8, ntags)
	for i := 0; i < ntags; i++ {
		cl.tags <- uint8(i)
		cl.calls[i].ch = make(chan struct{}, 1)
	}
	cl.out = newConnWriter(c, nil, func(err error) {
		cl.fail(fmt.Errorf("venti connection to %s: %w", cl.addr, err))
	})
	go cl.readLoop()
	return cl, nil
}

// handshake exchanges version lines, sends Thello and reads Rhello.
func (cl *Client) handshake(o clientOptions) error {
	werr := make(chan error, 1)
	go func() {
		_, err := io.WriteString(cl.conn, VersionLine(o.versions, lineComment))
		werr <- err
	}()
	line, err := ReadVersionLine(cl.br)
	if err != nil {
		cl.conn.Close() // unblock the writer
		<-werr
		return err
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write version line: %w", err)
	}
	v, ok := ChooseVersion(ParseVersions(line), o.versions)
	if !ok {
		return fmt.Errorf("server version line %q offers none of %v", line, o.versions)
	}
	cl.version = v
	cl.sizeLen, _ = frameSizeLen(v)
	hello := Message{Type: Thello, Version: v, UID: o.uid}
	hb, err := hello.Marshal(v)
	if err != nil {
		return fmt.Errorf("write Thello: %w", err)
	}
	if _, err := cl.conn.Write(hb); err != nil {
		return fmt.Errorf("write Thello: %w", err)
	}
	r, err := ReadMessage(cl.br, v)
	if err != nil {
		return fmt.Errorf("read Rhello (protocol %s): %w", v, err)
	}
	switch {
	case r.Type == Rerror:
		return fmt.Errorf("hello refused: %w", &ServerError{Text: r.Error})
	case r.Type != Rhello:
		return fmt.Errorf("reply to Thello is %v, want Rhello", r.Type)
	case r.Tag != 0:
		return fmt.Errorf("Rhello has tag %d, want 0", r.Tag)
	}
	return nil
}

// Version returns the negotiated protocol version, "02" or "04".
func (cl *Client) Version() string { return cl.version }

// fail marks the connection dead with err (the first error wins) and
// closes it, which stops the reader.
func (cl *Client) fail(err error) {
	cl.errMu.Lock()
	defer cl.errMu.Unlock()
	if cl.err == nil {
		cl.err = err
		close(cl.dead)
		cl.conn.Close()
	}
}

// deadErr is the error calls return once the connection is dead.
func (cl *Client) deadErr() error {
	cl.errMu.Lock()
	defer cl.errMu.Unlock()
	return cl.err
}

// readLoop reads replies and hands each to the caller waiting on its tag.
func (cl *Client) readLoop() {
	defer close(cl.readerDone)
	for {
		if err := cl.readReply(); err != nil {
			if cl.closing.Load() {
				err = ErrClientClosed // the server hung up after our Tgoodbye
			}
			cl.fail(fmt.Errorf("venti connection to %s: %w", cl.addr, err))
			cl.failAsync()
			return
		}
	}
}

// failAsync completes, with the connection's error, every asynchronous
// call still waiting for its reply. It runs on the reader's way out, after
// fail: a call started later sees the connection dead and reclaims itself.
func (cl *Client) failAsync() {
	err := cl.deadErr()
	for i := range cl.calls {
		c := &cl.calls[i]
		c.mu.Lock()
		if c.state != callWaiting || (c.onRead == nil && c.onWrite == nil) {
			c.mu.Unlock()
			continue
		}
		onRead, onWrite, s, t := c.onRead, c.onWrite, c.score, c.btype
		c.resetAsync()
		c.mu.Unlock()
		cl.tags <- uint8(i) // never blocks: the channel holds every tag
		if onRead != nil {
			onRead(nil, fmt.Errorf("venti read %v/%v from %s: %w", s, t, cl.addr, err))
		} else {
			onWrite(fmt.Errorf("venti write %v/%v to %s: %w", s, t, cl.addr, err))
		}
	}
}

// resetAsync frees the slot of an asynchronous call; c.mu is held.
func (c *call) resetAsync() {
	c.state, c.dst, c.onRead, c.onWrite, c.noCheck = callIdle, nil, nil, nil, false
	c.gen++
}

// maxSmallReply bounds every reply but Rread (Rerror: 2+2+1024 bytes).
const maxSmallReply = 2 + 2 + MaxString + 64

func (cl *Client) readReply() error {
	n, err := readFrameSize(cl.br, cl.sizeLen)
	if err != nil {
		if err == io.EOF {
			return errors.New("server closed the connection")
		}
		return fmt.Errorf("read reply: %w", err)
	}
	if n < 2 {
		return fmt.Errorf("reply of %d bytes is shorter than its type and tag", n)
	}
	hdr, err := cl.br.Peek(2)
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	typ, tag := MsgType(hdr[0]), hdr[1]
	c := &cl.calls[tag]
	c.mu.Lock()
	state, want, count := c.state, c.want, c.count
	c.mu.Unlock()
	if state == callIdle || c.ch == nil {
		return fmt.Errorf("%v reply with tag %d, which has no request in flight", typ, tag)
	}
	if state == callReplied {
		return fmt.Errorf("second reply %v with tag %d", typ, tag)
	}
	rread := typ == Rread && want == Tread
	if rread {
		if n-2 > count {
			return fmt.Errorf("Rread of %d bytes for a Tread of at most %d", n-2, count)
		}
	} else if n > maxSmallReply {
		return fmt.Errorf("%v reply of %d bytes is too large", typ, n)
	}
	// The frame is decoded in place in the reader's buffer (a frame is at
	// most MaxMessage, the buffer's size); Rread data is copied out under
	// c.mu, so a caller that has given up never has its buffer written.
	frame, err := cl.br.Peek(n)
	if err != nil {
		return fmt.Errorf("read reply of %d bytes: %w", n, err)
	}
	defer cl.br.Discard(n)
	var m Message
	if rread {
		m = Message{Type: Rread, Tag: tag}
	} else if err := m.Unmarshal(frame, cl.version); err != nil {
		return err
	}
	if m.Type != want+1 && m.Type != Rerror {
		return fmt.Errorf("reply %v (tag %d) to a %v", m.Type, tag, want)
	}
	c.mu.Lock()
	if c.onRead != nil || c.onWrite != nil {
		cl.completeAsync(c, tag, &m, frame)
		return nil
	}
	defer c.mu.Unlock()
	if c.state == callAbandoned {
		c.state, c.dst = callIdle, nil
		cl.tags <- tag // never blocks: the channel holds every tag
		return nil
	}
	if rread {
		data := frame[2:]
		if cap(c.dst) >= len(data) {
			m.Data = c.dst[:len(data)]
		} else {
			m.Data = make([]byte, len(data))
		}
		copy(m.Data, data)
	}
	c.rep, c.state = m, callReplied
	c.ch <- struct{}{} // never blocks: one reply per request
	return nil
}

// completeAsync finishes the asynchronous call c (tag) with its reply m,
// whose frame is still in the reader's buffer; c.mu is held and released.
// The data check (SHA-1) and the callback run outside the lock.
func (cl *Client) completeAsync(c *call, tag uint8, m *Message, frame []byte) {
	onRead, onWrite, s, t, dst, noCheck := c.onRead, c.onWrite, c.score, c.btype, c.dst, c.noCheck
	c.resetAsync()
	c.mu.Unlock()
	cl.tags <- tag // never blocks: the channel holds every tag
	if onWrite != nil {
		var err error
		switch {
		case m.Type == Rerror:
			err = fmt.Errorf("venti write %v/%v to %s: %w", s, t, cl.addr, &ServerError{Text: m.Error})
		case m.Score != s:
			err = fmt.Errorf("venti write to %s: server returned score %v for a block that hashes to %v", cl.addr, m.Score, s)
		}
		onWrite(err)
		return
	}
	if m.Type == Rerror {
		onRead(nil, fmt.Errorf("venti read %v/%v from %s: %w", s, t, cl.addr, &ServerError{Text: m.Error}))
		return
	}
	data := frame[2:]
	var b []byte
	if cap(dst) >= len(data) {
		b = dst[:len(data)]
	} else {
		b = make([]byte, len(data))
	}
	copy(b, data)
	if !noCheck {
		if err := CheckRead(s, t, b); err != nil {
			onRead(nil, fmt.Errorf("venti read from %s: %w", cl.addr, err))
			return
		}
	}
	onRead(b, nil)
}

// getTag takes a free tag, waiting while all are in use.
func (cl *Client) getTag(ctx context.Context) (uint8, error) {
	var tag uint8
	select {
	case tag = <-cl.tags:
	default:
		select {
		case tag = <-cl.tags:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-cl.dead:
			return 0, cl.deadErr()
		}
	}
	if err := ctx.Err(); err != nil {
		cl.tags <- tag
		return 0, err
	}
	return tag, nil
}

// startAsync sends req as an asynchronous call on a free tag; the reader
// completes it through onRead or onWrite. If it returns an error the call
// was not started and no callback will run.
func (cl *Client) startAsync(ctx context.Context, req *Message, count int, dst []byte, s Score, onRead func([]byte, error), onWrite func(error), noCheck bool) error {
	return cl.startAsyncRef(ctx, req, count, dst, s, onRead, onWrite, noCheck, nil)
}

// startAsyncRef is startAsync; a non-nil release makes a Twrite's data go
// out from req.Data itself (connWriter.queueRef), and is called in any
// case.
func (cl *Client) startAsyncRef(ctx context.Context, req *Message, count int, dst []byte, s Score, onRead func([]byte, error), onWrite func(error), noCheck bool, release func()) error {
	tag, err := cl.getTag(ctx)
	if err != nil {
		if release != nil {
			release()
		}
		return err
	}
	c := &cl.calls[tag]
	c.mu.Lock()
	c.state, c.want, c.count, c.dst = callWaiting, req.Type, count, dst
	c.onRead, c.onWrite, c.score, c.btype, c.noCheck = onRead, onWrite, s, req.BlockType, noCheck
	gen := c.gen
	c.mu.Unlock()
	req.Tag = tag
	if release != nil {
		err = cl.sendRef(req, release)
	} else {
		err = cl.send(req)
	}
	if err != nil {
		cl.fail(fmt.Errorf("venti connection to %s: %w", cl.addr, err))
	}
	select {
	case <-cl.dead:
	default:
		return nil
	}
	// The connection died: take the call back unless the reader's last
	// sweep (or a reply) has already completed it.
	c.mu.Lock()
	if c.gen != gen || c.state != callWaiting {
		c.mu.Unlock()
		return nil
	}
	c.onRead, c.onWrite, c.noCheck = nil, nil, false
	c.state, c.dst = callAbandoned, nil // the reader frees the tag if a reply comes
	c.mu.Unlock()
	return cl.deadErr()
}

// WriteAsync implements AsyncWriter. The server's score for the block must
// be s, which the caller computed (venti.Sum of data).
func (cl *Client) WriteAsync(ctx context.Context, t Type, data []byte, s Score, done func(error)) error {
	if err := CheckWrite(t, data); err != nil {
		return fmt.Errorf("venti %w", err)
	}
	if len(data) == 0 {
		if s != ZeroScore {
			return fmt.Errorf("venti write: empty block given score %v", s)
		}
		done(nil)
		return nil
	}
	req := Message{Type: Twrite, BlockType: t, Data: data}
	if err := cl.startAsync(ctx, &req, 0, nil, s, nil, done, false); err != nil {
		return fmt.Errorf("venti write %v/%v to %s: %w", s, t, cl.addr, err)
	}
	return nil
}

// WriteAsyncRef implements RefAsyncWriter.
func (cl *Client) WriteAsyncRef(ctx context.Context, t Type, data []byte, s Score, done func(error), release func()) error {
	if err := CheckWrite(t, data); err != nil {
		release()
		return fmt.Errorf("venti %w", err)
	}
	if len(data) == 0 {
		release()
		if s != ZeroScore {
			return fmt.Errorf("venti write: empty block given score %v", s)
		}
		done(nil)
		return nil
	}
	req := Message{Type: Twrite, BlockType: t, Data: data}
	if err := cl.startAsyncRef(ctx, &req, 0, nil, s, nil, done, false, release); err != nil {
		return fmt.Errorf("venti write %v/%v to %s: %w", s, t, cl.addr, err)
	}
	return nil
}

// ReadAsync implements AsyncReader.
func (cl *Client) ReadAsync(ctx context.Context, s Score, t Type, maxBytes int, buf []byte, done func([]byte, error)) error {
	return cl.readAsync(ctx, s, t, maxBytes, buf, done, false)
}

// ReadAsyncUnchecked implements UncheckedAsyncReader.
func (cl *Client) ReadAsyncUnchecked(ctx context.Context, s Score, t Type, maxBytes int, buf []byte, done func([]byte, error)) error {
	return cl.readAsync(ctx, s, t, maxBytes, buf, done, true)
}

func (cl *Client) readAsync(ctx context.Context, s Score, t Type, maxBytes int, buf []byte, done func([]byte, error), noCheck bool) error {
	if !t.Valid() {
		return fmt.Errorf("venti read %v: invalid block type %d", s, uint8(t))
	}
	if s == ZeroScore {
		done([]byte{}, nil)
		return nil
	}
	count := max(min(maxBytes, cl.readLimit()), 0)
	req := Message{Type: Tread, Score: s, BlockType: t, Count: uint32(count)}
	if err := cl.startAsync(ctx, &req, count, buf, s, done, nil, noCheck); err != nil {
		return fmt.Errorf("venti read %v/%v from %s: %w", s, t, cl.addr, err)
	}
	return nil
}

// readLimit is the largest Tread count the connection's protocol allows.
func (cl *Client) readLimit() int {
	if cl.version == Version02 {
		return 0xFFFF - 2
	}
	return MaxMessage - 2
}

// rpc sends req on a free tag and waits for its reply. count is the Tread
// count (the most data an Rread may carry); the data goes into dst if it
// fits.
func (cl *Client) rpc(ctx context.Context, req *Message, count int, dst []byte) (Message, error) {
	tag, err := cl.getTag(ctx)
	if err != nil {
		return Message{}, err
	}
	c := &cl.calls[tag]
	c.mu.Lock()
	c.state, c.want, c.count, c.dst = callWaiting, req.Type, count, dst
	c.mu.Unlock()
	req.Tag = tag
	if err := cl.send(req); err != nil {
		c.giveUp()
		cl.fail(fmt.Errorf("venti connection to %s: %w", cl.addr, err))
		return Message{}, cl.deadErr()
	}
	select {
	case <-c.ch:
		c.mu.Lock()
		m := c.rep
		c.rep, c.state, c.dst = Message{}, callIdle, nil
		c.mu.Unlock()
		cl.tags <- tag
		return m, nil
	case <-ctx.Done():
		c.mu.Lock()
		if c.state == callReplied { // the reply came after all
			<-c.ch
			c.rep, c.state, c.dst = Message{}, callIdle, nil
			cl.tags <- tag
		} else { // the reader frees the tag when the reply comes
			c.state = callAbandoned
		}
		c.mu.Unlock()
		return Message{}, ctx.Err()
	case <-cl.dead:
		c.giveUp()
		return Message{}, cl.deadErr()
	}
}

// giveUp marks a call whose caller returns on a dead connection: the
// reader may still decode replies it had buffered, and must not write
// into the caller's buffer once the call has returned.
func (c *call) giveUp() {
	c.mu.Lock()
	if c.state == callWaiting {
		c.state, c.dst = callAbandoned, nil
	}
	c.mu.Unlock()
}

// send queues one request on the connection's writer, which sends
// requests in batches.
func (cl *Client) send(m *Message) error {
	var arr [64]byte
	head, err := m.appendHead(arr[:0], cl.version)
	if err != nil {
		return err
	}
	var data []byte
	if m.Type == Twrite {
		data = m.Data
	}
	return cl.out.queue(head, data)
}

// sendRef queues a Twrite whose data goes out from m.Data itself; release
// is called once it has been sent (see connWriter.queueRef).
func (cl *Client) sendRef(m *Message, release func()) error {
	var arr [64]byte
	head, err := m.appendHead(arr[:0], cl.version)
	if err != nil {
		release()
		return err
	}
	return cl.out.queueRef(head, m.Data, release)
}

// Read implements Reader. It fetches the block with score s and type t,
// at most max bytes, and checks that the data hashes to s. The zero score
// reads as empty without asking the server, as libventi does.
func (cl *Client) Read(ctx context.Context, s Score, t Type, maxBytes int) ([]byte, error) {
	return cl.ReadInto(ctx, s, t, maxBytes, nil)
}

// ReadInto implements ReaderInto: Read, except that the data is read into
// buf when it fits in cap(buf), and the result then aliases buf. Reusing
// buf spares an allocation per block and keeps the copy in cache.
func (cl *Client) ReadInto(ctx context.Context, s Score, t Type, maxBytes int, buf []byte) ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("venti read %v: invalid block type %d", s, uint8(t))
	}
	if s == ZeroScore {
		return []byte{}, nil
	}
	count := max(min(maxBytes, cl.readLimit()), 0)
	r, err := cl.rpc(ctx, &Message{Type: Tread, Score: s, BlockType: t, Count: uint32(count)}, count, buf)
	if err == nil && r.Type == Rerror {
		err = &ServerError{Text: r.Error}
	}
	if err != nil {
		return nil, fmt.Errorf("venti read %v/%v from %s: %w", s, t, cl.addr, err)
	}
	if err := CheckRead(s, t, r.Data); err != nil {
		return nil, fmt.Errorf("venti read from %s: %w", cl.addr, err)
	}
	if r.Data == nil {
		r.Data = []byte{}
	}
	return r.Data, nil
}

// Write implements Writer. It checks the type and size locally, sends the
// block and checks that the server's score is the SHA-1 of data. Empty
// data gives ZeroScore without asking the server, as libventi does.
func (cl *Client) Write(ctx context.Context, t Type, data []byte) (Score, error) {
	if err := CheckWrite(t, data); err != nil {
		return Score{}, fmt.Errorf("venti %w", err)
	}
	if len(data) == 0 {
		return ZeroScore, nil
	}
	want := Sum(data)
	r, err := cl.rpc(ctx, &Message{Type: Twrite, BlockType: t, Data: data}, 0, nil)
	if err == nil && r.Type == Rerror {
		err = &ServerError{Text: r.Error}
	}
	if err != nil {
		return Score{}, fmt.Errorf("venti write %v/%v to %s: %w", want, t, cl.addr, err)
	}
	if r.Score != want {
		return Score{}, fmt.Errorf("venti write to %s: server returned score %v for a block that hashes to %v", cl.addr, r.Score, want)
	}
	return want, nil
}

// Sync implements Syncer: it returns once the server has made every write
// acknowledged before the call durable.
func (cl *Client) Sync(ctx context.Context) error {
	return cl.simple(ctx, Tsync, "sync")
}

// Ping checks that the server answers.
func (cl *Client) Ping(ctx context.Context) error {
	return cl.simple(ctx, Tping, "ping")
}

func (cl *Client) simple(ctx context.Context, t MsgType, what string) error {
	r, err := cl.rpc(ctx, &Message{Type: t}, 0, nil)
	if err == nil && r.Type == Rerror {
		err = &ServerError{Text: r.Error}
	}
	if err != nil {
		return fmt.Errorf("venti %s %s: %w", what, cl.addr, err)
	}
	return nil
}

// Close sends Tgoodbye and closes the connection. Calls in flight and
// later calls fail with ErrClientClosed (or the connection's earlier
// error). Close is idempotent.
func (cl *Client) Close() error {
	cl.closeOnce.Do(func() {
		cl.closing.Store(true)
		select {
		case <-cl.dead:
		default:
			cl.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			err := cl.send(&Message{Type: Tgoodbye})
			if err == nil {
				err = cl.out.flush()
			}
			if err != nil {
				cl.closeErr = fmt.Errorf("venti goodbye to %s: %w", cl.addr, err)
			}
		}
		cl.fail(ErrClientClosed)
		cl.out.close()
		<-cl.readerDone
	})
	return cl.closeErr
}
