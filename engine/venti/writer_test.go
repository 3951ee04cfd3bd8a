package venti

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"gridlord/testing/testenv"
)

// Frames queued with and without owned data come out in order and
// intact, and the owned buffers go back to the pool.
func TestConnWriterOwned(t *testing.T) {
	for _, overTCP := range []bool{false, true} {
		var w interface {
			Write([]byte) (int, error)
		}
		var got bytes.Buffer
		var done chan struct{}
		if overTCP {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done = make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				got.ReadFrom(c)
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			w = c
		} else {
			w = &got
		}
		var pool sync.Pool
		var back sync.Map
		pool.New = func() any { b := make([]byte, 8192); return &b }
		cw := newConnWriter(w, &pool, func(err error) { t.Error(err) })
		var want bytes.Buffer
		for i := 0; i < 2000; i++ {
			head := []byte(fmt.Sprintf("<head %d>", i))
			if i%3 == 0 {
				data := []byte(fmt.Sprintf("[small %d]", i))
				want.Write(head)
				want.Write(data)
				if err := cw.queue(head, data); err != nil {
					t.Fatal(err)
				}
				continue
			}
			b := pool.Get().(*[]byte)
			n := 5000 + i
			data := (*b)[:n%8192]
			for k := range data {
				data[k] = byte(i + k)
			}
			back.Store(b, true)
			want.Write(head)
			want.Write(data)
			if err := cw.queueOwned(head, data, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := cw.flush(); err != nil {
			t.Fatal(err)
		}
		cw.close()
		if overTCP {
			w.(net.Conn).Close()
			<-done
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			n := 0
			for n < min(got.Len(), want.Len()) && got.Bytes()[n] == want.Bytes()[n] {
				n++
			}
			t.Fatalf("tcp %v: %d bytes out, want %d; first difference at %d", overTCP, got.Len(), want.Len(), n)
		}
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct {
	mu sync.Mutex
	n  int
}

func (f *failWriter) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(b) > f.n {
		return 0, errors.New("write failed")
	}
	f.n -= len(b)
	return len(b), nil
}

// Frames queued with queueRef come out intact, in order with the others,
// and each one's release is called exactly once: after it is written, or,
// on a failed connection, by then or at the latest by close; never while
// the writer may still read the data.
func TestConnWriterRef(t *testing.T) {
	for _, fail := range []bool{false, true} {
		var got bytes.Buffer
		var w interface{ Write([]byte) (int, error) } = &got
		if fail {
			w = &failWriter{n: 100000}
		}
		cw := newConnWriter(w, nil, func(error) {})
		var want bytes.Buffer
		const frames = 1000
		var released [frames]atomic.Int32
		datas := make([][]byte, frames)
		for i := 0; i < frames; i++ {
			head := []byte(fmt.Sprintf("<head %d>", i))
			if i%4 == 0 {
				data := []byte(fmt.Sprintf("[copied %d]", i))
				want.Write(head)
				want.Write(data)
				cw.queue(head, data)
				continue
			}
			data := make([]byte, 3000+i)
			for k := range data {
				data[k] = byte(i * k)
			}
			datas[i] = data
			want.Write(head)
			want.Write(data)
			cw.queueRef(head, data, func() {
				released[i].Add(1)
				clear(datas[i]) // the writer must be done with it
			})
		}
		cw.flush()
		cw.close()
		for i := range released {
			if n := released[i].Load(); datas[i] != nil && n != 1 {
				t.Fatalf("fail %v: frame %d released %d times", fail, i, n)
			}
		}
		if !fail && !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%d bytes out, want %d (or different)", got.Len(), want.Len())
		}
	}
}

// Frames queued during a hold wait for writeHeld (once enough have
// gathered) or unhold, which write them in the caller's goroutine, in
// order; without a hold the writer goroutine writes them.
func TestConnWriterHold(t *testing.T) {
	var got testenv.SyncBuffer
	cw := newConnWriter(&got, nil, func(err error) { t.Error(err) })
	defer cw.close()
	cw.hold()
	if err := cw.queue([]byte("one,"), []byte("1;")); err != nil {
		t.Fatal(err)
	}
	if err := cw.queue([]byte("two,"), nil); err != nil {
		t.Fatal(err)
	}
	cw.writeHeld(1 << 20) // not that much queued: nothing written
	if n := got.Len(); n != 0 {
		t.Fatalf("held frames written early: %q", got.String())
	}
	cw.writeHeld(len("one,1;two,"))
	if s := got.String(); s != "one,1;two," {
		t.Fatalf("after writeHeld: %q", s)
	}
	if err := cw.queue([]byte("three;"), nil); err != nil {
		t.Fatal(err)
	}
	if n := got.Len(); n != len("one,1;two,") {
		t.Fatalf("hold ended by writeHeld: %q", got.String())
	}
	cw.unhold()
	if s := got.String(); s != "one,1;two,three;" {
		t.Fatalf("after unhold: %q", s)
	}
	if err := cw.queue([]byte("four;"), nil); err != nil {
		t.Fatal(err)
	}
	if err := cw.flush(); err != nil {
		t.Fatal(err)
	}
	if s := got.String(); s != "one,1;two,three;four;" {
		t.Fatalf("after the hold: %q", s)
	}
}

// A hold never stops the queue: once half its room is used, the writer
// goroutine writes anyway, so producers that fill it (other goroutines,
// or the holder itself) do not wait for an unhold that is not coming.
func TestConnWriterHoldFull(t *testing.T) {
	var got testenv.SyncBuffer
	cw := newConnWriter(&got, nil, func(err error) { t.Error(err) })
	defer cw.close()
	cw.hold()
	frame := bytes.Repeat([]byte{'x'}, 4096)
	n := 3 * maxQueued / len(frame) // three times the queue's room
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := cw.queue(frame, nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cw.unhold()
	if err := cw.flush(); err != nil {
		t.Fatal(err)
	}
	if got.Len() != n*len(frame) {
		t.Fatalf("wrote %d bytes, want %d", got.Len(), n*len(frame))
	}
}
