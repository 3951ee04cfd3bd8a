package arena

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gridlord/engine/venti"
	"gridlord/testing/p9pdata"
)

// listed returns the blocks of blocks.txt: length by score and type.
func listed(t testing.TB) map[key]int {
	t.Helper()
	bs, err := p9pdata.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[key]int)
	for _, b := range bs {
		m[key{b.Score, b.Type}] = len(b.Data)
	}
	return m
}

// countingStore is a MemStore that counts writes per block and can cancel
// a context after a number of writes.
type countingStore struct {
	*venti.MemStore
	mu      sync.Mutex
	writes  map[key]int
	n       atomic.Int64
	cancelN int64
	cancel  context.CancelFunc
	syncs   atomic.Int64
}

func newCounting() *countingStore {
	return &countingStore{MemStore: venti.NewMemStore(), writes: make(map[key]int)}
}

func (c *countingStore) Write(ctx context.Context, t venti.Type, data []byte) (venti.Score, error) {
	if err := ctx.Err(); err != nil {
		return venti.Score{}, err
	}
	if c.cancel != nil && c.n.Load() >= c.cancelN {
		// Past the limit: cancel and refuse, whatever the scheduling of
		// the import's workers, so every run stops after cancelN writes.
		c.cancel()
		return venti.Score{}, context.Canceled
	}
	s, err := c.MemStore.Write(ctx, t, data)
	if err == nil {
		c.mu.Lock()
		c.writes[key{s, t}]++
		c.mu.Unlock()
		if n := c.n.Add(1); c.cancel != nil && n == c.cancelN {
			c.cancel()
		}
	}
	return s, err
}

func (c *countingStore) Sync(ctx context.Context) error {
	c.syncs.Add(1)
	return nil
}

// checkStore verifies that st holds exactly the blocks of blocks.bin.
func checkStore(t *testing.T, st *venti.MemStore) {
	t.Helper()
	want := realBlocks(t)
	if st.Len() != len(want) {
		t.Errorf("store holds %d blocks, want %d", st.Len(), len(want))
	}
	for _, b := range want {
		got, err := st.Read(context.Background(), venti.Sum(b.data), b.t, venti.MaxBlock)
		if err != nil {
			t.Errorf("block %v/%v: %v", venti.Sum(b.data), b.t, err)
			continue
		}
		if !bytes.Equal(got, b.data) {
			t.Errorf("block %v/%v differs", venti.Sum(b.data), b.t)
		}
	}
}

// TestImportReal imports the real partition into an empty store: exactly
// the blocks of blocks.txt, byte-identical to blocks.bin, with progress
// reaching the trailers' totals; a second import adds nothing.
func TestImportReal(t *testing.T) {
	b, _ := realArenas(t)
	p := openBytes(t, b)
	list := listed(t)
	if len(list) != 59 {
		t.Fatalf("blocks.txt lists %d blocks", len(list))
	}
	st := newCounting()
	state := t.TempDir()
	var last Progress
	calls := 0
	res, err := Import(context.Background(), p, st, ImportOptions{StateDir: state, Workers: 3, CheckpointEvery: 7,
		Progress: func(pr Progress) { last = pr; calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 59 || res.Corrupt != 0 || res.Bytes != 222321 || len(res.Problems) != 0 {
		t.Errorf("result %+v", res)
	}
	if calls != 59 || last.Clumps != 59 || last.TotalClumps != 59 || last.Bytes != 222321 || last.TotalBytes != 222321 {
		t.Errorf("last progress %+v after %d calls", last, calls)
	}
	for k, n := range st.writes {
		if n != 1 {
			t.Errorf("block %v/%v written %d times", k.s, k.t, n)
		}
		if _, ok := list[k]; !ok {
			t.Errorf("block %v/%v is not in blocks.txt", k.s, k.t)
		}
	}
	for k, n := range list {
		got, err := st.Read(context.Background(), k.s, k.t, venti.MaxBlock)
		if err != nil || len(got) != n {
			t.Errorf("listed block %v/%v (%d bytes): %d bytes, %v", k.s, k.t, n, len(got), err)
		}
	}
	checkStore(t, st.MemStore)
	if st.syncs.Load() == 0 {
		t.Error("import never synced the store before checkpointing")
	}

	// Again with the same state: nothing read or written.
	st.n.Store(0)
	res, err = Import(context.Background(), p, st, ImportOptions{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 0 || st.n.Load() != 0 || res.Resumed != 59 {
		t.Errorf("second import: %+v, %d writes", res, st.n.Load())
	}
	// Without state the blocks are written again but add nothing.
	res, err = Import(context.Background(), p, st, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 59 || st.Len() != 59 {
		t.Errorf("stateless re-import: %+v, store has %d blocks", res, st.Len())
	}
}

// TestImportResume cancels imports after a few writes, again and again,
// and resumes: the final store is complete and no block is written twice.
func TestImportResume(t *testing.T) {
	b, _ := realArenas(t)
	p := openBytes(t, b)
	st := newCounting()
	state := t.TempDir()
	runs := 0
	for {
		runs++
		if runs > 30 {
			t.Fatal("import never finished")
		}
		ctx, cancel := context.WithCancel(context.Background())
		st.cancel, st.cancelN = cancel, st.n.Load()+int64(5+runs)
		_, err := Import(ctx, p, st, ImportOptions{StateDir: state, Workers: 4, CheckpointEvery: 1000})
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: %v", runs, err)
		}
	}
	if runs < 3 {
		t.Errorf("only %d runs: the cancellation did not interrupt", runs)
	}
	for k, n := range st.writes {
		if n != 1 {
			t.Errorf("block %v/%v written %d times across %d runs", k.s, k.t, n, runs)
		}
	}
	checkStore(t, st.MemStore)
}

// corrupt imports a copy of the real partition with one change and
// returns the store and the result.
func corrupt(t *testing.T, b []byte, change func(p *Partition, b []byte)) (*venti.MemStore, *Result) {
	t.Helper()
	b = bytes.Clone(b)
	change(openBytes(t, b), b)
	p := openBytes(t, b)
	st := venti.NewMemStore()
	var seen []*Error
	res, err := Import(context.Background(), p, st, ImportOptions{Problem: func(e *Error) { seen = append(seen, e) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(res.Problems) {
		t.Errorf("Problem called %d times, Result lists %d", len(seen), len(res.Problems))
	}
	// Whatever was stored is a real block of blocks.bin.
	want := make(map[key][]byte)
	for _, bl := range realBlocks(t) {
		want[key{venti.Sum(bl.data), bl.t}] = bl.data
	}
	for k, data := range want {
		got, err := st.Read(context.Background(), k.s, k.t, venti.MaxBlock)
		if err == nil && !bytes.Equal(got, data) {
			t.Errorf("block %v stored with wrong data", k.s)
		}
	}
	return st, res
}

// clumpOffsets walks arena 0 and returns each clump's partition offset
// and header.
func clumpOffsets(t *testing.T, p *Partition) ([]int64, []Clump) {
	var offs []int64
	var hs []Clump
	a := p.Arenas[0]
	err := a.Walk(context.Background(), Position{}, false, func(e *Entry) error {
		offs = append(offs, a.PartitionOffset(e.Offset))
		hs = append(hs, e.Header)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return offs, hs
}

func TestImportCorrupt(t *testing.T) {
	orig, _ := realArenas(t)
	offs, _ := clumpOffsets(t, openBytes(t, orig))
	firstWhack := -1
	for i, off := range offs {
		if orig[off+4+ClumpInfoSize] == EncodingWhack {
			firstWhack = i
			break
		}
	}
	if firstWhack < 0 {
		t.Fatal("no compressed clump found")
	}
	cases := []struct {
		name   string
		clump  int
		change func(p *Partition, b []byte)
		want   string
	}{
		{"bad magic", 3, func(p *Partition, b []byte) { b[offs[3]] ^= 0x40 }, "bad clump magic"},
		{"header score", 5, func(p *Partition, b []byte) { b[offs[5]+9] ^= 1 }, "disagrees with the directory"},
		{"header type", 6, func(p *Partition, b []byte) { b[offs[6]+4] = 0x0c }, "disagrees with the directory"},
		{"uncompressed data", 2, func(p *Partition, b []byte) { b[offs[2]+ClumpSize+10] ^= 0x80 }, "hashes to"},
		{"compressed data, still decodes", 0, func(p *Partition, b []byte) { b[offs[0]+ClumpSize+10] ^= 0x80 }, "hashes to"},
		{"compressed data, does not decode", firstWhack, func(p *Partition, b []byte) {
			for i := int64(0); i < 8; i++ {
				b[offs[firstWhack]+ClumpSize+20+i] ^= 0x5a
			}
		}, "decompress"},
		{"encoding", 7, func(p *Partition, b []byte) { b[offs[7]+4+ClumpInfoSize] = 9 }, "unknown clump encoding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, res := corrupt(t, orig, c.change)
			if res.Corrupt != 1 || len(res.Problems) != 1 {
				t.Fatalf("%d corrupt, problems %v", res.Corrupt, res.Problems)
			}
			e := res.Problems[0]
			if e.Arena != "arenas000" || e.Clump != c.clump || e.Offset != offs[c.clump] {
				t.Errorf("problem %v: want arena arenas000 clump %d offset %d", e, c.clump, offs[c.clump])
			}
			if !strings.Contains(e.Error(), c.want) || !strings.Contains(e.Error(), fmt.Sprint(offs[c.clump])) {
				t.Errorf("problem %q does not say %q and the offset", e, c.want)
			}
			if st.Len() != 58 || res.Written != 58 {
				t.Errorf("store holds %d blocks, %d written; want the other 58", st.Len(), res.Written)
			}
			t.Logf("reported: %v", e)
		})
	}

	t.Run("directory entry", func(t *testing.T) {
		// A damaged directory entry makes the (sound) clump disagree.
		st, res := corrupt(t, orig, func(p *Partition, b []byte) {
			a := p.Arenas[0]
			b[a.PartitionOffset(a.DataSize())-a.blockSize()+2*ClumpInfoSize+8] ^= 1
		})
		if res.Corrupt != 1 || res.Problems[0].Clump != 2 || st.Len() != 58 {
			t.Errorf("%d corrupt %v, %d stored", res.Corrupt, res.Problems, st.Len())
		}
	})

	t.Run("truncated", func(t *testing.T) {
		// Cut the partition in the middle of clump 40: the trailers are
		// gone, the log is followed from its start, clumps 0..39 arrive.
		cut := offs[40] + 100
		b := bytes.Clone(orig[:cut])
		p := openBytes(t, b)
		if len(p.Arenas) != 1 || !p.Arenas[0].NoTrailer || len(p.Problems) != 3 {
			t.Fatalf("arenas %d, problems %v", len(p.Arenas), p.Problems)
		}
		st := venti.NewMemStore()
		res, err := Import(context.Background(), p, st, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Len() != 40 || res.Corrupt != 1 {
			t.Errorf("%d blocks stored, %d corrupt, problems %v", st.Len(), res.Corrupt, res.Problems)
		}
		last := res.Problems[len(res.Problems)-1]
		if last.Clump != 40 || last.Offset != offs[40] || !errors.Is(last, ErrTruncated) {
			t.Errorf("last problem %v", last)
		}
		for _, e := range res.Problems {
			t.Logf("reported: %v", e)
		}
	})
}
