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

// hasFrame says whether a whole frame is buffered, for 2- and 4-byte size
// prefixes, without reading.
func TestRxReaderHasFrame(t *testing.T) {
	for _, sl := range []int{2, 4} {
		var stream []byte
		size := func(n int) []byte {
			if sl == 2 {
				return binary.BigEndian.AppendUint16(nil, uint16(n))
			}
			return binary.BigEndian.AppendUint32(nil, uint32(n))
		}
		stream = append(stream, size(3)...)
		stream = append(stream, "abc"...)
		stream = append(stream, size(5)...)
		stream = append(stream, "de"...) // the second frame is cut short
		a, b := net.Pipe()
		go func() { a.Write(stream); a.Close() }()
		x := newRxReader(bufio.NewReader(b), b)
		if x.hasFrame(sl) {
			t.Fatalf("size %d: a frame before anything was read", sl)
		}
		if _, err := x.peek(sl); err != nil {
			t.Fatal(err)
		}
		for x.hi-x.lo < len(stream) { // read the rest of what was sent
			if err := x.ensure(x.hi - x.lo + 1); err != nil {
				break
			}
		}
		if !x.hasFrame(sl) {
			t.Fatalf("size %d: the first frame is buffered but not seen", sl)
		}
		if n, err := x.frameSize(sl); err != nil || n != 3 {
			t.Fatalf("size %d: frame size %d, %v", sl, n, err)
		}
		if _, err := x.next(3); err != nil {
			t.Fatal(err)
		}
		if x.hasFrame(sl) {
			t.Fatalf("size %d: a torn frame seen as whole", sl)
		}
		x.close()
		b.Close()
	}
}
