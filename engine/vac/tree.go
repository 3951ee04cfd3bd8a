package vac

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"gridlord/engine/venti"
)

// Writing hash trees.
//
// A writePool owns a fixed set of goroutines that write leaf blocks to the
// store concurrently; a streamWriter feeds one stream's leaves to the pool
// in order and, on a collector goroutine of its own, takes their scores
// back in order and builds the pointer levels bottom-up. At most `window`
// leaves are in flight, so memory stays bounded and a slow store applies
// back-pressure to the reader.

// writeJob is one leaf on its way to the store. For a zero run (zeros > 0)
// no block is written.
type writeJob struct {
	t     venti.Type
	data  []byte
	buf   []byte // returned to the pool after the write
	zeros uint64 // number of all-zero leaves this job stands for
	n     int64  // logical bytes covered (for progress)
	score venti.Score
	err   error
	done  chan struct{}
}

// writePool writes blocks with a fixed number of goroutines, or, when the
// store is a venti.AsyncWriter (a venti.Client), through its asynchronous
// writes with no goroutine of its own.
type writePool struct {
	st    venti.Writer
	async venti.AsyncWriter // nil: the workers write
	win   *window           // async: bounds the writes in flight
	jobs  chan *writeJob
	free  chan []byte
	zero  []byte
	dsize int
	wg    sync.WaitGroup
	ctx   context.Context

	// Async mode with a venti.RefAsyncWriter: file data goes out from
	// the read-ahead chunks it was read into (see nextChunk).
	ref    venti.RefAsyncWriter
	chunks []*readChunk
	nextCh int

	// Async mode: a background Sync after every syncEvery bytes queued
	// (see bgSync); only the feeding goroutine touches these.
	unsynced int64
	syncDone chan error // the background Sync in progress, if any
	syncErr  error
}

// syncEvery is how many bytes of asynchronous writes start a background
// Sync of the store: the server's disk then writes the data back while
// more arrives, instead of all of it in the final Sync that Create waits
// for (256 MiB took 0.12 s of a 0.8 s archive in that fsync). What the
// final Sync still waits for is the last background one, of up to
// syncEvery bytes: with 64 MiB, 31-35 ms of fdatasync at the end of a
// 256 MiB archive of about 0.6 s; with 16 MiB, 9-15 ms (strace of venti
// serve), for 16 fsyncs instead of 4.
const syncEvery = 16 << 20

// maxAsyncWindow bounds the asynchronous writes in flight below a venti
// connection's 256 tags, so writers wait on the window (which wakes them
// once per batch), never on a tag.
const maxAsyncWindow = 192

// newWritePool starts workers goroutines writing to st; window is the
// number of dsize buffers shared by the streams, and, for an
// asynchronous writer, the number of writes in flight. Stop it with close.
func newWritePool(ctx context.Context, st venti.Writer, dsize, workers, window int) *writePool {
	p := &writePool{
		st:    st,
		jobs:  make(chan *writeJob),
		zero:  make([]byte, dsize),
		dsize: dsize,
		ctx:   ctx,
	}
	if aw, ok := st.(venti.AsyncWriter); ok {
		// A buffer is back in the pool as soon as its write is queued
		// (the writer copies it), so a few suffice.
		p.async, p.win = aw, newWindow(min(window, maxAsyncWindow))
		window, workers = 4, 0
		p.ref, _ = st.(venti.RefAsyncWriter)
	}
	p.free = make(chan []byte, window)
	for i := 0; i < window; i++ {
		p.free <- make([]byte, dsize)
	}
	p.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go p.work()
	}
	return p
}

func (p *writePool) work() {
	defer p.wg.Done()
	for j := range p.jobs {
		if err := p.ctx.Err(); err != nil {
			j.err = err
		} else {
			j.score, j.err = p.st.Write(p.ctx, j.t, j.data)
		}
		if j.buf != nil {
			p.free <- j.buf[:cap(j.buf)]
			j.buf = nil
		}
		close(j.done)
	}
}

// close stops the workers once queued jobs are done, and waits for a
// background Sync.
func (p *writePool) close() {
	close(p.jobs)
	p.wg.Wait()
	p.waitSync()
}

// getBuf returns a free dsize buffer, waiting for one if all are in flight.
func (p *writePool) getBuf(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// putBuf gives back a buffer that was not submitted.
func (p *writePool) putBuf(b []byte) { p.free <- b[:cap(b)] }

// streamWriter builds one stream (file data, directory entries or meta
// blocks). Methods other than close are called from one goroutine.
type streamWriter struct {
	ctx      context.Context
	cancel   context.CancelFunc
	pool     *writePool
	leaf     venti.Type
	dsize    int
	psize    int
	ppb      int
	pending  chan *writeJob
	done     chan struct{}
	err      error           // set by the collector before done is closed
	levels   [][]venti.Score // collector only: scores waiting at each level
	nleaves  uint64          // collector only
	size     uint64          // bytes added
	progress func(n int64)   // called by the collector as leaves complete

	// Asynchronous mode (pool.async set): the feeding goroutine hashes
	// each block, queues its write and builds the levels itself; the
	// writes' callbacks only report errors.
	errMu   sync.Mutex
	asyncEr error       // the first failed write, under errMu
	onWrite func(error) // w.writeDone, allocated once
}

// newStreamWriter starts a stream whose leaves have type leaf.
func newStreamWriter(ctx context.Context, pool *writePool, leaf venti.Type, psize int, progress func(int64)) *streamWriter {
	ctx, cancel := context.WithCancel(ctx)
	w := &streamWriter{
		ctx:      ctx,
		cancel:   cancel,
		pool:     pool,
		leaf:     leaf,
		dsize:    pool.dsize,
		psize:    psize,
		ppb:      psize / venti.ScoreSize,
		pending:  make(chan *writeJob, cap(pool.free)+1),
		done:     make(chan struct{}),
		progress: progress,
	}
	if pool.async != nil {
		close(w.done) // no collector
		w.onWrite = w.writeDone
		return w
	}
	go w.collect()
	return w
}

// writeDone is the callback of an asynchronous write.
func (w *streamWriter) writeDone(err error) {
	if err != nil {
		w.errMu.Lock()
		if w.asyncEr == nil {
			w.asyncEr = err
			w.cancel()
		}
		w.errMu.Unlock()
	}
	w.pool.win.release(1)
}

// asyncErr returns the first failed asynchronous write.
func (w *streamWriter) asyncErr() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.asyncEr
}

// readChunk is a read-ahead buffer of file data whose blocks are sent
// from it, without a copy, by a venti.RefAsyncWriter; refs counts the
// writes not yet sent (the vac process's memmove of every block into the
// connection's buffer was 5.6% of its CPU).
type readChunk struct {
	b       []byte
	refs    atomic.Int32
	release func() // refs.Add(-1), the writes' release, allocated once
}

// maxChunks is how many read-ahead chunks a pool keeps for reuse. The
// writes in flight are at most maxAsyncWindow blocks, but a block's
// chunk is free again as soon as the block has been sent, long before
// its reply: two chunks are in use at most times.
const maxChunks = 4

// nextChunk returns a read-ahead chunk of size bytes that no unsent write
// references: a kept one if one is free, else a new one (which replaces
// a busy one in the keep; that one is garbage once its writes are sent).
// Only the feeding goroutine calls it.
func (p *writePool) nextChunk(size int) *readChunk {
	for i := range p.chunks {
		c := p.chunks[(p.nextCh+i)%len(p.chunks)]
		if c.refs.Load() == 0 && len(c.b) == size {
			p.nextCh = (p.nextCh + i + 1) % len(p.chunks)
			return c
		}
	}
	c := &readChunk{b: make([]byte, size)}
	c.release = func() { c.refs.Add(-1) }
	if len(p.chunks) < maxChunks {
		p.chunks = append(p.chunks, c)
	} else {
		p.chunks[p.nextCh] = c
		p.nextCh = (p.nextCh + 1) % len(p.chunks)
	}
	return c
}

// writeAsync queues the write of data (already zero-truncated, not
// empty) of type t and returns its score. A non-nil ch is the read-ahead
// chunk data lies in, which data is sent from if the writer can.
func (w *streamWriter) writeAsync(t venti.Type, data []byte, ch *readChunk) (venti.Score, error) {
	if err := w.asyncErr(); err != nil {
		return venti.Score{}, err
	}
	s := venti.Sum(data)
	if err := w.pool.win.acquire(w.ctx); err != nil {
		if aerr := w.asyncErr(); aerr != nil {
			return venti.Score{}, aerr
		}
		return venti.Score{}, err
	}
	var err error
	if ch != nil && w.pool.ref != nil {
		ch.refs.Add(1)
		err = w.pool.ref.WriteAsyncRef(w.ctx, t, data, s, w.onWrite, ch.release)
	} else {
		err = w.pool.async.WriteAsync(w.ctx, t, data, s, w.onWrite)
	}
	if err != nil {
		w.pool.win.release(1)
		// A write that failed meanwhile cancelled w.ctx: its error, not
		// the cancellation it caused, is the one to report.
		if aerr := w.asyncErr(); aerr != nil {
			return venti.Score{}, aerr
		}
		return venti.Score{}, fmt.Errorf("write %v block: %w", t, err)
	}
	w.pool.bgSync(len(data))
	return s, nil
}

// bgSync counts n bytes queued and starts a background Sync when
// syncEvery have been queued since the last one and none is running. It
// only hastens the disk: the archive's own Sync, after every write has
// completed, is what makes it durable.
func (p *writePool) bgSync(n int) {
	p.unsynced += int64(n)
	if p.unsynced < syncEvery {
		return
	}
	if p.syncDone != nil {
		select {
		case err := <-p.syncDone:
			p.syncDone = nil
			if err != nil && p.syncErr == nil {
				p.syncErr = err
			}
		default:
			return
		}
	}
	sy, ok := p.st.(venti.Syncer)
	if !ok {
		return
	}
	p.unsynced = 0
	done := make(chan error, 1)
	p.syncDone = done
	go func() { done <- sy.Sync(p.ctx) }()
}

// waitSync waits for the background Sync, if one is running, and
// returns the first error a background Sync had.
func (p *writePool) waitSync() error {
	if p.syncDone != nil {
		if err := <-p.syncDone; err != nil && p.syncErr == nil {
			p.syncErr = err
		}
		p.syncDone = nil
	}
	return p.syncErr
}

// addData is addBlock for asynchronous mode, without a pool buffer: b (at
// most dsize bytes) may be reused on return.
func (w *streamWriter) addData(b []byte) error { return w.addDataFrom(b, nil) }

// addDataFrom is addData for b in the read-ahead chunk ch (nil: b may be
// reused on return), which must not be reused until no write references
// it (ch.refs).
func (w *streamWriter) addDataFrom(b []byte, ch *readChunk) error {
	w.size += uint64(len(b))
	var data []byte
	if !isZero(b, w.pool.zero) {
		data = venti.ZeroTruncate(w.leaf, b)
	}
	if len(data) == 0 {
		if err := w.pushZeros(1); err != nil {
			w.fail(err)
			return err
		}
	} else {
		s, err := w.writeAsync(w.leaf, data, ch)
		if err == nil {
			err = w.push(0, s)
		}
		if err != nil {
			w.fail(err)
			return err
		}
	}
	if w.progress != nil {
		w.progress(int64(len(b)))
	}
	return nil
}

// addBlock submits one leaf of n logical bytes held in buf (a buffer from
// the pool, which takes it back). All-zero leaves are not written.
func (w *streamWriter) addBlock(buf []byte, n int) error {
	if w.pool.async != nil {
		err := w.addData(buf[:n])
		w.pool.putBuf(buf)
		return err
	}
	w.size += uint64(n)
	j := &writeJob{t: w.leaf, n: int64(n), done: make(chan struct{})}
	var data []byte
	if !isZero(buf[:n], w.pool.zero) {
		data = venti.ZeroTruncate(w.leaf, buf[:n])
	}
	if len(data) == 0 {
		w.pool.putBuf(buf)
		j.zeros = 1
		close(j.done)
	} else {
		j.data, j.buf = data, buf
	}
	select {
	case w.pending <- j:
	case <-w.done:
		if j.buf != nil {
			w.pool.putBuf(j.buf)
		}
		return w.err
	}
	if j.buf == nil {
		return nil
	}
	select {
	case w.pool.jobs <- j:
		return nil
	case <-w.ctx.Done():
		// The collector will see the job never finishing; finish it here.
		w.pool.putBuf(j.buf)
		j.buf = nil
		j.err = w.ctx.Err()
		close(j.done)
		return j.err
	}
}

// addZeros records n whole all-zero leaves (a hole) without writing.
func (w *streamWriter) addZeros(n uint64) error {
	if n == 0 {
		return nil
	}
	w.size += n * uint64(w.dsize)
	if w.pool.async != nil {
		if err := w.pushZeros(n); err != nil {
			w.fail(err)
			return err
		}
		if w.progress != nil {
			w.progress(int64(n) * int64(w.dsize))
		}
		return nil
	}
	j := &writeJob{zeros: n, n: int64(n) * int64(w.dsize), done: make(chan struct{})}
	close(j.done)
	select {
	case w.pending <- j:
		return nil
	case <-w.done:
		return w.err
	}
}

// collect takes finished leaves in order and builds the pointer levels.
func (w *streamWriter) collect() {
	defer close(w.done)
	for j := range w.pending {
		if w.err != nil {
			continue // drain
		}
		select {
		case <-j.done:
		case <-w.ctx.Done():
			<-j.done
		}
		if j.err != nil {
			w.fail(fmt.Errorf("write %v block: %w", j.t, j.err))
			continue
		}
		if j.zeros > 0 {
			if err := w.pushZeros(j.zeros); err != nil {
				w.fail(err)
				continue
			}
		} else if err := w.push(0, j.score); err != nil {
			w.fail(err)
			continue
		}
		if w.progress != nil {
			w.progress(j.n)
		}
	}
}

func (w *streamWriter) fail(err error) {
	if w.err == nil {
		w.err = err
		w.cancel()
	}
}

// push appends score at level; a full pointer block is written and its
// score pushed one level up.
func (w *streamWriter) push(level int, s venti.Score) error {
	if level == 0 {
		w.nleaves++
	}
	for len(w.levels) <= level {
		w.levels = append(w.levels, make([]venti.Score, 0, w.ppb))
	}
	w.levels[level] = append(w.levels[level], s)
	if len(w.levels[level]) < w.ppb {
		return nil
	}
	return w.flush(level)
}

// pushZeros appends n zero leaves. Whole zero subtrees under a level-1
// pointer are pushed as one zero score at level 1.
func (w *streamWriter) pushZeros(n uint64) error {
	ppb := uint64(w.ppb)
	for n > 0 {
		if n >= ppb && (len(w.levels) == 0 || len(w.levels[0]) == 0) {
			w.nleaves += ppb
			n -= ppb
			if err := w.push(1, venti.ZeroScore); err != nil {
				return err
			}
			continue
		}
		if err := w.push(0, venti.ZeroScore); err != nil {
			return err
		}
		n--
	}
	return nil
}

// flush writes the scores pending at level as a pointer block of type
// PointerType(level+1) and pushes its score to level+1.
func (w *streamWriter) flush(level int) error {
	ss := w.levels[level]
	b := make([]byte, 0, len(ss)*venti.ScoreSize)
	for _, s := range ss {
		b = append(b, s[:]...)
	}
	w.levels[level] = ss[:0]
	t := venti.PointerType(level + 1)
	var s venti.Score
	var err error
	if data := venti.ZeroTruncate(t, b); w.pool.async != nil && len(data) > 0 {
		s, err = w.writeAsync(t, data, nil)
	} else {
		s, err = writeBlock(w.ctx, w.pool.st, t, data)
	}
	if err != nil {
		return err
	}
	return w.push(level+1, s)
}

// close waits for every leaf, writes the remaining pointer blocks and
// returns the stream's entry. Size is the number of bytes added; callers of
// directory streams fix it up.
func (w *streamWriter) close() (Entry, error) {
	close(w.pending)
	<-w.done
	defer w.cancel()
	if w.err != nil {
		return Entry{}, w.err
	}
	depth := depthFor(w.nleaves, w.ppb)
	if depth > 7 {
		return Entry{}, fmt.Errorf("stream of %d blocks needs depth %d, more than 7", w.nleaves, depth)
	}
	for level := 0; level < depth; level++ {
		if len(w.levels) > level && len(w.levels[level]) > 0 {
			if err := w.flush(level); err != nil {
				return Entry{}, err
			}
		}
	}
	if w.pool.async != nil {
		// Every write of the stream must have succeeded before its
		// entry is handed out.
		if err := w.pool.win.wait(w.ctx); err != nil {
			if aerr := w.asyncErr(); aerr != nil {
				return Entry{}, aerr
			}
			return Entry{}, err
		}
		if err := w.asyncErr(); err != nil {
			return Entry{}, err
		}
	}
	top := venti.ZeroScore
	if w.nleaves > 0 {
		if len(w.levels) <= depth || len(w.levels[depth]) != 1 {
			return Entry{}, fmt.Errorf("internal error: tree of %d leaves did not reduce to one score", w.nleaves)
		}
		top = w.levels[depth][0]
	}
	return Entry{
		PSize:  w.psize,
		DSize:  w.dsize,
		Active: true,
		Dir:    w.leaf == venti.DirType,
		Depth:  depth,
		Size:   w.size,
		Score:  top,
	}, nil
}

// abort stops the stream after an error on the feeding side. Writes
// already queued asynchronously finish or fail on their own.
func (w *streamWriter) abort() {
	w.cancel()
	close(w.pending)
	<-w.done
}

// writeBlock writes data (already zero-truncated) unless it is empty.
func writeBlock(ctx context.Context, st venti.Writer, t venti.Type, data []byte) (venti.Score, error) {
	if len(data) == 0 {
		return venti.ZeroScore, nil
	}
	s, err := st.Write(ctx, t, data)
	if err != nil {
		return s, fmt.Errorf("write %v block: %w", t, err)
	}
	return s, nil
}

// writeBytes stores data as a stream of leaf type t with dsize blocks and
// returns its entry (Size = len(data)).
func writeBytes(ctx context.Context, pool *writePool, t venti.Type, psize int, data []byte) (Entry, error) {
	w := newStreamWriter(ctx, pool, t, psize, nil)
	for off := 0; off < len(data); off += pool.dsize {
		n := min(pool.dsize, len(data)-off)
		buf, err := pool.getBuf(ctx)
		if err != nil {
			w.abort()
			return Entry{}, err
		}
		copy(buf, data[off:off+n])
		if err := w.addBlock(buf, n); err != nil {
			w.abort()
			return Entry{}, err
		}
	}
	return w.close()
}

// isZero reports whether b is all zero bytes, using zero (at least as long
// as b) for a fast comparison.
func isZero(b, zero []byte) bool { return bytes.Equal(b, zero[:len(b)]) }

// window bounds asynchronous requests in flight. When it is full, a
// waiter is woken once a quarter of it has drained, not on every
// completion: one wake-up per batch of blocks instead of one per block.
type window struct {
	mu   sync.Mutex
	n    int // requests in flight
	max  int
	low  int           // a full window wakes its waiters at this many
	wake chan struct{} // closed to wake the waiters; nil when none wait
}

func newWindow(size int) *window {
	size = max(size, 1)
	return &window{max: size, low: size * 3 / 4}
}

// acquire takes a slot, waiting while the window is full.
func (w *window) acquire(ctx context.Context) error {
	w.mu.Lock()
	for w.n >= w.max {
		if err := w.sleep(ctx); err != nil {
			return err
		}
	}
	w.n++
	w.mu.Unlock()
	return nil
}

// sleep waits, with w.mu held, for a wake-up and returns with w.mu held,
// or without it on ctx's error.
func (w *window) sleep(ctx context.Context) error {
	if w.wake == nil {
		w.wake = make(chan struct{})
	}
	ch := w.wake
	w.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	return nil
}

// release frees n slots.
func (w *window) release(n int) {
	w.mu.Lock()
	w.n -= n
	if w.wake != nil && (w.n <= w.low || w.n == 0) {
		close(w.wake)
		w.wake = nil
	}
	w.mu.Unlock()
}

// wait returns once nothing is in flight.
func (w *window) wait(ctx context.Context) error {
	w.mu.Lock()
	for w.n > 0 {
		if err := w.sleep(ctx); err != nil {
			return err
		}
	}
	w.mu.Unlock()
	return nil
}
