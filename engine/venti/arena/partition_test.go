package arena

import (
	"bytes"
	"context"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/whack"
)

// TestRealPartition reads the real plan9port partition: three arenas, the
// first with 59 clumps of which 28 are whack-compressed, and every block
// decodes to the bytes of blocks.bin, in order.
func TestRealPartition(t *testing.T) {
	b, _ := realArenas(t)
	p := openBytes(t, b)
	if len(p.Problems) != 0 {
		t.Errorf("problems: %v", p.Problems)
	}
	if p.BlockSize != 8192 || p.ArenaBase != 794624 || len(p.Arenas) != 3 {
		t.Fatalf("partition: block size %d, arena base %d, %d arenas", p.BlockSize, p.ArenaBase, len(p.Arenas))
	}
	a := p.Arenas[0]
	if a.Name != "arenas000" || a.Version != 5 || a.Mem.Clumps != 59 || a.Mem.CClumps != 28 || a.Mem.UncSize != 222321 || a.Mem.Sealed {
		t.Fatalf("arena 0: %+v", a)
	}
	want := realBlocks(t)
	var got []block
	compressed := 0
	err := a.Walk(context.Background(), Position{}, true, func(e *Entry) error {
		if e.Err != nil {
			t.Errorf("clump %d: %v", e.Clump, e.Err)
			return nil
		}
		if e.Header.Encoding == EncodingWhack {
			compressed++
		}
		data, err := e.Header.Decode(e.Stored, nil)
		if err != nil {
			t.Errorf("clump %d: %v", e.Clump, err)
			return nil
		}
		got = append(got, block{e.Header.Type, append([]byte(nil), data...)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if compressed != 28 {
		t.Errorf("%d compressed clumps, want 28", compressed)
	}
	if len(got) != len(want) {
		t.Fatalf("%d blocks, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].t != want[i].t || string(got[i].data) != string(want[i].data) {
			t.Errorf("block %d: type %v %d bytes, want type %v %d bytes (score %v)", i, got[i].t, len(got[i].data), want[i].t, len(want[i].data), venti.Sum(want[i].data))
		}
	}
	for _, a := range p.Arenas[1:] {
		if a.Mem.Clumps != 0 {
			t.Errorf("arena %s: %d clumps, want 0", a.Name, a.Mem.Clumps)
		}
	}
}

// TestWhackMatchesVenti compresses every real block with whack.Encode: the
// result must be byte-identical to what plan9port's venti stored, and
// blocks venti stored plainly must not compress.
func TestWhackMatchesVenti(t *testing.T) {
	b, _ := realArenas(t)
	p := openBytes(t, b)
	var enc whack.Encoder
	n := 0
	err := p.Arenas[0].Walk(context.Background(), Position{}, true, func(e *Entry) error {
		data, err := e.Header.Decode(e.Stored, nil)
		if err != nil {
			return err
		}
		dst := make([]byte, len(data))
		m := enc.Encode(dst, data)
		switch e.Header.Encoding {
		case EncodingWhack:
			n++
			if m < 0 || !bytes.Equal(dst[:m], e.Stored) {
				t.Errorf("clump %d: Encode gave %d bytes, venti stored %d (equal %v)", e.Clump, m, len(e.Stored), m >= 0 && bytes.Equal(dst[:m], e.Stored))
			}
		case EncodingNone:
			if m >= 0 {
				t.Errorf("clump %d: venti stored it plainly but Encode compressed %d to %d", e.Clump, len(data), m)
			}
		}
		return nil
	})
	if err != nil || n != 28 {
		t.Fatalf("%d compressed clumps, err %v", n, err)
	}
}
