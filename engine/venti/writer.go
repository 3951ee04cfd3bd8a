package venti

import (
	"io"
	"runtime"
	"sync"
)

// connWriter batches the frames of one connection into large writes. Any
// goroutine queues frames; a writer goroutine of the connection's own
// writes out everything queued in one system call, and while that call
// runs the next batch gathers. Batches thus grow with load without any
// caller waiting for a flush or yielding in the hope of company, and a
// lone frame goes out at once.
type connWriter struct {
	w     io.Writer
	onErr func(error) // called once, from the writer goroutine, on a write error

	mu      sync.Mutex
	cond    sync.Cond // signalled when a batch has been written
	buf     []byte    // frames queued
	spare   []byte    // the other buffer, being written or idle
	busy    bool      // the writer goroutine has frames to write or is writing
	closed  bool
	err     error
	kick    chan struct{}
	stopped chan struct{}
}

// maxQueued bounds the bytes queued on a connection: a producer that finds
// more waits for the writer, so a peer that does not read holds back its
// senders instead of growing memory.
const maxQueued = 1 << 20

func newConnWriter(w io.Writer, onErr func(error)) *connWriter {
	cw := &connWriter{
		w:       w,
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
	cw.mu.Lock()
	for cw.err == nil && !cw.closed && len(cw.buf) >= maxQueued {
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
	cw.buf = append(cw.buf, head...)
	cw.buf = append(cw.buf, data...)
	if !cw.busy {
		cw.busy = true
		cw.kick <- struct{}{} // never blocks: the writer took the last kick before clearing busy
	}
	cw.mu.Unlock()
	return nil
}

// loop writes batches until close.
func (cw *connWriter) loop() {
	defer close(cw.stopped)
	for range cw.kick {
		// Let the goroutines already runnable queue their frames too:
		// one write of many frames costs far less than many writes.
		runtime.Gosched()
		for {
			cw.mu.Lock()
			if len(cw.buf) == 0 || cw.err != nil {
				cw.busy = false
				cw.cond.Broadcast()
				cw.mu.Unlock()
				break
			}
			b := cw.buf
			cw.buf = cw.spare[:0]
			cw.cond.Broadcast() // room again for producers held back by maxQueued
			cw.mu.Unlock()
			_, err := cw.w.Write(b)
			cw.mu.Lock()
			cw.spare = b[:0]
			if err != nil && cw.err == nil {
				cw.err = err
			}
			cw.mu.Unlock()
			if err != nil {
				cw.onErr(err)
			}
		}
	}
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
}
