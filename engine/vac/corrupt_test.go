package vac

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/venti"
)

// smallArchive archives dir/d/file (three random blocks) and dir/d/small
// and returns the blocks written and the root score.
func smallArchive(t *testing.T) ([]p9pBlock, venti.Score, []byte) {
	t.Helper()
	src := t.TempDir()
	data := make([]byte, 3*DefaultBlockSize)
	rand.NewChaCha8([32]byte{9}).Read(data)
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	if err := os.WriteFile(filepath.Join(src, "d", "file"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "d", "small"), []byte("small"), 0o644)
	cs := &countingStore{Store: venti.NewMemStore()}
	score, err := Create(context.Background(), cs, []string{filepath.Join(src, "d")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cs.blocks, score, data
}

// storeWith loads blocks into a new store, passing each through edit (which
// may drop it by returning ok false or change its type).
func storeWith(t *testing.T, blocks []p9pBlock, edit func(b p9pBlock) (venti.Type, bool)) *venti.MemStore {
	st := venti.NewMemStore()
	for _, b := range blocks {
		ty, ok := edit(b)
		if !ok {
			continue
		}
		if _, err := st.Write(context.Background(), ty, b.data); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// restoreOver restores a into a directory already holding d/file with
// precious contents and checks that a failure leaves it untouched and no
// temporary files behind. It returns the restore error.
func restoreOver(t *testing.T, a *Archive) error {
	t.Helper()
	dst := t.TempDir()
	os.MkdirAll(filepath.Join(dst, "d"), 0o755)
	precious := []byte("precious old contents")
	os.WriteFile(filepath.Join(dst, "d", "file"), precious, 0o644)
	err := Restore(context.Background(), a, dst, RestoreOptions{})
	if err != nil {
		got, _ := os.ReadFile(filepath.Join(dst, "d", "file"))
		if !bytes.Equal(got, precious) {
			t.Errorf("failed restore changed the existing file to %d bytes", len(got))
		}
		ents, _ := os.ReadDir(filepath.Join(dst, "d"))
		for _, e := range ents {
			if strings.Contains(e.Name(), ".vac-") {
				t.Errorf("temporary file %s left behind", e.Name())
			}
		}
	}
	return err
}

func TestCorruptMissingDataBlock(t *testing.T) {
	blocks, score, data := smallArchive(t)
	missing := venti.Sum(data[DefaultBlockSize : 2*DefaultBlockSize])
	st := storeWith(t, blocks, func(b p9pBlock) (venti.Type, bool) { return b.t, b.s != missing })
	ctx := context.Background()
	a, err := Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	err = restoreOver(t, a)
	t.Logf("missing block: %v", err)
	if err == nil || !errors.Is(err, venti.ErrNotFound) || !strings.Contains(err.Error(), "d/file") || !strings.Contains(err.Error(), missing.String()) {
		t.Fatalf("restore with a missing block: %v; want an error naming d/file and %v", err, missing)
	}
	// Random access fails the same way for that block only.
	f, err := a.Lookup(ctx, "d/file")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := f.Open(ctx)
	buf := make([]byte, 100)
	if _, err := r.ReadAt(buf, 0); err != nil {
		t.Errorf("ReadAt of an intact block: %v", err)
	}
	if _, err := r.ReadAt(buf, DefaultBlockSize+5); err == nil || !strings.Contains(err.Error(), missing.String()) {
		t.Errorf("ReadAt of the missing block: %v", err)
	}
}

func TestCorruptWrongType(t *testing.T) {
	blocks, score, _ := smallArchive(t)
	// Store the file's pointer block as a data block.
	var ptr venti.Score
	st := storeWith(t, blocks, func(b p9pBlock) (venti.Type, bool) {
		if b.t == venti.PointerType(1) {
			ptr = b.s
			return venti.DataType, true
		}
		return b.t, true
	})
	a, err := Open(context.Background(), st, score)
	if err != nil {
		t.Fatal(err)
	}
	err = restoreOver(t, a)
	t.Logf("wrong type: %v", err)
	if err == nil || !strings.Contains(err.Error(), "d/file") || !strings.Contains(err.Error(), ptr.String()) || !strings.Contains(err.Error(), "pointer0") {
		t.Fatalf("restore with a wrongly typed block: %v", err)
	}
}

func TestCorruptTruncatedArchive(t *testing.T) {
	blocks, score, _ := smallArchive(t)
	ctx := context.Background()
	// No root block at all.
	st := storeWith(t, blocks, func(b p9pBlock) (venti.Type, bool) { return b.t, b.t != venti.RootType })
	if _, err := Open(ctx, st, score); err == nil || !strings.Contains(err.Error(), score.String()) {
		t.Errorf("open without root block: %v", err)
	}
	// Root present, top entry block missing.
	st = storeWith(t, blocks, func(b p9pBlock) (venti.Type, bool) {
		return b.t, !(b.t == venti.DirType && len(b.data) <= 3*EntrySize && len(b.data) > 2*EntrySize)
	})
	if _, err := Open(ctx, st, score); err == nil || !errors.Is(err, venti.ErrNotFound) {
		t.Errorf("open without top entries: %v", err)
	}
	// A root block of another type.
	rb, _ := Root{Type: "ffs", BlockSize: 8192}.Pack()
	s, _ := st.Write(ctx, venti.RootType, rb)
	if _, err := Open(ctx, st, s); err == nil || !strings.Contains(err.Error(), "ffs") {
		t.Errorf("open of an ffs root: %v", err)
	}
	// Meta blocks of the subdirectory missing: listing fails naming it.
	st = storeWith(t, blocks, func(b p9pBlock) (venti.Type, bool) {
		if b.t == venti.DataType && bytes.HasPrefix(b.data, []byte{0x56, 0x56, 0xfc, 0x79}) {
			mb, _ := UnpackMetaBlock(b.data)
			if len(mb.Entries) == 2 { // d's children: file, small
				return b.t, false
			}
		}
		return b.t, true
	})
	a, err := Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Select(ctx, a, nil); err == nil || !strings.Contains(err.Error(), "d:") {
		t.Errorf("walk with missing meta block: %v", err)
	}
}

// TestCorruptBadMagic builds an archive by hand whose root directory's meta
// block has a bad magic number.
func TestCorruptBadMagic(t *testing.T) {
	ctx := context.Background()
	st := venti.NewMemStore()
	garbage := append([]byte("XXXXgarbage"), make([]byte, 100)...)
	bad, _ := st.Write(ctx, venti.DataType, garbage)
	rootDir := DirEntry{Elem: "/", MEntry: 1, UID: "vac", GID: "vac", Mode: ModeDir | 0o777}
	p, _ := rootDir.Pack(nil)
	mb, err := packMetaBlock([][]byte{p}, []string{"/"}, 8192)
	if err != nil {
		t.Fatal(err)
	}
	super, _ := st.Write(ctx, venti.DataType, venti.ZeroTruncate(venti.DataType, mb))
	src := Entry{PSize: 8180, DSize: 8192, Active: true, Dir: true, Score: venti.ZeroScore}
	meta := Entry{PSize: 8180, DSize: 8192, Active: true, Size: 8192, Score: bad}
	sup := Entry{PSize: 8180, DSize: 8192, Active: true, Size: 8192, Score: super}
	d, _ := st.Write(ctx, venti.DirType, sup.Pack(meta.Pack(src.Pack(nil))))
	rb, _ := Root{Type: "vac", Score: d, BlockSize: 8192}.Pack()
	rs, _ := st.Write(ctx, venti.RootType, rb)
	a, err := Open(ctx, st, rs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Root().ReadDir(ctx)
	t.Logf("bad magic: %v", err)
	if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "magic") || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("read dir with bad meta magic: %v", err)
	}
	if err := Restore(ctx, a, t.TempDir(), RestoreOptions{}); err == nil {
		t.Fatal("restore of a corrupt archive succeeded")
	}
}

// lyingStore serves one block (by score) with a byte flipped, as a server
// with a damaged disk and no check of its own might.
type lyingStore struct {
	venti.Store
	bad venti.Score
}

func (l *lyingStore) Read(ctx context.Context, s venti.Score, t venti.Type, max int) ([]byte, error) {
	b, err := l.Store.Read(ctx, s, t, max)
	if err == nil && s == l.bad {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 1
	}
	return b, err
}

// TestCorruptLeafFromServer: a leaf whose bytes do not hash to its score,
// read through a venti.Client (whose asynchronous reads leave the check to
// the restore), fails unvac -c and unvac with ErrCorrupt, wherever in the
// file it is, and nothing after it is written.
func TestCorruptLeafFromServer(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	data := make([]byte, 40*DefaultBlockSize)
	rand.NewChaCha8([32]byte{7}).Read(data)
	if err := os.WriteFile(filepath.Join(src, "file"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, leaf := range []int{0, 17, 39} {
		mem := venti.NewMemStore()
		score, err := Create(ctx, mem, []string{filepath.Join(src, "file")}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		bad := venti.Sum(data[leaf*DefaultBlockSize : (leaf+1)*DefaultBlockSize])
		c := loopback(t, &lyingStore{Store: mem, bad: bad})
		a, err := Open(ctx, c, score)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = Cat(ctx, a, &out, RestoreOptions{})
		if !errors.Is(err, venti.ErrCorrupt) {
			t.Fatalf("leaf %d: cat: %v, want ErrCorrupt", leaf, err)
		}
		if out.Len() > leaf*DefaultBlockSize {
			t.Errorf("leaf %d: cat wrote %d bytes, past the damaged leaf", leaf, out.Len())
		}
		if !bytes.Equal(out.Bytes(), data[:out.Len()]) {
			t.Errorf("leaf %d: cat wrote bytes that differ from the file", leaf)
		}
		dst := t.TempDir()
		if err := Restore(ctx, a, dst, RestoreOptions{}); !errors.Is(err, venti.ErrCorrupt) {
			t.Fatalf("leaf %d: restore: %v, want ErrCorrupt", leaf, err)
		}
		if _, err := os.Stat(filepath.Join(dst, "file")); err == nil {
			t.Errorf("leaf %d: a failed restore left the file", leaf)
		}
	}
}
