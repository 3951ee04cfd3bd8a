package venti

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// serverVersions are the protocol versions a Server offers, in libventi's
// preference order. The order matters: plan9port clients offer "04:02" and
// reject the hello unless both sides pick the same version, and each side
// picks from the other's list.
var serverVersions = []string{Version04, Version02}

// lineComment ends our version lines: venti-04:02-gridlord.
const lineComment = "gridlord"

// maxInFlight bounds the requests of one connection processed at once; it
// equals the number of tags, so a well-behaved client never waits on it.
const maxInFlight = 256

// ioBufSize is the size of the buffered reader and writer of a connection.
const ioBufSize = 128 * 1024

// Server serves the venti protocol from a Store. One Server may serve any
// number of listeners and connections at once.
type Server struct {
	st               Store
	log              *slog.Logger
	handshakeTimeout time.Duration
	bufs             sync.Pool // *[]byte of cap readBufSize, for Rread data
}

// readBufSize fits the largest block and a store's record header.
const readBufSize = MaxBlock + 64

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithLogger sets the logger for connection events and protocol errors
// (default: discard).
func WithLogger(l *slog.Logger) ServerOption {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// WithHandshakeTimeout bounds how long a new connection may take to send
// its version line and Thello (default 30 seconds).
func WithHandshakeTimeout(d time.Duration) ServerOption {
	return func(s *Server) {
		if d > 0 {
			s.handshakeTimeout = d
		}
	}
}

// NewServer returns a server that stores and fetches blocks in st. Tsync is
// answered by calling st.Sync; coalescing concurrent syncs is st's job.
func NewServer(st Store, opts ...ServerOption) *Server {
	s := &Server{
		st:               st,
		log:              slog.New(slog.DiscardHandler),
		handshakeTimeout: 30 * time.Second,
	}
	s.bufs.New = func() any { b := make([]byte, readBufSize); return &b }
	for _, o := range opts {
		o(s)
	}
	return s
}

// Serve accepts connections on ln and serves each in its own goroutine
// until ctx is done (it then returns nil) or ln fails (it returns the
// error). Either way it closes ln and every connection it accepted and
// waits for their handlers to finish before returning, so the store may be
// closed afterwards.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	var wg sync.WaitGroup
	defer func() {
		cancel()
		stop()
		ln.Close()
		wg.Wait()
	}()
	s.log.Info("venti serving", "addr", ln.Addr().String())
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() && !errors.Is(err, net.ErrClosed) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("venti accept", "addr", ln.Addr().String(), "err", err, "retry", delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("venti serve %v: accept: %w", ln.Addr(), err)
		}
		delay = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ServeConn(ctx, c); err != nil {
				s.log.Info("venti connection failed", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// srvConn is the state of one served connection.
type srvConn struct {
	s       *Server
	c       net.Conn
	br      *bufio.Reader
	version string
	sizeLen int
	log     *slog.Logger

	sem     chan struct{}  // one slot per request being processed
	wg      sync.WaitGroup // requests being processed
	workers sync.WaitGroup // worker goroutines

	work     chan srvJob // requests for idle workers
	nworkers int         // workers started; reader-owned

	writes *sync.WaitGroup // Twrites received since the last Tsync; reader-owned
	ctx    context.Context // workers' context
	cancel context.CancelFunc

	out    *connWriter  // replies
	noWait ReaderNoWait // the store, if it can say what it serves from memory
}

// ServeConn serves one connection: the version exchange, Thello, then
// requests until Tgoodbye, end of stream, a framing error or ctx is done.
// It closes c before returning. Requests are processed concurrently (up to
// 256 at once) and replies are sent as they complete, so they may come out
// of order. A clean Tgoodbye or hang-up returns nil.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	sc := &srvConn{
		s:      s,
		c:      c,
		br:     bufio.NewReaderSize(c, ioBufSize),
		log:    s.log.With("remote", c.RemoteAddr().String()),
		sem:    make(chan struct{}, maxInFlight),
		work:   make(chan srvJob),
		writes: new(sync.WaitGroup),
	}
	sc.noWait, _ = s.st.(ReaderNoWait)
	sc.ctx, sc.cancel = context.WithCancel(ctx)
	defer sc.cancel()
	sc.out = newConnWriter(c, &s.bufs, func(error) { c.Close() }) // a write error stops the reader
	defer sc.out.close()
	err := sc.handshake()
	if err == nil {
		sc.log.Debug("venti connection", "version", sc.version)
		err = sc.serve()
	}
	// Let the replies already queued (an Rerror saying why we close,
	// those before a Tgoodbye) go out before c is closed.
	sc.out.flush()
	if err != nil {
		return fmt.Errorf("venti connection from %v: %w", c.RemoteAddr(), err)
	}
	return nil
}

// handshake exchanges version lines and answers the Thello.
func (sc *srvConn) handshake() error {
	if err := sc.c.SetDeadline(time.Now().Add(sc.s.handshakeTimeout)); err != nil {
		return fmt.Errorf("set handshake deadline: %w", err)
	}
	// Write our line while reading theirs: on an unbuffered conn (net.Pipe)
	// both sides writing first would deadlock.
	werr := make(chan error, 1)
	go func() {
		_, err := io.WriteString(sc.c, VersionLine(serverVersions, lineComment))
		werr <- err
	}()
	line, err := ReadVersionLine(sc.br)
	if err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write version line: %w", err)
	}
	v, ok := ChooseVersion(ParseVersions(line), serverVersions)
	if !ok {
		return fmt.Errorf("client version line %q offers no version this server speaks (%v)", line, serverVersions)
	}
	// libventi's rule makes both sides agree when they order versions
	// alike. A client that orders them differently ("02:04") picks another
	// version than we do; its Thello framing shows which, and we follow it
	// instead of failing on a misframed hello as libventi would.
	if b, err := sc.br.Peek(4); err == nil {
		switch {
		case v == Version02 && b[0] == 0 && b[1] == 0: // not a 02 frame: 4-byte size
			v = Version04
		case v == Version04 && binary.BigEndian.Uint32(b) > MaxMessage: // a 2-byte size
			v = Version02
		}
	}
	sc.version = v
	sc.sizeLen, _ = frameSizeLen(v)
	m, err := ReadMessage(sc.br, v)
	if err != nil {
		return fmt.Errorf("read Thello (protocol %s): %w", v, err)
	}
	var bad string
	switch {
	case m.Type != Thello:
		bad = fmt.Sprintf("first message is %v, want Thello", m.Type)
	case m.Tag != 0:
		bad = fmt.Sprintf("Thello has tag %d, want 0", m.Tag)
	case m.Version != v:
		bad = fmt.Sprintf("bad version %q in Thello framed as protocol %s", m.Version, v)
	}
	if bad != "" {
		sc.reply(&Message{Type: Rerror, Tag: m.Tag, Error: bad})
		return errors.New(bad)
	}
	sc.reply(&Message{Type: Rhello, SID: "anonymous"})
	if err := sc.out.flush(); err != nil {
		return fmt.Errorf("write Rhello: %w", err)
	}
	if err := sc.c.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear handshake deadline: %w", err)
	}
	return nil
}

// serve reads requests until the connection ends. On return every worker
// has finished.
func (sc *srvConn) serve() (err error) {
	defer func() {
		if err != nil {
			sc.cancel() // abandon work whose reply cannot be sent
		}
		sc.wg.Wait()
		close(sc.work)
		sc.workers.Wait()
	}()
	rx := newRxReader(sc.br, sc.c)
	defer rx.close()
	// Replies made on this goroutine (inline reads) are written by it,
	// in one write per burst of requests, before it waits for more.
	held := false
	unhold := func() {
		if held {
			held = false
			sc.out.unhold()
		}
	}
	defer unhold()
	for {
		if held && !rx.hasFrame(sc.sizeLen) {
			unhold()
		}
		n, err := rx.frameSize(sc.sizeLen)
		if err != nil {
			if err == io.EOF {
				// Hang-up or half-close: finish the work in hand, whose
				// replies a half-closed peer may still read.
				return nil
			}
			if sc.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read message size: %w", err)
		}
		if n < 2 {
			return fmt.Errorf("message of %d bytes is shorter than its type and tag; closing", n)
		}
		if n > MaxMessage {
			// The stream cannot be trusted to resynchronise: say why and close.
			tag := uint8(0)
			if b, err := rx.peek(2); err == nil {
				tag = b[1]
			}
			msg := fmt.Sprintf("message of %d bytes exceeds the %d-byte maximum; closing connection", n, MaxMessage)
			sc.reply(&Message{Type: Rerror, Tag: tag, Error: msg})
			return errors.New(msg)
		}
		// The frame lies in the reader's chunk; a Twrite's body stays
		// there, referenced, until a worker has stored it.
		buf, err := rx.next(n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if sc.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read message of %d bytes: %w", n, err)
		}
		var m Message
		if err := m.Unmarshal(buf, sc.version); err != nil {
			sc.log.Debug("venti bad message", "err", err)
			sc.reply(&Message{Type: Rerror, Tag: buf[1], Error: err.Error()})
			continue
		}
		switch m.Type {
		case Tgoodbye:
			unhold()
			sc.wg.Wait() // let pending replies go out before closing
			return nil
		case Thello:
			sc.reply(&Message{Type: Rerror, Tag: m.Tag, Error: "Thello after the session started"})
		case Tping:
			sc.reply(&Message{Type: Rping, Tag: m.Tag})
		case Tread, Twrite, Tsync:
			if m.Type == Tread && sc.noWait != nil {
				if data, release, ok := sc.readNoWait(&m); ok {
					if !held {
						sc.out.hold()
						held = true
					}
					sc.replyNoWait(&m, data, release)
					sc.out.writeHeld(heldWrite)
					continue
				}
			}
			select {
			case sc.sem <- struct{}{}:
			default:
				unhold() // the replies held may be what frees a slot
				select {
				case sc.sem <- struct{}{}:
				case <-sc.ctx.Done():
					return nil
				}
			}
			var batch *sync.WaitGroup
			var body *rxChunk
			switch m.Type {
			case Twrite:
				body = rx.cur
				body.refs.Add(1)
				batch = sc.writes
				batch.Add(1)
			case Tsync:
				// The sync covers every write received before it: those
				// of its own batch, and through the chain below those of
				// every earlier batch, whose syncs may still be waiting.
				batch = sc.writes
				next := new(sync.WaitGroup)
				next.Add(1)
				go func(prev *sync.WaitGroup) { prev.Wait(); next.Done() }(batch)
				sc.writes = next
			}
			sc.wg.Add(1)
			sc.dispatch(srvJob{m: m, body: body, batch: batch})
		default:
			sc.reply(&Message{Type: Rerror, Tag: m.Tag, Error: fmt.Sprintf("unexpected %v: not a request", m.Type)})
		}
	}
}

func (sc *srvConn) putBuf(b *[]byte) {
	if b != nil {
		sc.s.bufs.Put(b)
	}
}

// srvJob is one Tread, Twrite or Tsync for a worker.
type srvJob struct {
	m     Message
	body  *rxChunk        // Twrite: the chunk its data lies in, released once stored
	batch *sync.WaitGroup // Twrite: the batch it belongs to; Tsync: the batch it waits for
}

// dispatch hands j to an idle worker, or starts a new one while there are
// fewer than maxInFlight; it runs on the reader's goroutine only. Each
// request goes straight to a worker of its own, so the scheduler spreads
// them over the cores at once (a read waiting for the disk holds up no
// other request). A shared queue from which a worker took the next
// request without sleeping, waking another only when none was awake
// (96c95f4), saved hand-offs but left a core idle: "bench venti" dedup
// writes and reads fell from 0.42-0.48x to 0.30-0.36x SHA-1, and the
// separate-process "bench vac -cli" figures did not move. Workers live
// as long as the connection: a goroutine per request would pay for its
// creation and for growing its stack through SHA-1 and the store's I/O
// on every request. The sem slot taken for j guarantees a worker frees up
// if all are busy.
func (sc *srvConn) dispatch(j srvJob) {
	select {
	case sc.work <- j:
		return
	default:
	}
	if sc.nworkers < maxInFlight {
		sc.nworkers++
		sc.workers.Add(1)
		go sc.worker(j)
		return
	}
	sc.work <- j
}

// worker handles first, then whatever the reader hands it until the
// connection ends.
func (sc *srvConn) worker(first srvJob) {
	defer sc.workers.Done()
	sc.handle(first.m, first.body, first.batch)
	for j := range sc.work {
		sc.handle(j.m, j.body, j.batch)
	}
}

// handle processes one Tread, Twrite or Tsync and sends its reply.
func (sc *srvConn) handle(m Message, body *rxChunk, batch *sync.WaitGroup) {
	defer func() {
		<-sc.sem
		sc.wg.Done()
	}()
	r := Message{Tag: m.Tag}
	var err error
	switch m.Type {
	case Tread:
		r.Type = Rread
		var rb *[]byte
		var release func()
		r.Data, rb, release, err = sc.read(&m)
		if release != nil {
			// The data lies in the store's memory: it goes out from
			// there, and the writer releases it once it is sent.
			sc.putBuf(rb)
			if len(r.Data) >= minOwned {
				sc.replyRef(&r, release)
				return
			}
			defer release() // after the reply has been queued (copied)
			break
		}
		if err == nil && rb != nil && len(r.Data) >= minOwned {
			// The reply's data goes out from rb, which the writer
			// puts back once it is sent.
			sc.replyOwned(&r, rb)
			return
		}
		defer sc.putBuf(rb) // after the reply has been queued (copied)
	case Twrite:
		r.Type = Rwrite
		r.Score, err = sc.write(&m)
		body.release()
		// Released once the reply is queued, so a later Rsync always
		// follows this Rwrite on the wire.
		defer batch.Done()
	case Tsync:
		r.Type = Rsync
		batch.Wait()
		if err = sc.s.st.Sync(sc.ctx); err != nil {
			sc.log.Warn("venti sync failed", "err", err)
		}
	}
	if err != nil {
		r = Message{Type: Rerror, Tag: m.Tag, Error: err.Error()}
	}
	sc.reply(&r)
}

// heldWrite is how many bytes of replies made on a connection's reader
// goroutine it lets gather before it writes them.
const heldWrite = 128 << 10

// readNoWait reads the block of the Tread m when the store has it in
// memory (ReaderNoWait), for an answer on the reader's goroutine: a read
// of the page cache costs less than handing it to a worker. ok is false
// for anything else, errors included, which is a worker's to answer.
func (sc *srvConn) readNoWait(m *Message) (data []byte, release func(), ok bool) {
	if !m.BlockType.Valid() || m.Score == ZeroScore {
		return nil, nil, false
	}
	data, release, ok = sc.noWait.ReadRefNoWait(m.Score, m.BlockType, max(MaxBlock, int(m.Count)))
	if ok && len(data) > int(m.Count) {
		release()
		return nil, nil, false
	}
	return data, release, ok
}

// replyNoWait queues the Rread of m's data from readNoWait.
func (sc *srvConn) replyNoWait(m *Message, data []byte, release func()) {
	r := Message{Type: Rread, Tag: m.Tag, Data: data}
	if len(data) >= minOwned {
		sc.replyRef(&r, release)
		return
	}
	sc.reply(&r) // copies data
	release()
}

// read answers a Tread with the block's bytes or an error in p9p's words.
// The data may be in a pooled buffer, returned too, which the caller puts
// back once the reply is queued, or in the store's memory (ReaderRef),
// and release is then non-nil.
func (sc *srvConn) read(m *Message) (data []byte, pooled *[]byte, release func(), err error) {
	if !m.BlockType.Valid() {
		return nil, nil, nil, fmt.Errorf("read %v: invalid block type %d", m.Score, uint8(m.BlockType))
	}
	if m.Score == ZeroScore {
		return nil, nil, nil, nil
	}
	if rr, ok := sc.s.st.(ReaderRef); ok {
		pooled = sc.s.bufs.Get().(*[]byte)
		data, release, err = rr.ReadRef(sc.ctx, m.Score, m.BlockType, max(MaxBlock, int(m.Count)), *pooled)
	} else if ri, ok := sc.s.st.(ReaderInto); ok {
		pooled = sc.s.bufs.Get().(*[]byte)
		data, err = ri.ReadInto(sc.ctx, m.Score, m.BlockType, max(MaxBlock, int(m.Count)), *pooled)
	} else {
		data, err = sc.s.st.Read(sc.ctx, m.Score, m.BlockType, max(MaxBlock, int(m.Count)))
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, pooled, nil, fmt.Errorf("no block with score %v/%d exists", m.Score, uint8(m.BlockType))
		}
		sc.log.Warn("venti read failed", "score", m.Score.String(), "type", m.BlockType, "err", err)
		return nil, pooled, nil, err
	}
	if len(data) > int(m.Count) {
		if release != nil {
			release()
		}
		return nil, pooled, nil, fmt.Errorf("read too small: asked for %d need at least %d", m.Count, len(data))
	}
	return data, pooled, release, nil
}

// write answers a Twrite with the block's score.
func (sc *srvConn) write(m *Message) (Score, error) {
	if err := CheckWrite(m.BlockType, m.Data); err != nil {
		return Score{}, err
	}
	if len(m.Data) == 0 {
		return ZeroScore, nil
	}
	s, err := sc.s.st.Write(sc.ctx, m.BlockType, m.Data)
	if err != nil {
		sc.log.Warn("venti write failed", "type", m.BlockType, "bytes", len(m.Data), "err", err)
	}
	return s, err
}

// minOwned is the least Rread data sent from the store's buffer (writev)
// instead of being copied into the connection's: below it, the copy costs
// less than a piece of the vector.
const minOwned = 4096

// replyOwned queues an Rread whose data lies in the pooled buffer b, which
// the connection's writer owns from then on.
func (sc *srvConn) replyOwned(m *Message, b *[]byte) {
	var arr [64]byte
	head, err := m.appendHead(arr[:0], sc.version)
	if err != nil {
		sc.putBuf(b)
		sc.log.Warn("venti reply", "err", err)
		sc.c.Close()
		return
	}
	if err := sc.out.queueOwned(head, m.Data, b); err != nil {
		sc.c.Close()
	}
}

// replyRef queues an Rread whose data lies in the store's memory; the
// connection's writer calls release once it has been sent (or dropped).
func (sc *srvConn) replyRef(m *Message, release func()) {
	var arr [64]byte
	head, err := m.appendHead(arr[:0], sc.version)
	if err != nil {
		release()
		sc.log.Warn("venti reply", "err", err)
		sc.c.Close()
		return
	}
	if err := sc.out.queueRef(head, m.Data, release); err != nil {
		sc.c.Close()
	}
}

// reply queues m on the connection's writer, which sends replies in
// batches. A reply that cannot be encoded or a write error closes the
// connection, which stops the reader.
func (sc *srvConn) reply(m *Message) {
	if m.Type == Rerror && len(m.Error) > MaxString {
		m.Error = m.Error[:MaxString]
	}
	var arr [64]byte
	head, err := m.appendHead(arr[:0], sc.version)
	if err != nil {
		sc.log.Warn("venti reply", "err", err)
		sc.c.Close()
		return
	}
	var data []byte
	if m.Type == Rread {
		data = m.Data
	}
	if err := sc.out.queue(head, data); err != nil {
		sc.c.Close()
	}
}
