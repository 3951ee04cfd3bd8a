package store

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"

	"gridlord/engine/venti"
)

// TestLooksRandom: random blocks of every size looksRandom judges are
// stored raw without trying S2; blocks S2 would shrink by the 1/16
// compressBlock asks for are not taken for random.
func TestLooksRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{sniffMin, 3000, 3072, 4096, 8192, 8193, 16384, venti.MaxBlock} {
		// A random block not taken for random only costs an S2 attempt:
		// a few may be.
		b := make([]byte, size)
		missed := 0
		for i := 0; i < 500; i++ {
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if !looksRandom(b) {
				missed++
			}
		}
		if missed > 5 {
			t.Fatalf("%d of 500 random blocks of %d bytes not taken for random", missed, size)
		}
	}
	if looksRandom(make([]byte, sniffMin-1)) {
		t.Fatal("a block below sniffMin judged")
	}
	// Compressible blocks: each must compress enough to be stored
	// compressed (checked, so the cases stay meaningful), and must not
	// look random.
	cases := map[string]func(b []byte){
		"10% zeros": func(b []byte) {
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			clear(b[len(b)*9/10:])
		},
		"zeros between random runs": func(b []byte) {
			for j := range b {
				if j%512 < 448 {
					b[j] = byte(rng.Uint32())
				} else {
					b[j] = 0
				}
			}
		},
		"8-byte counters": func(b []byte) {
			x := rng.Uint64() >> 40
			for j := 0; j+8 <= len(b); j += 8 {
				binary.LittleEndian.PutUint64(b[j:], x)
				x += uint64(rng.IntN(200))
			}
		},
		"text": func(b []byte) {
			copy(b, strings.Repeat("the venti store keeps blocks by score; ", len(b)))
		},
	}
	for name, fill := range cases {
		for _, size := range []int{sniffMin, 8192, venti.MaxBlock} {
			b := make([]byte, size)
			fill(b)
			enc := s2.Encode(nil, b)
			if compPrefix+len(enc) > len(b)-len(b)/16 {
				t.Fatalf("%s, %d bytes: S2 keeps %d bytes, not a case for this test", name, size, len(enc))
			}
			if looksRandom(b) {
				t.Errorf("%s, %d bytes: taken for random", name, size)
			}
			if flags, _ := compressBlock(make([]byte, compBufSize), b); flags != flagS2 {
				t.Errorf("%s, %d bytes: stored with flags %d, want S2", name, size, flags)
			}
		}
	}
}

func BenchmarkLooksRandom(b *testing.B) {
	d := make([]byte, 8192)
	rand.NewChaCha8([32]byte{3}).Read(d)
	dst := make([]byte, compBufSize)
	b.Run("sniff", func(b *testing.B) {
		b.SetBytes(int64(len(d)))
		for i := 0; i < b.N; i++ {
			looksRandom(d)
		}
	})
	b.Run("s2", func(b *testing.B) {
		b.SetBytes(int64(len(d)))
		for i := 0; i < b.N; i++ {
			s2.Encode(dst, d)
		}
	})
}
