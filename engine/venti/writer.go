package venti

import (
	"io"
	"net"
	"runtime"
	"sync"
)

// connWriter batches the frames of one connection into large writes. Any
// goroutine queues frames; a writer goroutine of the connection's own
// writes out everything queued in one system call, and while that call
// runs the next batch gathers. Batches thus grow with load without any
// caller waiting for a flush or yielding in the hope of company, and a
// lone frame goes out at once. A goroutine that makes a burst of frames
// may instead write them itself (hold, writeHeld, unhold).
type connWriter struct {
	w     io.Writer
	onErr func(error) // called once, from the writer goroutine, on a write error

	mu    sync.Mutex
	cond  sync.Cond // signalled when a batch has been written
	buf   []byte    // frames queued
	spare []byte    // the other buffer, being written or idle
	busy  bool      // the writer goroutine has frames to write or is writing

	closed  bool
	held    bool // hold: frames wait for unhold instead of waking the writer goroutine
	err     error
	kick    chan struct{}
	stopped chan struct{}

	// Frames whose data the writer sends from the queuer's buffer
	// (queueOwned, queueRef): the batch is then written with writev, as
	// pieces of buf and owned buffers in order, and the owned buffers go
	// back to pool (or their release is called) once written.
	pool       *sync.Pool
	pieces     []piece    // nil while the batch has no owned data
	owned      []ownedBuf // buffers to give back after the batch
	ownedBytes int
	sparePiece []piece // slices of a written batch, for the next one
	spareOwned []ownedBuf
}

// ownedBuf is the buffer of a frame sent from it: a buffer of the
// writer's pool (queueOwned), or one whose release function is called
// once it has been sent (queueRef).
type ownedBuf struct {
	b       *[]byte
	release func()
}

// giveBack returns o to the pool or releases it.
func (cw *connWriter) giveBack(o ownedBuf) {
	if o.release != nil {
		o.release()
	} else {
		cw.pool.Put(o.b)
	}
}

// piece is a stretch of a batch: buf[lo:hi], or ext when it is set.
type piece struct {
	lo, hi int
	ext    []byte
}

// maxQueued bounds the bytes queued on a connection: a producer that finds
// more waits for the writer, so a peer that does not read holds back its
// senders instead of growing memory.
const maxQueued = 1 << 20

// newConnWriter starts the writer of w. pool is where the buffers of
// queueOwned frames go back (nil if queueOwned is not used).
func newConnWriter(w io.Writer, pool *sync.Pool, onErr func(error)) *connWriter {
	cw := &connWriter{
		w:       w,
		pool:    pool,
		onErr:   onErr,
		buf:     make([]byte, 0, ioBufSize),
		spare:   make([]byte, 0, ioBufSize),
		kick:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	cw.cond.L = &cw.mu
	go cw.loop()
	return cw
}

// queue appends one frame, head then data, and makes sure the writer
// goroutine will write it. It returns the connection's write error, if a
// write has failed; the frame is then dropped.
func (cw *connWriter) queue(head, data []byte) error {
	if err := cw.lockRoom(); err != nil {
		return err
	}
	old := len(cw.buf)
	cw.buf = append(cw.buf, head...)
	cw.buf = append(cw.buf, data...)
	cw.extendLocked(old)
	cw.kickLocked()
	cw.mu.Unlock()
	return nil
}

// lockRoom takes cw.mu once the queue has room for another frame, or
// returns (without the lock) the connection's write error, or
// io.ErrClosedPipe once it is closed.
func (cw *connWriter) lockRoom() error {
	cw.mu.Lock()
	for cw.err == nil && !cw.closed && len(cw.buf)+cw.ownedBytes >= maxQueued {
		cw.cond.Wait()
	}
	if cw.err != nil || cw.closed {
		err := cw.err
		cw.mu.Unlock()
		if err == nil {
			err = io.ErrClosedPipe
		}
		return err
	}
	return nil
}

// queueOwned is queue for a frame whose data is sent from data itself,
// without a copy: data must lie in *b, a buffer of cw.pool, which the
// writer puts back once the frame is written (or the connection has
// failed). On error b goes back at once.
func (cw *connWriter) queueOwned(head, data []byte, b *[]byte) error {
	return cw.queueBuf(head, data, ownedBuf{b: b})
}

// queueRef is queue for a frame whose data is sent from data itself,
// without a copy: data must not change until release has been called,
// which the writer does once the frame is written, or once the frame is
// dropped (a failed connection; at the latest when the writer is
// closed). On error release is called at once.
func (cw *connWriter) queueRef(head, data []byte, release func()) error {
	return cw.queueBuf(head, data, ownedBuf{release: release})
}

func (cw *connWriter) queueBuf(head, data []byte, o ownedBuf) error {
	if err := cw.lockRoom(); err != nil {
		cw.giveBack(o)
		return err
	}
	if cw.pieces == nil {
		cw.pieces = append(cw.sparePiece[:0], piece{lo: 0, hi: len(cw.buf)})
		cw.owned = cw.spareOwned[:0]
		cw.sparePiece, cw.spareOwned = nil, nil
	}
	old := len(cw.buf)
	cw.buf = append(cw.buf, head...)
	cw.extendLocked(old)
	cw.pieces = append(cw.pieces, piece{ext: data})
	cw.owned = append(cw.owned, o)
	cw.ownedBytes += len(data)
	cw.kickLocked()
	cw.mu.Unlock()
	return nil
}

// extendLocked makes the pieces, if any, cover buf's bytes from old on,
// just appended.
func (cw *connWriter) extendLocked(old int) {
	if cw.pieces == nil || len(cw.buf) == old {
		return
	}
	if last := &cw.pieces[len(cw.pieces)-1]; last.ext == nil {
		last.hi = len(cw.buf)
		return
	}
	cw.pieces = append(cw.pieces, piece{lo: old, hi: len(cw.buf)})
}

// kickLocked makes sure the writer goroutine will write what is queued,
// unless a holder will (hold) and the queue is not half full: it is
// always written before anyone waits for room (lockRoom).
func (cw *connWriter) kickLocked() {
	if cw.held && len(cw.buf)+cw.ownedBytes < maxQueued/2 {
		return
	}
	if !cw.busy {
		cw.busy = true
		cw.kick <- struct{}{} // never blocks: the writer took the last kick before clearing busy
	}
}

// loop writes batches until close.
func (cw *connWriter) loop() {
	defer close(cw.stopped)
	for range cw.kick {
		// Let the goroutines already runnable queue their frames too:
		// one write of many frames costs far less than many writes.
		runtime.Gosched()
		cw.writeAll()
	}
}

// writeAll writes batches until none is queued, then clears busy.
func (cw *connWriter) writeAll() {
	for {
		cw.mu.Lock()
		if len(cw.buf) == 0 || cw.err != nil {
			cw.busy = false
			cw.cond.Broadcast()
			cw.mu.Unlock()
			break
		}
		b := cw.buf
		pieces, owned := cw.pieces, cw.owned
		cw.buf = cw.spare[:0]
		cw.pieces, cw.owned, cw.ownedBytes = nil, nil, 0
		cw.cond.Broadcast() // room again for producers held back by maxQueued
		cw.mu.Unlock()
		var err error
		if pieces == nil {
			_, err = cw.w.Write(b)
		} else {
			bufs := make(net.Buffers, 0, len(pieces))
			for _, p := range pieces {
				if p.ext != nil {
					bufs = append(bufs, p.ext)
				} else if p.hi > p.lo {
					bufs = append(bufs, b[p.lo:p.hi])
				}
			}
			_, err = bufs.WriteTo(cw.w)
			for i, o := range owned {
				cw.giveBack(o)
				owned[i] = ownedBuf{}
			}
		}
		cw.mu.Lock()
		cw.spare = b[:0]
		if pieces != nil {
			// Reused by the next batch with owned data (queueOwned
			// takes them and leaves nil).
			cw.sparePiece, cw.spareOwned = pieces[:0], owned[:0]
		}
		if err != nil && cw.err == nil {
			cw.err = err
		}
		cw.mu.Unlock()
		if err != nil {
			cw.onErr(err)
		}
	}
}

// hold makes the frames queued from now on wait for unhold instead of
// waking the writer goroutine (up to half the queue's room): a goroutine
// that queues a burst of frames and then writes them itself (unhold)
// hands nothing to another goroutine. A served connection's reader does
// so with the replies it makes itself: woken per burst, the writer
// goroutine ran on the other core, where the client was (unvac of 256
// MiB to /dev/null from a "venti serve" on 2 cores, the client on one,
// median of 8 alternating runs: 0.555 s with inline reads handed to the
// writer goroutine, 0.445 s with the reader writing them).
func (cw *connWriter) hold() {
	cw.mu.Lock()
	cw.held = true
	cw.mu.Unlock()
}

// writeHeld writes what is queued, in the caller's goroutine, when it is
// holding (hold) and at least n bytes are queued, unless the writer
// goroutine is already at it; the hold goes on.
func (cw *connWriter) writeHeld(n int) {
	cw.mu.Lock()
	if !cw.held || cw.busy || len(cw.buf)+cw.ownedBytes < n || cw.err != nil || cw.closed {
		cw.mu.Unlock()
		return
	}
	cw.busy = true
	cw.mu.Unlock()
	cw.writeAll()
}

// unhold ends a hold and writes what is queued, in the caller's
// goroutine, unless the writer goroutine is already at it. The write
// blocks while the peer does not read.
func (cw *connWriter) unhold() {
	cw.mu.Lock()
	cw.held = false
	if cw.busy || len(cw.buf) == 0 || cw.err != nil || cw.closed {
		cw.mu.Unlock()
		return
	}
	cw.busy = true
	cw.mu.Unlock()
	cw.writeAll()
}

// flush waits until everything queued so far has been written (or a write
// has failed) and returns the write error, if any.
func (cw *connWriter) flush() error {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	for cw.busy && cw.err == nil {
		cw.cond.Wait()
	}
	return cw.err
}

// close stops the writer goroutine after it has written what is queued.
// Later queues fail. close is idempotent and waits for the goroutine.
func (cw *connWriter) close() {
	cw.mu.Lock()
	if !cw.closed {
		cw.closed = true
		close(cw.kick)
	}
	cw.cond.Broadcast()
	cw.mu.Unlock()
	<-cw.stopped
	// Frames a failed write left queued are never sent: give their
	// buffers back (the writer goroutine has stopped).
	cw.mu.Lock()
	owned := cw.owned
	cw.owned, cw.pieces, cw.ownedBytes = nil, nil, 0
	cw.mu.Unlock()
	for _, o := range owned {
		cw.giveBack(o)
	}
}
