package venti

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
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
