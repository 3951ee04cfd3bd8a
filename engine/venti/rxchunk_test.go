package venti

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
)

// TestRxReader reads frames of random sizes (up to the largest message)
// that straddle chunk boundaries, some of them bytes the handshake's
// buffered reader already holds, while holding references on some frames'
// chunks as workers do: a held frame must keep its bytes until released,
// and the stream's end must read as io.EOF between frames and as
// io.ErrUnexpectedEOF inside one.
func TestRxReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var frames [][]byte
	var stream bytes.Buffer
	for i := 0; i < 400; i++ {
		n := 2 + rng.IntN(9000)
		if i%50 == 7 {
			n = MaxMessage
		}
		f := make([]byte, n)
		for j := range f {
			f[j] = byte(rng.Uint32())
		}
		frames = append(frames, f)
		stream.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
		stream.Write(f)
	}
	stream.Write([]byte{0, 0, 1}) // a torn size prefix at the end

	for _, torn := range []bool{false, true} {
		a, b := net.Pipe()
		data := stream.Bytes()
		if !torn {
			data = data[:len(data)-3]
		}
		go func() {
			for len(data) > 0 { // uneven writes
				k := min(len(data), 1+rng.IntN(200000))
				if _, err := a.Write(data[:k]); err != nil {
					return
				}
				data = data[k:]
			}
			a.Close()
		}()
		br := bufio.NewReaderSize(b, ioBufSize)
		if _, err := br.Peek(1); err != nil { // the handshake's reader holds some bytes
			t.Fatal(err)
		}
		x := newRxReader(br, b)
		type held struct {
			c *rxChunk
			b []byte
			i int
		}
		var hold []held
		for i, want := range frames {
			n, err := x.frameSize(4)
			if err != nil || n != len(want) {
				t.Fatalf("frame %d: size %d, %v; want %d", i, n, err, len(want))
			}
			got, err := x.next(n)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("frame %d: %v, equal %v", i, err, bytes.Equal(got, want))
			}
			if i%3 == 0 {
				x.cur.refs.Add(1)
				hold = append(hold, held{x.cur, got, i})
			}
			if len(hold) > 40 || i == len(frames)-1 {
				for _, h := range hold {
					if !bytes.Equal(h.b, frames[h.i]) {
						t.Fatalf("held frame %d changed while held", h.i)
					}
					h.c.release()
				}
				hold = hold[:0]
			}
		}
		_, err := x.frameSize(4)
		if want := io.EOF; torn {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("torn end: %v, want %v", err, io.ErrUnexpectedEOF)
			}
		} else if err != want {
			t.Fatalf("clean end: %v, want %v", err, want)
		}
		x.close()
		b.Close()
	}
}
