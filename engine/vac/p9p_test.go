package vac

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"gridlord/engine/venti"
	"gridlord/testing/p9pdata"
)

// Tests against real plan9port vac output (package p9pdata).

type p9pBlock struct {
	t    venti.Type
	s    venti.Score
	data []byte
}

// loadP9P loads the blocks of p9pdata into a memory store, each block under
// its wire type, and returns the store and the blocks.
func loadP9P(t testing.TB) (*venti.MemStore, []p9pBlock) {
	t.Helper()
	raw, err := p9pdata.Blocks()
	if err != nil {
		t.Fatalf("plan9port test data: %v", err)
	}
	st := venti.NewMemStore()
	var blocks []p9pBlock
	ctx := context.Background()
	for _, b := range raw {
		s, err := st.Write(ctx, b.Type, b.Data)
		if err != nil {
			t.Fatalf("load block: %v", err)
		}
		if s != b.Score {
			t.Fatalf("load block: stored as %v, blocks.txt says %v", s, b.Score)
		}
		blocks = append(blocks, p9pBlock{b.Type, s, b.Data})
	}
	return st, blocks
}

func p9pScore(t testing.TB, name string) venti.Score {
	t.Helper()
	s, err := ReadScoreFile(p9pdata.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestP9PTreeRestore(t *testing.T) {
	st, _ := loadP9P(t)
	ctx := context.Background()
	a, err := Open(ctx, st, p9pScore(t, "tree.vac"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Restore(ctx, a, dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := p9pdata.CheckTree(dir); err != nil {
		t.Error(err)
	}
	// The root directory record carries the QidSpace fossil needs.
	if d := a.Root().DirEntry(); !d.QidSpace || d.QidMax != 14 || d.Elem != "/" {
		t.Errorf("root dir entry %+v: want QidSpace 0..14", d)
	}
}

func TestP9PSparseCat(t *testing.T) {
	st, _ := loadP9P(t)
	ctx := context.Background()
	a, err := Open(ctx, st, p9pScore(t, "sparse.vac"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha1.New()
	if err := Cat(ctx, a, h, RestoreOptions{Patterns: []string{"sparse.img"}}); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != "b97fbc08d2768add5c0b62c9df90d41b6bf61f97" {
		t.Errorf("unvac -c sparse.vac: sha1 %s", got)
	}
	// Random access through io.ReaderAt: 64 KiB of data at 1 MiB.
	f, err := a.Lookup(ctx, "sparse.img")
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3<<20)
	if _, err := r.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sha1Of(buf)); got != "b97fbc08d2768add5c0b62c9df90d41b6bf61f97" {
		t.Errorf("ReadAt whole file: sha1 %s", got)
	}
	part := make([]byte, 100)
	if _, err := r.ReadAt(part, 1<<20-50); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part, buf[1<<20-50:1<<20+50]) {
		t.Errorf("ReadAt across the hole/data boundary differs")
	}
}

func sha1Of(b []byte) []byte { s := sha1.Sum(b); return s[:] }

// TestP9PDataTreesMatch archives the same tree with our code and checks
// that every file's data tree has the score, depth and size p9p wrote, and
// that our archive restores to the same tree.
func TestP9PDataTreesMatch(t *testing.T) {
	pst, _ := loadP9P(t)
	ctx := context.Background()
	src := t.TempDir()
	if err := p9pdata.ExtractTree(src); err != nil {
		t.Fatal(err)
	}
	st := venti.NewMemStore()
	score, err := Create(ctx, st, []string{filepath.Join(src, "tree")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ours, err := Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := Open(ctx, pst, p9pScore(t, "tree.vac"))
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = theirs.Walk(ctx, func(tf *File) error {
		of, err := ours.Lookup(ctx, tf.Path())
		if err != nil {
			t.Errorf("%s: missing from our archive: %v", tf.Path(), err)
			return nil
		}
		if of.IsDir() != tf.IsDir() || of.DirEntry().Mode != tf.DirEntry().Mode || of.DirEntry().MTime != tf.DirEntry().MTime {
			t.Errorf("%s: ours mode %#o mtime %d, p9p mode %#o mtime %d", tf.Path(),
				of.DirEntry().Mode, of.DirEntry().MTime, tf.DirEntry().Mode, tf.DirEntry().MTime)
		}
		if tf.IsDir() {
			return nil
		}
		files++
		oe, te := of.Entry(), tf.Entry()
		if oe.Score != te.Score || oe.Depth != te.Depth || oe.Size != te.Size || oe.PSize != te.PSize || oe.DSize != te.DSize {
			t.Errorf("%s: our entry %+v, p9p %+v", tf.Path(), oe, te)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != 8 {
		t.Errorf("compared %d files, want 8", files)
	}
	dir := t.TempDir()
	if err := Restore(ctx, ours, dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := p9pdata.CheckTree(dir); err != nil {
		t.Error(err)
	}
}

// TestP9PIncremental archives the tree against p9p's own archive (vac -d):
// unchanged files reuse p9p's entries, with the fossil-confusing Local flag
// (which p9p left set) cleared.
func TestP9PIncremental(t *testing.T) {
	pst, _ := loadP9P(t)
	ctx := context.Background()
	src := t.TempDir()
	if err := p9pdata.ExtractTree(src); err != nil {
		t.Fatal(err)
	}
	prev, err := Open(ctx, pst, p9pScore(t, "tree.vac"))
	if err != nil {
		t.Fatal(err)
	}
	// Only README keeps p9p's mtime (the others were extracted with the
	// tar's mtimes, which equal p9p's too); change one file's content but
	// keep its size and mtime to prove it is not re-read.
	readme := filepath.Join(src, "tree", "README")
	fi, err := os.Stat(readme)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(readme, b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(readme, fi.ModTime(), fi.ModTime())
	// Count the stores our archive needs beyond p9p's blocks.
	cs := &countingStore{Store: pst}
	score, err := Create(ctx, cs, []string{filepath.Join(src, "tree")}, Options{Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, pst, score)
	if err != nil {
		t.Fatal(err)
	}
	if a.RootBlock().Prev != prev.Score() {
		t.Errorf("root prev %v, want %v", a.RootBlock().Prev, prev.Score())
	}
	f, err := a.Lookup(ctx, "tree/README")
	if err != nil {
		t.Fatal(err)
	}
	pf, _ := prev.Lookup(ctx, "tree/README")
	if f.Entry().Score != pf.Entry().Score {
		t.Errorf("README was re-read: score %v, previous %v", f.Entry().Score, pf.Entry().Score)
	}
	if cs.dataBytes > 0 {
		t.Errorf("incremental archive wrote %d bytes of file data blocks", cs.dataBytes)
	}
	// No entry we wrote has flag bits 5-7 set.
	for _, blk := range cs.blocks {
		if blk.t != venti.DirType {
			continue
		}
		for off := 0; off+EntrySize <= len(blk.data); off += EntrySize {
			if fl := blk.data[off+8]; fl&0xe0 != 0 {
				t.Errorf("dir block %v entry %d has flags %#x", venti.Sum(blk.data), off/EntrySize, fl)
			}
		}
	}
}

// countingStore records the blocks written through it.
type countingStore struct {
	venti.Store
	mu        sync.Mutex
	blocks    []p9pBlock
	dataBytes int
}

func (c *countingStore) Write(ctx context.Context, t venti.Type, data []byte) (venti.Score, error) {
	s, err := c.Store.Write(ctx, t, data)
	c.mu.Lock()
	c.blocks = append(c.blocks, p9pBlock{t, s, append([]byte(nil), data...)})
	if t == venti.DataType && !bytes.HasPrefix(data, []byte{0x56, 0x56, 0xfc}) {
		c.dataBytes += len(data)
	}
	c.mu.Unlock()
	return s, err
}
