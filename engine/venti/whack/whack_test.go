package whack

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// samples are blocks of the kinds venti sees: text, zeros, binary, runs
// long enough for the long-length codes, data with far matches.
func samples() map[string][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 8192)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	text := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 200))
	binary := make([]byte, 8192) // 16-byte records with a counter
	for i := range binary {
		binary[i] = byte(i / 16 * (i % 16))
	}
	far := append(bytes.Clone(random[:9000%8192]), random[:4096]...)
	mixed := make([]byte, 0, 56*1024)
	for len(mixed) < 56*1024 {
		mixed = append(mixed, []byte(fmt.Sprintf("line %d\t\x01\x02\xfe\xff %x\n", len(mixed), len(mixed)*31))...)
	}
	mixed = mixed[:56*1024]
	ctl := make([]byte, 600) // control and high bytes: the escaped literal codes
	for i := range ctl {
		ctl[i] = byte(r.IntN(40))
		if i%3 == 0 {
			ctl[i] = byte(128 + r.IntN(128))
		}
	}
	ctl = bytes.Repeat(ctl, 8)
	return map[string][]byte{
		"text":   text,
		"zeros":  make([]byte, 56*1024),
		"random": random,
		"binary": binary,
		"far":    far,
		"mixed":  mixed,
		"ctl":    ctl,
		"short":  []byte("abcabcabcabc"),
	}
}

// TestRoundTrip compresses and decompresses each sample; compressible ones
// must shrink and come back unchanged.
func TestRoundTrip(t *testing.T) {
	for name, src := range samples() {
		dst := make([]byte, len(src))
		n := Encode(dst, src)
		if name == "random" {
			if n >= 0 {
				t.Errorf("random data compressed to %d of %d bytes", n, len(src))
			}
			continue
		}
		if n <= 0 || n >= len(src) {
			t.Errorf("%s: compressed to %d of %d bytes", name, n, len(src))
			continue
		}
		out := make([]byte, len(src))
		m, err := Decode(out, dst[:n])
		if err != nil || m != len(src) || !bytes.Equal(out, src) {
			t.Errorf("%s: decode gave %d bytes, err %v, equal %v", name, m, err, bytes.Equal(out[:m], src))
		}
		t.Logf("%s: %d -> %d bytes", name, len(src), n)
	}
}

// TestDecodeErrors feeds malformed streams: each must fail cleanly.
func TestDecodeErrors(t *testing.T) {
	src := samples()["text"]
	enc := make([]byte, len(src))
	n := Encode(enc, src)
	enc = enc[:n]

	check := func(name string, dst, in []byte) {
		t.Helper()
		_, err := Decode(dst, in)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Output larger than the block.
	check("short dst", make([]byte, len(src)-1), enc)
	// A match as the very first item refers before the block.
	// (length code 10, offset class 0000, offset bits 00000: distance 1).
	check("offset before start", make([]byte, 100), []byte{0x80, 0x00})
	// Cutting the stream leaves an item unfinished or the block short.
	m, err := Decode(make([]byte, len(src)), enc[:n/2])
	if err == nil && m == len(src) {
		t.Error("half a stream decoded to the whole block")
	}
	// Long-length escape running off the end of the data.
	check("long length overrun", make([]byte, 100), []byte{0xff, 0xff, 0xff, 0xff})
	// Empty input is an empty block.
	if m, err := Decode(make([]byte, 10), nil); m != 0 || err != nil {
		t.Errorf("empty input: %d, %v", m, err)
	}
}

// TestEncoderReuse checks that one Encoder gives the same output as fresh
// ones, block after block.
func TestEncoderReuse(t *testing.T) {
	var e Encoder
	for name, src := range samples() {
		a, b := make([]byte, len(src)), make([]byte, len(src))
		na, nb := e.Encode(a, src), Encode(b, src)
		if na != nb || (na > 0 && !bytes.Equal(a[:na], b[:nb])) {
			t.Errorf("%s: reused encoder gave %d bytes, fresh %d", name, na, nb)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, src := range samples() {
		dst := make([]byte, len(src))
		if n := Encode(dst, src); n > 0 {
			f.Add(uint16(len(src)), dst[:min(n, 2000)])
		}
	}
	f.Add(uint16(10), []byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, size uint16, in []byte) {
		dst := make([]byte, size)
		n, err := Decode(dst, in)
		if n < 0 || n > len(dst) {
			t.Fatalf("Decode returned %d for a %d-byte block", n, len(dst))
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	for _, src := range samples() {
		f.Add(src[:min(len(src), 3000)])
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 64*1024 {
			return
		}
		dst := make([]byte, len(src))
		n := Encode(dst, src)
		if n < 0 {
			return
		}
		if n >= len(src) {
			t.Fatalf("Encode returned %d for %d bytes", n, len(src))
		}
		out := make([]byte, len(src))
		m, err := Decode(out, dst[:n])
		if err != nil || m != len(src) || !bytes.Equal(out, src) {
			t.Fatalf("round trip: %d bytes, %v", m, err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	src := samples()["mixed"]
	enc := make([]byte, len(src))
	n := Encode(enc, src)
	out := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Decode(out, enc[:n]); err != nil {
			b.Fatal(err)
		}
	}
}
