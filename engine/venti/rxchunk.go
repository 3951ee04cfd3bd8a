package venti

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
)

// rxChunkSize is the size of the chunks a served connection reads its
// requests into. It holds the largest frame with room to spare.
const rxChunkSize = 512 << 10

// A frame of MaxMessage bytes and its 4-byte size must fit in a chunk.
var _ [rxChunkSize - MaxMessage - 4]struct{}

// rxChunk is a buffer a connection's requests are read into. A Twrite's
// body goes to the worker that stores it as a slice of the chunk, without
// a copy (the copy of every received block into a buffer of its own was
// 5.5% of "venti serve"'s CPU under vac); refs counts the reader, while
// the chunk is the one it reads into, and each body not yet stored. The
// chunk goes back to its connection's free list when the last one lets go.
type rxChunk struct {
	b    []byte
	refs atomic.Int32
	free chan *rxChunk
}

// release drops a reference.
func (c *rxChunk) release() {
	if c.refs.Add(-1) == 0 {
		select {
		case c.free <- c:
		default: // enough spare chunks: this one is garbage
		}
	}
}

// rxFreeChunks is how many spare chunks a connection keeps.
const rxFreeChunks = 4

// rxReader reads a connection's frames into chunks. Only the connection's
// reader goroutine uses it.
type rxReader struct {
	br     *bufio.Reader // the handshake's reader: what it has buffered comes first
	c      net.Conn
	cur    *rxChunk // holds the unread bytes cur.b[lo:hi]
	lo, hi int
	free   chan *rxChunk
}

func newRxReader(br *bufio.Reader, c net.Conn) *rxReader {
	return &rxReader{br: br, c: c, free: make(chan *rxChunk, rxFreeChunks)}
}

// read reads what is available into p: first what the handshake's
// buffered reader holds, then straight from the connection.
func (x *rxReader) read(p []byte) (int, error) {
	if x.br.Buffered() > 0 {
		return x.br.Read(p)
	}
	return x.c.Read(p)
}

// ensure makes n bytes (at most rxChunkSize) unread and contiguous in
// x.cur, reading as needed. A clean end of stream before any unread byte
// gives io.EOF, a later one io.ErrUnexpectedEOF.
func (x *rxReader) ensure(n int) error {
	if x.hi-x.lo >= n {
		return nil
	}
	if x.cur == nil || len(x.cur.b)-x.lo < n {
		switch {
		case x.cur != nil && x.lo == x.hi && x.cur.refs.Load() == 1:
			// Nobody else uses the chunk: start again at its beginning.
			x.lo, x.hi = 0, 0
		default:
			// Move the unread bytes (part of a frame) to a fresh chunk.
			var c *rxChunk
			select {
			case c = <-x.free:
			default:
				c = &rxChunk{b: make([]byte, rxChunkSize), free: x.free}
			}
			c.refs.Store(1)
			k := 0
			if x.cur != nil {
				k = copy(c.b, x.cur.b[x.lo:x.hi])
				x.cur.release()
			}
			x.cur, x.lo, x.hi = c, 0, k
		}
	}
	for x.hi-x.lo < n {
		m, err := x.read(x.cur.b[x.hi:])
		x.hi += m
		if err != nil && x.hi-x.lo < n {
			if err == io.EOF && x.hi > x.lo {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// peek returns the next n unread bytes without consuming them; they are
// valid until the next call.
func (x *rxReader) peek(n int) ([]byte, error) {
	if err := x.ensure(n); err != nil {
		return nil, err
	}
	return x.cur.b[x.lo : x.lo+n : x.lo+n], nil
}

// next consumes the next n unread bytes and returns them, in x.cur: valid
// until the reader moves to another chunk, or as long as the caller holds
// a reference on x.cur (taken before the next call).
func (x *rxReader) next(n int) ([]byte, error) {
	b, err := x.peek(n)
	if err == nil {
		x.lo += n
	}
	return b, err
}

// frameSize reads a frame's size prefix of sl bytes (see readFrameSize).
func (x *rxReader) frameSize(sl int) (int, error) {
	b, err := x.next(sl)
	if err != nil {
		return 0, err
	}
	return frameSizeOf(b, sl), nil
}

// close drops the reader's reference on its chunk.
func (x *rxReader) close() {
	if x.cur != nil {
		x.cur.release()
		x.cur = nil
	}
}

// hasFrame reports whether a whole frame with a size prefix of sl bytes
// is buffered.
func (x *rxReader) hasFrame(sl int) bool {
	if x.cur == nil || x.hi-x.lo < sl {
		return false
	}
	return x.hi-x.lo >= sl+frameSizeOf(x.cur.b[x.lo:x.hi], sl)
}
