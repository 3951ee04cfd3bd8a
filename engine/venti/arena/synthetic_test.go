package arena

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"gridlord/engine/venti"
)

func syntheticSpec() []specArena {
	all := syntheticBlocks(1, 135)
	return []specArena{
		{name: "old0", version: 4, blocks: all[:100], sealed: true},
		{name: "new1", version: 5, blocks: all[100:125], tail: all[125:130], lagging: 3},
		{name: "new2", version: 5},
		{name: "new3", version: 5, blocks: all[130:]},
	}
}

// TestSynthetic covers what the real fixture lacks: a sealed version-4
// arena with a score and a directory over several blocks, the memstats
// extension, clumps written after the trailer, an empty arena.
func TestSynthetic(t *testing.T) {
	spec := syntheticSpec()
	b := buildPartition(1024, 1<<20, spec)
	p := openBytes(t, b)
	if len(p.Problems) != 0 || len(p.Arenas) != 4 {
		t.Fatalf("%d arenas, problems %v", len(p.Arenas), p.Problems)
	}
	a0, a1 := p.Arenas[0], p.Arenas[1]
	if a0.Version != 4 || a0.ClumpMagic != clumpMagicV4 || a0.Mem.Clumps != 100 || !a0.Mem.Sealed || a0.Score == (venti.Score{}) {
		t.Errorf("arena 0: %+v", a0)
	}
	if err := a0.VerifyScore(context.Background()); err != nil {
		t.Errorf("arena score: %v", err)
	}
	if err := a1.VerifyScore(context.Background()); err == nil {
		t.Error("unsealed arena has a verified score")
	}
	if a1.Version != 5 || a1.Mem.Clumps != 25 || a1.Disk.Clumps != 22 || a1.Mem == a1.Disk {
		t.Errorf("arena 1 stats: mem %+v disk %+v", a1.Mem, a1.Disk)
	}

	// A flipped byte anywhere in the sealed arena breaks its score.
	c := bytes.Clone(b)
	c[a0.PartitionOffset(5000)] ^= 1
	if err := openBytes(t, c).Arenas[0].VerifyScore(context.Background()); err == nil {
		t.Error("corrupted sealed arena verified")
	}

	st := venti.NewMemStore()
	var last Progress
	res, err := Import(context.Background(), p, st, ImportOptions{Progress: func(pr Progress) { last = pr }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 135 || res.Corrupt != 0 || st.Len() != 135 || last.Clumps != 135 || last.TotalClumps != 135 {
		t.Errorf("result %+v, store %d, progress %+v", res, st.Len(), last)
	}
	var want []specBlock
	for _, a := range spec {
		want = append(append(want, a.blocks...), a.tail...)
	}
	for _, bl := range want {
		got, err := st.Read(context.Background(), venti.Sum(bl.data), bl.t, venti.MaxBlock)
		if err != nil || !bytes.Equal(got, bl.data) {
			t.Errorf("block %v/%v: %v", venti.Sum(bl.data), bl.t, err)
		}
	}

	// The read-only store serves the same blocks.
	rs, err := OpenStore(context.Background(), bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 135 || len(rs.Problems) != 0 {
		t.Errorf("store indexes %d blocks, problems %v", rs.Len(), rs.Problems)
	}
	for _, bl := range want {
		got, err := rs.Read(context.Background(), venti.Sum(bl.data), bl.t, venti.MaxBlock)
		if err != nil || !bytes.Equal(got, bl.data) {
			t.Errorf("store block %v/%v: %v", venti.Sum(bl.data), bl.t, err)
		}
	}
}

// TestStore exercises the read-only store on the real partition.
func TestStore(t *testing.T) {
	b, _ := realArenas(t)
	ctx := context.Background()
	st, err := OpenStore(ctx, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	blocks := realBlocks(t)
	if st.Len() != len(blocks) {
		t.Errorf("indexed %d blocks, want %d", st.Len(), len(blocks))
	}
	for _, bl := range blocks {
		got, err := st.Read(ctx, venti.Sum(bl.data), bl.t, venti.MaxBlock)
		if err != nil || !bytes.Equal(got, bl.data) {
			t.Errorf("block %v/%v: %v", venti.Sum(bl.data), bl.t, err)
		}
	}
	big := blocks[2] // 8192 bytes
	if _, err := st.Read(ctx, venti.Sum(big.data), big.t, 100); err == nil {
		t.Error("read of an 8 KiB block with max 100 succeeded")
	}
	if _, err := st.Read(ctx, venti.Sum(big.data), venti.RootType, venti.MaxBlock); !errors.Is(err, venti.ErrNotFound) {
		t.Errorf("read with the wrong type: %v", err)
	}
	if got, err := st.Read(ctx, venti.ZeroScore, venti.DataType, 0); err != nil || len(got) != 0 {
		t.Errorf("zero score: %v", err)
	}
	if _, err := st.Write(ctx, venti.DataType, []byte("x")); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write: %v", err)
	} else {
		t.Logf("write refused: %v", err)
	}
	if err := st.Sync(ctx); err != nil {
		t.Error(err)
	}

	// Data corrupted after the index was built is caught on read.
	c := bytes.Clone(b)
	cs, err := OpenStore(ctx, bytes.NewReader(c), int64(len(c)))
	if err != nil {
		t.Fatal(err)
	}
	offs, _ := clumpOffsets(t, cs.Partition())
	c[offs[2]+ClumpSize+100] ^= 0xff // block 2 is stored plainly (random data)
	if _, err := cs.Read(ctx, venti.Sum(big.data), big.t, venti.MaxBlock); !errors.Is(err, venti.ErrCorrupt) {
		t.Errorf("corrupted block read: %v", err)
	}
}

// TestImportIncremental imports an unsealed arena, lets "venti" append
// more clumps to it, and imports again with the same state: only the new
// clumps are read and written.
func TestImportIncremental(t *testing.T) {
	blocks := syntheticBlocks(7, 40)
	state := t.TempDir()
	st := newCounting()
	for i, n := range []int{25, 40} {
		b := buildPartition(1024, 1<<20, []specArena{{name: "seed0", version: 5, blocks: blocks[:n]}})
		res, err := Import(context.Background(), openBytes(t, b), st, ImportOptions{StateDir: state, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		want := []int64{25, 15}[i]
		if res.Written != want || res.Resumed != int64(n)-want {
			t.Errorf("import %d: %+v, want %d written", i+1, res, want)
		}
	}
	for k, n := range st.writes {
		if n != 1 {
			t.Errorf("block %v written %d times", k.s, n)
		}
	}
	if st.Len() != 40 {
		t.Errorf("store holds %d blocks", st.Len())
	}
}
