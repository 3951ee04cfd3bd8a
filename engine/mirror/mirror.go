// Package mirror pushes every block of the embedded venti's store to
// other ventis over the venti protocol, continuously and in store order,
// as the 9gridchan high-availability grid did with venti/rdarena |
// venti/wrarena in a loop. A mirror may be any venti: another Gridlord
// engine's, a plan9port venti, a venti on a Plan 9 node.
//
// Each Mirror has a durable position (see State): the log position up to
// which the mirror has acknowledged a Tsync. Pushing resumes there after
// any interruption (a dead connection, a restarted mirror or primary, a
// crash), so a block is sometimes pushed twice (venti writes are
// idempotent) and never skipped. A Manager keeps the mirrors of one store
// by address, with their list and positions in a directory.
//
// Concurrency: Mirror.Run is one goroutine that owns the mirror's
// connection: it dials, reconnects with backoff, reads the store's log and
// keeps a window of writes in flight (worker goroutines it starts and
// joins per connection). Status and the Manager's methods are safe for
// concurrent use; Mirror.mu guards only the status fields and is never
// held during I/O.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// Option configures a Mirror (and every mirror of a Manager).
type Option func(*options) error

type options struct {
	window      int           // writes in flight
	syncBytes   int64         // block bytes between Tsyncs while pushing
	syncEvery   time.Duration // the longest time between Tsyncs while pushing; also the idle poll
	minBackoff  time.Duration
	maxBackoff  time.Duration
	dialTimeout time.Duration
}

func defaultOptions() options {
	return options{
		window:      64,
		syncBytes:   64 << 20,
		syncEvery:   time.Second,
		minBackoff:  250 * time.Millisecond,
		maxBackoff:  30 * time.Second,
		dialTimeout: 10 * time.Second,
	}
}

// WithWindow sets how many writes (or Verify's reads) are in flight on a
// mirror's connection at once (default 64; at most 256, the venti tag
// space).
func WithWindow(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 256 {
			return fmt.Errorf("mirror window %d: want 1..256", n)
		}
		o.window = n
		return nil
	}
}

// WithSync sets how often a pushing mirror sends Tsync and saves its
// position: after bytes of blocks or after d, whichever comes first
// (default 64 MiB, 1 s); d is also how often an idle mirror pings and
// syncs the primary store. Every pause in the stream syncs at once.
func WithSync(bytes int64, d time.Duration) Option {
	return func(o *options) error {
		if bytes <= 0 || d <= 0 {
			return fmt.Errorf("mirror sync interval %d bytes, %v: both must be positive", bytes, d)
		}
		o.syncBytes, o.syncEvery = bytes, d
		return nil
	}
}

// WithBackoff sets the first and the longest wait before reconnecting
// after an error (default 250 ms and 30 s); each failure doubles it, a
// productive connection resets it.
func WithBackoff(first, longest time.Duration) Option {
	return func(o *options) error {
		if first <= 0 || longest < first {
			return fmt.Errorf("mirror backoff %v..%v: want 0 < first <= longest", first, longest)
		}
		o.minBackoff, o.maxBackoff = first, longest
		return nil
	}
}

// WithDialTimeout bounds connecting to a mirror (default 10 s).
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("mirror dial timeout %v: must be positive", d)
		}
		o.dialTimeout = d
		return nil
	}
}

// prepare checks a mirror's address and options: it returns the address
// as host:port, the options, and log (a discarding one if nil) naming the
// mirror.
func prepare(addr string, log *slog.Logger, opts []Option) (string, options, *slog.Logger, error) {
	canon, err := canonAddr(addr)
	if err != nil {
		return "", options{}, nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return "", options{}, nil, fmt.Errorf("mirror %s: %w", canon, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return canon, o, log.With("mirror", canon), nil
}

func buildOptions(opts []Option) (options, error) {
	o := defaultOptions()
	for _, f := range opts {
		if err := f(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// Status is a snapshot of a mirror.
type Status struct {
	Addr      string // host:port
	Running   bool   // Run is active
	Connected bool   // it has a connection to the mirror
	// Pos is the saved position: everything before it is on the mirror
	// (written and synced there).
	Pos store.Pos
	// Durable is the end of the store's durable log; the mirror has
	// caught up when Pos equals it.
	Durable store.Pos
	Blocks  int64 // records before Pos
	Bytes   int64 // block bytes in them
	Skipped int64 // damaged records of the store among them, not pushed
	// Pending counts blocks sent since the last Tsync (or in flight).
	Pending int64
	// LagBlocks and LagBytes are the blocks of the store (and their
	// uncompressed bytes) not yet before Pos, durable or not.
	LagBlocks, LagBytes int64
	LastError           string    // the latest error, "" if none since it was created
	LastErrorAt         time.Time // when it happened
}

// Mirror pushes a store's blocks to one venti.
type Mirror struct {
	st   *store.Store
	addr string
	path string
	log  *slog.Logger
	o    options

	mu        sync.Mutex
	state     State // as saved in path
	running   bool
	connected bool
	pending   int64
	lastErr   error
	lastErrAt time.Time
}

// NewMirror returns the mirror of st at the venti address addr, whose position
// is kept in the file path (read now if it exists; written once the
// mirror has acknowledged a Tsync). It does not connect: Run does.
func NewMirror(st *store.Store, addr, path string, log *slog.Logger, opts ...Option) (*Mirror, error) {
	canon, o, log, err := prepare(addr, log, opts)
	if err != nil {
		return nil, err
	}
	s, err := loadState(path)
	if err != nil {
		return nil, err
	}
	if s.Addr != "" && s.Addr != canon {
		return nil, fmt.Errorf("mirror position %s belongs to mirror %s, not %s", path, s.Addr, canon)
	}
	m := &Mirror{st: st, addr: canon, path: path, log: log, o: o, state: s}
	if s.Addr == "" || s.Store != st.ID() {
		if s.Addr != "" {
			m.log.Warn("venti mirror: position was saved for another store; pushing everything again", "position", path, "store", s.Store, "now", st.ID())
		}
		m.state = m.fresh()
	}
	return m, nil
}

// Addr returns the mirror's address as host:port.
func (m *Mirror) Addr() string { return m.addr }

// fresh is the state of a mirror that has nothing yet.
func (m *Mirror) fresh() State {
	return State{Addr: m.addr, Store: m.st.ID(), Pos: store.StartPos()}
}

// Status returns a snapshot of the mirror.
func (m *Mirror) Status() Status {
	stats := m.st.Stats()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{
		Addr: m.addr, Running: m.running, Connected: m.connected,
		Pos: m.state.Pos, Durable: m.st.Durable(),
		Blocks: m.state.Blocks, Bytes: m.state.Bytes, Skipped: m.state.Skipped,
		Pending:   m.pending,
		LagBlocks: max(stats.Blocks-m.state.Blocks, 0),
		LagBytes:  max(stats.StoredBytes-m.state.Bytes, 0),
	}
	if m.lastErr != nil {
		s.LastError, s.LastErrorAt = m.lastErr.Error(), m.lastErrAt
	}
	return s
}

func (m *Mirror) setErr(err error) {
	m.mu.Lock()
	m.lastErr, m.lastErrAt = err, time.Now()
	m.mu.Unlock()
}

func (m *Mirror) setConnected(on bool) {
	m.mu.Lock()
	m.connected = on
	if !on {
		m.pending = 0
	}
	m.mu.Unlock()
}

func (m *Mirror) setPending(n int64) {
	m.mu.Lock()
	m.pending = n
	m.mu.Unlock()
}

func (m *Mirror) saved() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// save makes s the durable position.
func (m *Mirror) save(s State) error {
	if err := saveState(m.path, s); err != nil {
		return fmt.Errorf("mirror %s: %w", m.addr, err)
	}
	m.mu.Lock()
	m.state = s
	m.mu.Unlock()
	return nil
}

// Run pushes the store's blocks to the mirror until ctx is done (then it
// returns nil, after a last Tsync and save of what the mirror has
// acknowledged) or the store is closed (then an error wrapping
// store.ErrClosed). Errors of the mirror or the network do not end it:
// they are logged, shown in Status, and Run reconnects after a backoff
// and resumes from the saved position. Only one Run per Mirror may be
// active.
func (m *Mirror) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return fmt.Errorf("mirror %s: already running", m.addr)
	}
	m.running = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
	}()
	backoff := m.o.minBackoff
	for {
		began := time.Now()
		progressed, err := m.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, store.ErrClosed) {
			return fmt.Errorf("mirror %s: %w", m.addr, err)
		}
		m.setErr(err)
		if progressed || time.Since(began) > m.o.maxBackoff {
			backoff = m.o.minBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		m.log.Warn("venti mirror: connection failed; will retry", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, m.o.maxBackoff)
	}
}

// errStoreDamage marks a store record whose block does not hash to its
// score (damage the record checksums missed); it cannot be pushed.
var errStoreDamage = errors.New("store block does not hash to its score")

// session pushes over one connection until an error or ctx is done.
// progressed reports whether it saved a new position.
func (m *Mirror) session(ctx context.Context) (progressed bool, err error) {
	cl, err := venti.Dial(ctx, m.addr, venti.WithDialTimeout(m.o.dialTimeout))
	if err != nil {
		return false, err
	}
	defer cl.Close()
	m.setConnected(true)
	defer m.setConnected(false)
	st := m.saved()
	it, err := m.st.Records(st.Pos)
	if errors.Is(err, store.ErrBadPos) {
		m.log.Warn("venti mirror: saved position is not in the store's log; pushing everything again", "err", err)
		st = m.fresh()
		it, err = m.st.Records(st.Pos)
	}
	if err != nil {
		return false, fmt.Errorf("mirror %s: %w", m.addr, err)
	}
	m.log.Info("venti mirror: connected; pushing", "from", st.Pos, "version", cl.Version())
	p := &pusher{m: m, cl: cl, it: it, acked: st, saved: st, lastSync: time.Now(), inflight: map[uint64]*job{}}
	p.pool = newPool(ctx, m.o.window, false, p.write)
	defer p.pool.close()
	err = p.run(ctx)
	if ctx.Err() != nil && p.acked != p.saved {
		// Stopping: keep what the mirror has acknowledged.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if serr := p.sync(sctx); serr != nil {
			m.log.Warn("venti mirror: last sync before stopping failed", "err", serr)
		}
		cancel()
	}
	return p.progressed, err
}

// pusher is the state of one session.
type pusher struct {
	m     *Mirror
	cl    *venti.Client
	it    *store.Iter
	pool  *pool
	acked State // the records before acked.Pos have all been written (Rwrite received)
	saved State // the position on disk (a Tsync covered it)

	lastSync   time.Time
	seq, next  uint64          // next sequence number to give, and to acknowledge
	inflight   map[uint64]*job // jobs not yet acknowledged in order, by seq
	caughtUp   bool            // the iterator had nothing more
	progressed bool
}

// write is a worker's job: send one block.
func (p *pusher) write(ctx context.Context, j *job) error {
	s, err := p.cl.Write(ctx, j.typ, j.data)
	if err == nil && s != j.score {
		return fmt.Errorf("%w: record %v/%v hashes to %v", errStoreDamage, j.score, j.typ, s)
	}
	return err
}

func (p *pusher) run(ctx context.Context) error {
	o := p.m.o
	for {
		if err := p.fill(ctx); err != nil {
			return err
		}
		p.advance()
		due := p.acked.Bytes-p.saved.Bytes >= o.syncBytes || time.Since(p.lastSync) >= o.syncEvery ||
			p.caughtUp && p.pool.busy == 0
		if p.acked != p.saved && due {
			if err := p.sync(ctx); err != nil {
				return err
			}
		}
		p.m.setPending(p.acked.Blocks - p.saved.Blocks + int64(p.pool.busy))
		if p.pool.busy > 0 {
			select {
			case j := <-p.pool.results:
				if err := p.finish(j); err != nil {
					return err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if p.caughtUp {
			if err := p.idle(ctx); err != nil {
				return err
			}
		}
	}
}

// fill submits records until the window is full or the log is read.
func (p *pusher) fill(ctx context.Context) error {
	for !p.caughtUp && len(p.pool.free) > 0 {
		rec, err := p.it.Next(ctx)
		if errors.Is(err, store.ErrCaughtUp) {
			p.caughtUp = true
			return nil
		}
		if err != nil && !errors.Is(err, venti.ErrCorrupt) {
			return fmt.Errorf("mirror %s: read store: %w", p.m.addr, err)
		}
		j := p.pool.take(rec)
		j.seq = p.seq
		p.seq++
		p.inflight[j.seq] = j
		if err != nil {
			p.skip(j, err)
			continue
		}
		p.pool.submit(j)
	}
	return nil
}

// skip records a damaged store record that cannot be pushed: it counts as
// passed, so that the position moves on.
func (p *pusher) skip(j *job, err error) {
	p.m.log.Error("venti mirror: damaged block in the store, not pushed", "err", err)
	p.m.setErr(err)
	j.skip, j.done, j.next = true, true, p.it.Pos() // the iterator has moved past the damage
}

// finish takes a worker's result.
func (p *pusher) finish(j *job) error {
	p.pool.received(j)
	switch {
	case errors.Is(j.err, errStoreDamage):
		p.m.log.Error("venti mirror: damaged block in the store, not pushed", "err", j.err)
		p.m.setErr(j.err)
		j.skip = true
	case j.err != nil:
		return j.err
	}
	j.done = true
	return nil
}

// advance moves acked over the jobs finished in log order.
func (p *pusher) advance() {
	for {
		j, ok := p.inflight[p.next]
		if !ok || !j.done {
			return
		}
		p.acked.Pos = j.next
		p.acked.Blocks++
		p.acked.Bytes += int64(j.size)
		if j.skip {
			p.acked.Skipped++
		}
		delete(p.inflight, p.next)
		p.next++
		p.pool.put(j)
	}
}

// sync sends Tsync, which covers every write acknowledged before it, and
// then saves acked as the position.
func (p *pusher) sync(ctx context.Context) error {
	s := p.acked
	if err := p.cl.Sync(ctx); err != nil {
		return err
	}
	if err := p.m.save(s); err != nil {
		return err
	}
	p.saved, p.lastSync, p.progressed = s, time.Now(), true
	return nil
}

// idle waits, with nothing in flight and everything synced, for the log
// to grow. Every syncEvery it pings the mirror (so a dead one is noticed)
// and syncs the store, making writes its clients have not synced yet
// durable, and so pushable.
func (p *pusher) idle(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, p.m.o.syncEvery)
	err := p.it.Wait(wctx)
	cancel()
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		// plan9port's venti answers Tping with Rerror: any answer will do.
		var se *venti.ServerError
		if err := p.cl.Ping(ctx); err != nil && !errors.As(err, &se) {
			return err
		}
		if err := p.m.st.Sync(ctx); err != nil {
			return fmt.Errorf("mirror %s: sync the store: %w", p.m.addr, err)
		}
	default:
		return fmt.Errorf("mirror %s: %w", p.m.addr, err)
	}
	p.caughtUp = false
	return nil
}
