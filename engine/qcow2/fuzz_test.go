package qcow2

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSeeds returns small valid images for the fuzzers' seed corpus: empty,
// with data, with a compressed cluster, and an overlay header.
func fuzzSeeds(f *testing.F) [][]byte {
	dir := f.TempDir()
	var seeds [][]byte
	add := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	empty := filepath.Join(dir, "empty.qcow2")
	mustCreate(f, empty, CreateOptions{Size: 64 << 10, ClusterSize: 512})
	add(empty)
	data := filepath.Join(dir, "data.qcow2")
	mustCreate(f, data, CreateOptions{Size: 64 << 10, ClusterSize: 512})
	im := mustOpen(f, data)
	im.WriteAt(pattern(3000, 1), 100)
	im.WriteAt(pattern(512, 2), 40<<10)
	im.Close()
	add(data)
	compressCluster(f, data, 2, pattern(512, 3))
	add(data)
	ov := filepath.Join(dir, "ov.qcow2")
	mustCreate(f, ov, CreateOptions{BackingFile: "empty.qcow2", ClusterSize: 1024})
	add(ov)
	return seeds
}

// FuzzParseHeader feeds arbitrary bytes to the header parser.
func FuzzParseHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s[:min(len(s), 4096)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b, int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrUnsupported: %v", err)
			}
			return
		}
		if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits || h.size > maxVirtualSize {
			t.Fatalf("accepted header with cluster_bits %d size %d", h.clusterBits, h.size)
		}
	})
}

// FuzzOpen writes arbitrary bytes to a file and opens, reads and writes it
// as an image: it must fail with a clear error or work, never panic, and a
// refused file must be byte-identical afterwards. L1 and L2 tables,
// refcounts and compressed clusters are all reached through the seeds.
func FuzzOpen(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "img.qcow2")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// Backing files resolve next to the image; give the seeds theirs.
		if err := os.WriteFile(filepath.Join(dir, "empty.qcow2"), seeds[0], 0o644); err != nil {
			t.Fatal(err)
		}
		before := fileHash(t, p)
		checkOpenError := func(t *testing.T, err error) {
			t.Helper()
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the image: %v", err)
			}
		}

		ro, err := OpenReadOnly(p)
		if err != nil {
			checkOpenError(t, err)
		} else {
			ro.Info()
			buf := make([]byte, 5000)
			for _, off := range []int64{0, ro.Size() / 2, ro.Size() - 100} {
				if off >= 0 {
					if _, err := ro.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
						checkOpenError(t, err)
					}
				}
			}
			ro.Close()
		}
		if fileHash(t, p) != before {
			t.Fatal("read-only use changed the file")
		}

		rw, err := Open(p)
		if err != nil {
			checkOpenError(t, err)
			if fileHash(t, p) != before {
				t.Fatal("refused image was modified")
			}
			return
		}
		defer rw.Close()
		for _, off := range []int64{0, rw.Size() / 3} {
			if n := min(2000, rw.Size()-off); n > 0 {
				rw.WriteAt(pattern(int(n), 5), off) // may fail on bad metadata, must not panic
			}
		}
	})
}

// FuzzTables overwrites the L1 table, the first L2 table and the first
// refcount block of a valid image with fuzzed bytes, then reads the whole
// disk and writes to it: every entry kind (data, zero, compressed,
// misaligned, past the end of the file) reaches the parser directly.
func FuzzTables(f *testing.F) {
	dir := f.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	mustCreate(f, base, CreateOptions{Size: 32 << 10, ClusterSize: 512})
	im := mustOpen(f, base)
	im.WriteAt(pattern(3000, 1), 100)
	im.Close()
	compressCluster(f, base, 9, pattern(512, 3))
	img, err := os.ReadFile(base)
	if err != nil {
		f.Fatal(err)
	}
	im = mustOpen(f, base)
	l1off := int64(im.h.l1Offset)
	l2off := int64(im.l1[0] & offsetMask)
	rboff := int64(im.alloc.table[0] & offsetMask)
	im.Close()
	f.Add(img[l1off:l1off+8], img[l2off:l2off+512], img[rboff:rboff+512])
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0x2, 0}, []byte{0x40, 0, 0, 0, 0, 0, 0x10, 0x33, 0, 0, 0, 0, 0, 0, 0x0a, 0x01}, []byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, l1, l2, rb []byte) {
		b := bytes.Clone(img)
		copy(b[l1off:l1off+8], l1)
		copy(b[l2off:l2off+512], l2)
		copy(b[rboff:rboff+512], rb)
		p := filepath.Join(t.TempDir(), "img.qcow2")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		im, err := Open(p)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the image: %v", err)
			}
			return
		}
		defer im.Close()
		buf := make([]byte, im.Size())
		if _, err := im.ReadAt(buf, 0); err != nil && !strings.Contains(err.Error(), p) {
			t.Fatalf("error does not name the image: %v", err)
		}
		for _, off := range []int64{0, 4600, 9 * 512} {
			if _, err := im.WriteAt(pattern(700, 5), off); err != nil && !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the image: %v", err)
			}
		}
	})
}
