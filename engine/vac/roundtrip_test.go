//go:build unix

package vac

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"gridlord/engine/venti"
)

// buildTree creates the awkward cases of a round trip below dir.
func buildTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write := func(p string, b []byte, mode os.FileMode) {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	const ds = DefaultBlockSize
	write("empty", nil, 0o644)
	write("one", []byte{'x'}, 0o644)
	write("exact", rnd(ds), 0o644)
	write("exact+1", rnd(ds+1), 0o644)
	write("exact-1", rnd(ds-1), 0o644)
	write("three", rnd(3*ds), 0o644)
	write("zeros", make([]byte, 5*ds+7), 0o644)
	tail := append(rnd(ds+100), make([]byte, 2*ds)...) // trailing zero blocks
	write("tailzeros", tail, 0o644)
	// 410 blocks: one more than a pointer block holds, so depth 2.
	write("depth2.bin", rnd(410*ds-3), 0o644)
	write("modes/setuid", []byte("suid\n"), 0o4755|os.ModeSetuid)
	write("modes/setgid", []byte("sgid\n"), 0o750|os.ModeSetgid)
	write("modes/readonly", []byte("ro\n"), 0o400)
	write("modes/exec", []byte("#!/bin/sh\n"), 0o711)
	// Deep directories and a long name.
	deep := filepath.Join("deep", strings.Repeat("d/", 40))
	write(filepath.Join(deep, "bottom"), []byte("bottom\n"), 0o644)
	long := strings.Repeat("L", 255)
	write(filepath.Join("names", long), []byte("long\n"), 0o644)
	write(filepath.Join("names", "a"), []byte("a"), 0o644)
	write(filepath.Join("names", "ab"), []byte("ab"), 0o644)
	write(filepath.Join("names", "a b;'\"ü"), []byte("odd"), 0o644)
	// Many entries: several meta blocks and a two-block entry stream.
	for i := 0; i < 300; i++ {
		write(fmt.Sprintf("many/f%03d", i), []byte(fmt.Sprint(i)), 0o644)
	}
	if err := os.Symlink("../one", filepath.Join(dir, "modes", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("dangling/target", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sticky"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("sticky/x", []byte("x"), 0o644)
	if err := os.Chmod(filepath.Join(dir, "sticky"), 0o1777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "rodir"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("rodir/x", []byte("x"), 0o644)
	if err := os.Chmod(filepath.Join(dir, "rodir"), 0o555); err != nil {
		t.Fatal(err)
	}
	// Fixed, distinct mtimes (directories last).
	mt := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p == dir || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		mt = mt.Add(time.Minute)
		os.Chtimes(p, mt, mt)
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		mt = mt.Add(time.Minute)
		os.Chtimes(dirs[i], mt, mt)
	}
}

// makeSparse creates a sparse file of the given size with a few bytes of
// data at the start, after 1 MiB, past 4 GiB and at the end.
func makeSparse(t *testing.T, sp string, sparse int64) {
	t.Helper()
	f, err := os.Create(sp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(sparse); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1<<20 + 5, 4<<30 + 12345, sparse - 3} {
		if off < 0 || off >= sparse {
			continue
		}
		if _, err := f.WriteAt([]byte("data!"), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(sparse); err != nil {
		t.Fatal(err)
	}
}

// digest describes a file's content cheaply and exactly: the size and every
// non-zero 8 KiB block with its offset, found through SEEK_DATA where
// available, so sparse regions cost nothing.
func digest(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h := sha1.New()
	binary.Write(h, binary.BigEndian, fi.Size())
	hf := newHoleFinder(f, fi.Size())
	buf := make([]byte, DefaultBlockSize)
	zero := make([]byte, DefaultBlockSize)
	for off := int64(0); off < fi.Size(); {
		if n := hf.zeroBlocksAt(off, DefaultBlockSize); n > 0 {
			off += n * DefaultBlockSize
			continue
		}
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if !isZero(buf[:n], zero) {
			binary.Write(h, binary.BigEndian, off)
			h.Write(buf[:n])
		}
		off += int64(n)
		if n == 0 {
			break
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// compareTrees checks that got has exactly want's files, types, modes,
// mtimes, contents and link targets.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		if rel == "." {
			return nil
		}
		g := filepath.Join(got, rel)
		wi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gi, err := os.Lstat(g)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(g)
			if wl != gl {
				t.Errorf("%s: link %q, want %q", rel, gl, wl)
			}
			return nil
		case wi.Mode().IsRegular():
			if wi.Size() != gi.Size() {
				t.Errorf("%s: size %d, want %d", rel, gi.Size(), wi.Size())
			} else if digest(t, p) != digest(t, g) {
				t.Errorf("%s: contents differ", rel)
			}
		}
		if !wi.ModTime().Equal(gi.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(got, p)
		if err == nil && !seen[rel] {
			t.Errorf("%s: restored but not in the source", rel)
		}
		return nil
	})
}

func TestRoundTrip(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and links are Unix-specific")
	}
	ctx := context.Background()
	src := t.TempDir()
	buildTree(t, filepath.Join(src, "tree"))
	st := venti.NewMemStore()
	var last, total int64
	score, err := Create(ctx, st, []string{filepath.Join(src, "tree")}, Options{
		Workers:  4,
		Progress: func(d, tot int64) { last, total = d, tot },
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != total || total == 0 {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	a, err := Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Restore(ctx, a, dst, RestoreOptions{Workers: 3}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, filepath.Join(src, "tree"), filepath.Join(dst, "tree"))

	// The same tree archived again gives the same data (dedup): only
	// metadata blocks are new.
	n := st.Len()
	score2, err := Create(ctx, st, []string{filepath.Join(src, "tree")}, Options{Now: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := Open(ctx, st, score2)
	if err != nil {
		t.Fatal(err)
	}
	f1, _ := a.Lookup(ctx, "tree/depth2.bin")
	f2, err := a2.Lookup(ctx, "tree/depth2.bin")
	if err != nil {
		t.Fatal(err)
	}
	if f1.Entry() != f2.Entry() || f1.Entry().Depth != 2 {
		t.Errorf("depth2.bin entries %+v and %+v, want equal with depth 2", f1.Entry(), f2.Entry())
	}
	t.Logf("store: %d blocks after first archive, %d after second", n, st.Len())

	// Restoring over the existing tree replaces files atomically.
	os.WriteFile(filepath.Join(dst, "tree/depth2.bin"), []byte("old"), 0o644)
	if err := Restore(ctx, a, dst, RestoreOptions{Patterns: []string{"tree/modes", "tree/depth2.bin", "tree/sticky"}}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, filepath.Join(src, "tree"), filepath.Join(dst, "tree"))

	// Selecting a subtree and a glob.
	sel := t.TempDir()
	if err := Restore(ctx, a, sel, RestoreOptions{Patterns: []string{"tree/modes", "tree/many/f1?0"}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(sel, func(p string, d fs.DirEntry, err error) error {
		if !d.IsDir() {
			rel, _ := filepath.Rel(sel, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	want := "tree/many/f100 tree/many/f110 tree/many/f120 tree/many/f130 tree/many/f140 tree/many/f150 tree/many/f160 tree/many/f170 tree/many/f180 tree/many/f190 tree/modes/exec tree/modes/link tree/modes/readonly tree/modes/setgid tree/modes/setuid"
	if strings.Join(got, " ") != want {
		t.Errorf("selected restore gave\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if err := Restore(ctx, a, sel, RestoreOptions{Patterns: []string{"tree/nonesuch"}}); err == nil || !strings.Contains(err.Error(), "tree/nonesuch") {
		t.Errorf("restore of a missing path: err %v, want one naming it", err)
	}
}

// TestSparseHuge archives a 5 GiB sparse file with data past 4 GiB: it
// must cost almost nothing to store, read back exactly at random offsets,
// and restore as a sparse file.
func TestSparseHuge(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("sparse files")
	}
	ctx := context.Background()
	src := t.TempDir()
	const size = 5<<30 + 4097
	sp := filepath.Join(src, "sparse.img")
	makeSparse(t, sp, size)
	st := venti.NewMemStore()
	cs := &countingStore{Store: st}
	start := time.Now()
	score, err := Create(ctx, cs, []string{sp}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("archived 5 GiB sparse file in %v: %d blocks written", time.Since(start), len(cs.blocks))
	stored := 0
	for _, b := range cs.blocks {
		stored += len(b.data)
	}
	if stored > 200*1024 {
		t.Errorf("sparse file cost %d bytes of blocks, want almost nothing", stored)
	}
	a, err := Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Lookup(ctx, "sparse.img")
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != size || f.Entry().Depth != 3 {
		t.Errorf("entry %+v: want size %d depth 3", f.Entry(), int64(size))
	}
	r, err := f.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1<<20 + 5, 4<<30 + 12345, size - 3} {
		buf := make([]byte, 7)
		n, err := r.ReadAt(buf, off-1)
		if off == 0 {
			n, err = r.ReadAt(buf[1:], 0)
			n++
		}
		if off == size-3 {
			if err != io.EOF || n != 4 {
				t.Errorf("ReadAt at end: n %d err %v, want 4, EOF", n, err)
			}
			if !bytes.Equal(buf[:4], []byte("\x00dat")) {
				t.Errorf("ReadAt %d: %q", off, buf[:4])
			}
			continue
		}
		if err != nil || !bytes.Equal(buf[1:6], []byte("data!")) {
			t.Errorf("ReadAt %d: %q, %v", off, buf, err)
		}
	}
	dst := t.TempDir()
	start = time.Now()
	if err := Restore(ctx, a, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("restored in %v", time.Since(start))
	if d1, d2 := digest(t, sp), digest(t, filepath.Join(dst, "sparse.img")); d1 != d2 {
		t.Errorf("restored sparse file differs")
	}
	fi, err := os.Stat(filepath.Join(dst, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 1<<20 {
		t.Errorf("restored file occupies %d bytes, want it sparse", st.Blocks*512)
	}
}

// TestHoleSkippingSameTree checks that skipping holes (SEEK_DATA and whole
// zero subtrees) builds exactly the tree that writing every block would.
func TestHoleSkippingSameTree(t *testing.T) {
	ctx := context.Background()
	sp := filepath.Join(t.TempDir(), "sparse")
	const size = 10<<20 + 123
	makeSparse(t, sp, size)
	st := venti.NewMemStore()
	score, err := Create(ctx, st, []string{sp}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Lookup(ctx, "sparse")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sp)
	if err != nil {
		t.Fatal(err)
	}
	pool := newWritePool(ctx, st, DefaultBlockSize, 2, 8)
	defer pool.close()
	want, err := writeBytes(ctx, pool, venti.DataType, DefaultPointerSize, data)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Entry(); got.Score != want.Score || got.Depth != 2 || got.Size != want.Size {
		t.Errorf("archived entry %+v, writing every block gives %+v", got, want)
	}
}
