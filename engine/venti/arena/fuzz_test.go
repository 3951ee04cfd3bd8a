package arena

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"gridlord/engine/venti"
)

// smallArenas returns tiny arenas named a0 for fuzz seeds (small inputs
// keep the fuzzer's minimisation fast): block size 512, 3 KiB each, with a
// few short clumps, compressed and not, version 5 with a clump past the
// trailer and version 4 sealed.
func smallArenas() [][]byte {
	blocks := []specBlock{
		{venti.DataType, []byte("hello hello hello hello hello hello world")},
		{venti.DirType, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 251, 252}},
		{venti.PointerType0, bytes.Repeat([]byte{0x9c}, 200)},
		{venti.RootType, []byte("root")},
		{venti.DataType, []byte("tail clump, written after the trailer")},
	}
	var out [][]byte
	for _, sa := range []specArena{
		{name: "a0", version: 5, blocks: blocks[:2], tail: blocks[4:]},
		{name: "a0", version: 4, blocks: blocks[2:4], sealed: true},
	} {
		p := buildPartition(512, 3<<10, []specArena{sa})
		out = append(out, p[len(p)-3<<10:])
	}
	return out
}

// FuzzArena places arbitrary bytes as the single arena of a partition
// with block size 512 (the smallest venti allows, to keep inputs short),
// then opens it, walks it with data, decodes every clump and serves it
// read-only. Nothing may panic or allocate without bound, and every block
// decoded or served must hash to its score. The partition header and map
// have their own targets (FuzzHeaders, FuzzMap). Import is left out: its
// goroutines make coverage vary from run to run, which sends the fuzzer
// into endless minimisation; it reads through the same Walk and Decode.
func FuzzArena(f *testing.F) {
	for _, a := range smallArenas() {
		f.Add(a)
		f.Add(a[:len(a)-700]) // truncated: no trailer
	}
	f.Fuzz(func(t *testing.T, arena []byte) {
		if len(arena) > 1<<20 {
			return
		}
		data := fuzzPartition(arena)
		r := afterBlank(data)
		size := int64(PartBlank + len(data))
		ctx := context.Background()
		part, err := Open(r, size)
		if err != nil {
			t.Fatalf("open: %v", err) // the header and map are sound
		}
		for _, a := range part.Arenas {
			err := a.Walk(ctx, Position{}, true, func(e *Entry) error {
				if e.Err == nil {
					if d, err := e.Header.Decode(e.Stored, nil); err == nil && venti.Sum(d) != e.Header.Score {
						t.Fatalf("decoded block does not hash to its score")
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("walk of in-memory bytes failed: %v", err)
			}
		}
		rs, err := OpenStore(ctx, r, size)
		if err != nil {
			t.Fatalf("OpenStore failed where Open worked: %v", err)
		}
		for k := range rs.index {
			if d, err := rs.Read(ctx, k.s, k.t, venti.MaxBlock); err == nil && venti.Sum(d) != k.s {
				t.Fatalf("served block does not hash to its score")
			}
		}
	})
}

// fuzzPartition returns the bytes after PartBlank of a partition with block
// size 512 whose map lists one arena "a0" made of arena.
func fuzzPartition(arena []byte) []byte {
	const bs = 512
	base := tabBase(bs) + bs
	b := make([]byte, base-PartBlank, base-PartBlank+int64(len(arena)))
	be.PutUint32(b, partMagic)
	be.PutUint32(b[4:], partVersion)
	be.PutUint32(b[8:], bs)
	be.PutUint32(b[12:], uint32(base))
	copy(b[tabBase(bs)-PartBlank:], fmt.Sprintf("1\na0\t%d\t%d\n", base, base+int64(len(arena))))
	return append(b, arena...)
}

// afterBlank is an io.ReaderAt over PartBlank zero bytes followed by data,
// so fuzz inputs need not carry the blank 256 KiB.
type afterBlank []byte

func (a afterBlank) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		o := off + int64(n)
		switch {
		case o < PartBlank:
			m := min(int64(len(p)-n), PartBlank-o)
			clear(p[n : n+int(m)])
			n += int(m)
		case o-PartBlank < int64(len(a)):
			n += copy(p[n:], a[o-PartBlank:])
		default:
			return n, io.EOF
		}
	}
	return n, nil
}

// FuzzMap parses arbitrary arena map text.
func FuzzMap(f *testing.F) {
	f.Add([]byte("3\narenas000\t794624\t9183232\narenas001\t9183232\t17571840\narenas002\t17571840\t25165824\n\x00junk"))
	f.Add([]byte("1\na\t1\t0\n"))
	f.Add([]byte("99999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMap(b)
		if err != nil {
			return
		}
		for _, e := range m {
			if e.stop < e.start || checkName(e.name) != nil {
				t.Fatalf("accepted bad entry %+v", e)
			}
		}
	})
}

// FuzzHeaders parses arbitrary bytes as partition header, arena head,
// arena trailer and clump header.
func FuzzHeaders(f *testing.F) {
	a := smallArenas()[0]
	f.Add(fuzzPartition(a)[:512])
	f.Add(a[:512])
	f.Add(a[len(a)-512:])
	f.Add(a[512:1024])
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePartHeader(b)
		parseHead(b)
		parseTail(b)
		if len(b) >= ClumpSize {
			c := parseClump(b)
			if c.check() == nil {
				c.Decode(b[ClumpSize:][:min(len(b)-ClumpSize, int(c.Size))], nil)
			}
		}
	})
}
