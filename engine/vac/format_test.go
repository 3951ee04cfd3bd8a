package vac

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"gridlord/engine/venti"
)

// Golden byte layouts, written out by hand from the spec (sections 2.1,
// 2.2, 2.3, 3.4, 3.5), not produced by the code under test.

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fill(b byte) venti.Score {
	var s venti.Score
	for i := range s {
		s[i] = b
	}
	return s
}

func TestEntryGolden(t *testing.T) {
	e := Entry{Gen: 0x01020304, PSize: 8180, DSize: 8192, Active: true, Dir: true, Depth: 3, Size: 0x0000a1b2c3d4e5f6 & MaxStreamSize, Score: fill(0x11)}
	want := unhex(t, `
		01020304   1ff4 2000   0f   0000000000   a1b2c3d4e5f6
		1111111111111111111111111111111111111111`)
	// flags: active 0x01 | dir 0x02 | depth 3<<2 = 0x0c -> 0x0f
	got := e.Pack(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("Pack:\n got %x\nwant %x", got, want)
	}
	back, err := UnpackEntry(want)
	if err != nil || back != e {
		t.Fatalf("UnpackEntry: %+v, %v; want %+v", back, err, e)
	}
	// Flag bits 5-7 are ignored when reading (p9p's Local bit) and never
	// written.
	local := append([]byte(nil), want...)
	local[8] |= 0x20
	back, err = UnpackEntry(local)
	if err != nil || back != e {
		t.Fatalf("UnpackEntry with Local: %+v, %v", back, err)
	}
	if got := back.Pack(nil); got[8] != 0x0f {
		t.Fatalf("flags packed as %#x", got[8])
	}
	// Inactive entries are taken as they are; active ones need sane sizes.
	if _, err := UnpackEntry(make([]byte, 40)); err != nil {
		t.Errorf("inactive zero entry: %v", err)
	}
	bad := append([]byte(nil), want...)
	bad[4], bad[5] = 0, 10 // psize 10
	if _, err := UnpackEntry(bad); err == nil {
		t.Errorf("psize 10 accepted")
	}
	// Old vac: active, sizes 0, zero score -> 4096/4096.
	old := unhex(t, `00000000 0000 0000 01 0000000000 000000000000 da39a3ee5e6b4b0d3255bfef95601890afd80709`)
	if e, err := UnpackEntry(old); err != nil || e.PSize != 4096 || e.DSize != 4096 {
		t.Errorf("old empty entry: %+v, %v", e, err)
	}
}

func TestRootGolden(t *testing.T) {
	r := Root{Type: "vac", Score: fill(0x22), BlockSize: 8192, Prev: fill(0x33)}
	want := make([]byte, 300)
	copy(want, unhex(t, "0002")) // version 2
	copy(want[130:], "vac")      // type at 130, name at 2 empty
	copy(want[258:], bytes.Repeat([]byte{0x22}, 20))
	copy(want[278:], unhex(t, "2000")) // blocksize 8192
	copy(want[280:], bytes.Repeat([]byte{0x33}, 20))
	got, err := r.Pack()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Pack: %x, %v\nwant %x", got, err, want)
	}
	back, err := UnpackRoot(want)
	if err != nil || back != r {
		t.Fatalf("UnpackRoot: %+v, %v", back, err)
	}
	for name, b := range map[string][]byte{
		"short":     want[:299],
		"version 3": append(unhex(t, "0003"), want[2:]...),
		"bsize 255": append(append(append([]byte(nil), want[:278]...), 0x00, 0xff), want[280:]...),
	} {
		if _, err := UnpackRoot(b); err == nil {
			t.Errorf("UnpackRoot accepted %s root", name)
		}
	}
}

func TestDirEntryGolden(t *testing.T) {
	d := DirEntry{Elem: "ab", Entry: 2, Qid: 3, UID: "u", GID: "g", MTime: 5, CTime: 7, ATime: 8, Mode: 0o644}
	want := unhex(t, `
		1c4d9072 0008 0002 6162 00000002 0000000000000003
		0001 75 0001 67 0000
		00000005 00000000 00000007 00000008 000001a4`)
	got, err := d.Pack(nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Pack:\n got %x\nwant %x", got, want)
	}
	back, err := UnpackDirEntry(want)
	d.MEntry, d.Version = 3, 8
	if err != nil || back != d {
		t.Fatalf("UnpackDirEntry: %+v, %v", back, err)
	}
	// The root record with QidSpace {0, 14}.
	root := DirEntry{Elem: "/", UID: "vac", GID: "vac", Mode: ModeDir | 0o777, QidSpace: true, QidMax: 14}
	want = unhex(t, `
		1c4d9072 0008 0001 2f 00000000 0000000000000000
		0003 766163 0003 766163 0000
		00000000 00000000 00000000 00000000 000081ff
		03 0010 0000000000000000 000000000000000e`)
	if got, _ := root.Pack(nil); !bytes.Equal(got, want) {
		t.Fatalf("root Pack:\n got %x\nwant %x", got, want)
	}
	// Version 9 (fossil) with explicit gen/mentry/mgen.
	v9 := unhex(t, `
		1c4d9072 0009 0001 78 00000004 00000001 00000009 00000002 0000000000000007
		0000 0000 0000
		00000001 00000002 00000003 00000004 00008000`)
	d9, err := UnpackDirEntry(v9)
	if err != nil || d9.Entry != 4 || d9.Gen != 1 || d9.MEntry != 9 || d9.MGen != 2 || d9.Qid != 7 || !d9.IsDir() {
		t.Fatalf("v9: %+v, %v", d9, err)
	}
}

func TestMetaBlockGolden(t *testing.T) {
	pack := func(elem string, i uint32) []byte {
		d := DirEntry{Elem: elem, Entry: i, Qid: uint64(i), UID: "u", GID: "g", MTime: 5, CTime: 7, ATime: 8, Mode: 0o644}
		b, err := d.Pack(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Given in creation order a, b, ab; vac's botched order puts "ab"
	// (longer, with "a" as prefix) before "a".
	names := []string{"a", "b", "ab"}
	packed := [][]byte{pack("a", 0), pack("b", 1), pack("ab", 2)}
	got, err := packMetaBlock(packed, names, 512)
	if err != nil {
		t.Fatal(err)
	}
	// dsize 512: maxindex 5, table ends at 12+5*4 = 32; entries laid out
	// in index order: ab (50 bytes) at 0x20, a (49) at 0x52, b (49) at 0x83;
	// size 0xb4.
	want := make([]byte, 512)
	copy(want, unhex(t, `5656fc79 00b4 0000 0005 0003
		0020 0032  0052 0031  0083 0031  00000000 00000000`))
	copy(want[0x20:], pack("ab", 2))
	copy(want[0x52:], pack("a", 0))
	copy(want[0x83:], pack("b", 1))
	if !bytes.Equal(got, want) {
		t.Fatalf("packMetaBlock:\n got %x\nwant %x", got[:0xb4], want[:0xb4])
	}
	mb, err := UnpackMetaBlock(want)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, d := range mb.Entries {
		order = append(order, d.Elem)
	}
	if strings.Join(order, ",") != "ab,a,b" || mb.Magic != MetaMagic {
		t.Errorf("UnpackMetaBlock order %v magic %#x", order, mb.Magic)
	}
	// Orders.
	for _, c := range []struct {
		a, b    string
		botched bool
		less    bool
	}{
		{"ab", "a", true, true}, {"a", "ab", true, false}, {"a", "ab", false, true},
		{"a", "b", true, true}, {"abc", "abd", true, true}, {"b", "ab", true, false},
	} {
		if got := nameLess(c.a, c.b, c.botched); got != c.less {
			t.Errorf("nameLess(%q, %q, botched=%v) = %v", c.a, c.b, c.botched, got)
		}
	}
}

// TestPointerBlocksGolden builds a stream whose leaves are known blocks
// and zero blocks and checks the pointer block bytes: scores in order,
// trailing zero scores truncated, zero scores kept in the middle.
func TestPointerBlocksGolden(t *testing.T) {
	ctx := context.Background()
	st := venti.NewMemStore()
	pool := newWritePool(ctx, st, 512, 2, 4)
	defer pool.close()
	// dsize 512, psize 60 -> 3 scores per pointer block.
	blockA := bytes.Repeat([]byte{'A'}, 512)
	blockB := append([]byte("B"), make([]byte, 511)...)
	data := append(append(append(append(append([]byte(nil), blockA...), make([]byte, 512)...), blockB...), make([]byte, 512)...), blockA[:5]...)
	e, err := writeBytes(ctx, pool, venti.DataType, 60, data)
	if err != nil {
		t.Fatal(err)
	}
	sa, sb, sc := venti.Sum(blockA), venti.Sum([]byte("B")), venti.Sum(blockA[:5])
	z := venti.ZeroScore
	// 5 leaves: [A, 0, B] [0, A5] -> level 1: P1 = A|0|B, P2 = 0|A5; top P3 = P1|P2.
	p1 := append(append(append([]byte(nil), sa[:]...), z[:]...), sb[:]...)
	p2 := append(append([]byte(nil), z[:]...), sc[:]...)
	s1, s2 := venti.Sum(p1), venti.Sum(p2)
	p3 := append(append([]byte(nil), s1[:]...), s2[:]...)
	if e.Score != venti.Sum(p3) || e.Depth != 2 || e.Size != uint64(len(data)) {
		t.Fatalf("entry %+v, want top %v depth 2 size %d", e, venti.Sum(p3), len(data))
	}
	for _, c := range []struct {
		s venti.Score
		t venti.Type
		b []byte
	}{{s1, venti.PointerType(1), p1}, {s2, venti.PointerType(1), p2}, {venti.Sum(p3), venti.PointerType(2), p3}, {sb, venti.DataType, []byte("B")}} {
		got, err := st.Read(ctx, c.s, c.t, 512)
		if err != nil || !bytes.Equal(got, c.b) {
			t.Errorf("block %v/%v: %x, %v; want %x", c.s, c.t, got, err, c.b)
		}
	}
	// A stream whose last pointer entries are zero: [A, 0, 0] -> A only.
	e, err = writeBytes(ctx, pool, venti.DataType, 60, append(append([]byte(nil), blockA...), make([]byte, 1024)...))
	if err != nil {
		t.Fatal(err)
	}
	if e.Score != venti.Sum(sa[:]) || e.Depth != 1 {
		t.Errorf("trailing zeros: entry %+v, want pointer block holding only A", e)
	}
	// All zero: depth by size, zero score, nothing stored.
	n := st.Len()
	e, err = writeBytes(ctx, pool, venti.DataType, 60, make([]byte, 4096))
	if err != nil || e.Score != venti.ZeroScore || e.Depth != 2 || st.Len() != n {
		t.Errorf("all zero: %+v, %v, %d new blocks", e, err, st.Len()-n)
	}
	// Directory stream size formula: 205 entries at dsize 8192 fill one
	// block of 204 plus one entry.
	if got := dirStreamSize(205, 8192); got != 8192+40 {
		t.Errorf("dirStreamSize(205) = %d", got)
	}
	if got := (Entry{DSize: 8192, Size: 8192 + 40}).entries(); got != 205 {
		t.Errorf("entries() = %d", got)
	}
}

// TestP9PRepack checks our encoders against bytes p9p wrote: every VtEntry
// and VacDir in blocks.bin re-packs to the same bytes (entries with the
// Local bit 0x20 cleared), and every meta block's index is in our order.
func TestP9PRepack(t *testing.T) {
	_, blocks := loadP9P(t)
	nent, ndir := 0, 0
	for _, b := range blocks {
		switch {
		case b.t == venti.DirType && len(b.data)%EntrySize == 0:
			for off := 0; off < len(b.data); off += EntrySize {
				raw := b.data[off : off+EntrySize]
				e, err := UnpackEntry(raw)
				if err != nil {
					t.Fatalf("entry in %v: %v", b.s, err)
				}
				want := append([]byte(nil), raw...)
				want[8] &^= 0xe0
				if got := e.Pack(nil); !bytes.Equal(got, want) {
					t.Errorf("entry in %v: repacked %x, want %x", b.s, got, want)
				}
				nent++
			}
		case b.t == venti.DataType && bytes.HasPrefix(b.data, []byte{0x56, 0x56, 0xfc, 0x79}):
			mb, err := UnpackMetaBlock(venti.ZeroExtend(venti.DataType, b.data, 8192))
			if err != nil {
				t.Fatalf("meta block %v: %v", b.s, err)
			}
			for i, d := range mb.Entries {
				ix := b.data[metaHeaderSize+i*metaIndexSize:]
				off, n := binary.BigEndian.Uint16(ix), binary.BigEndian.Uint16(ix[2:])
				got, err := d.Pack(nil)
				if err != nil || !bytes.Equal(got, b.data[off:off+n]) {
					t.Errorf("dir entry %q in %v: repacked %x, want %x", d.Elem, b.s, got, b.data[off:off+n])
				}
				if i > 0 && !nameLess(mb.Entries[i-1].Elem, d.Elem, true) {
					t.Errorf("meta block %v: %q before %q is not vac order", b.s, mb.Entries[i-1].Elem, d.Elem)
				}
				ndir++
			}
		}
	}
	if nent < 20 || ndir < 15 {
		t.Errorf("checked only %d entries and %d dir entries", nent, ndir)
	}
}
