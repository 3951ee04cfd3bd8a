package qcow2

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// model is the expected contents of a virtual disk.
type model []byte

func (m model) write(t testing.TB, im *Image, p []byte, off int64) {
	t.Helper()
	n, err := im.WriteAt(p, off)
	if err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
	}
	copy(m[off:], p)
}

// verify reads the whole disk in odd-sized pieces and compares with m.
func (m model) verify(t testing.TB, im *Image) {
	t.Helper()
	if im.Size() != int64(len(m)) {
		t.Fatalf("Size() = %d, want %d", im.Size(), len(m))
	}
	got := make([]byte, len(m))
	for off := 0; off < len(m); {
		n := min(len(m)-off, 12345)
		if _, err := im.ReadAt(got[off:off+n], int64(off)); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
		off += n
	}
	if i := firstDiff(got, m); i >= 0 {
		t.Fatalf("disk differs from model at byte %d: got %#x want %#x", i, got[i], m[i])
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>9)
	}
	return b
}

func mustCreate(t testing.TB, path string, opts CreateOptions) {
	t.Helper()
	if err := Create(path, opts); err != nil {
		t.Fatal(err)
	}
}

func mustOpen(t testing.TB, path string) *Image {
	t.Helper()
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

func TestCreateWriteRead(t *testing.T) {
	for _, cs := range []int64{512, 4096, 65536, 2 << 20} {
		t.Run(byteSize(cs), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "a.qcow2")
			const size = 5<<20 + 1000 // not a multiple of the cluster size
			mustCreate(t, p, CreateOptions{Size: size, ClusterSize: cs})
			mustCheckClean(t, p)
			im := mustOpen(t, p)
			m := make(model, size)
			m.verify(t, im) // empty reads as zeros
			r := rand.New(rand.NewPCG(uint64(cs), 1))
			for i := range 40 {
				n := 1 + r.IntN(min(3*int(cs)+100, 1<<20))
				off := r.Int64N(size - int64(n))
				m.write(t, im, pattern(n, byte(i)), off)
			}
			m.write(t, im, pattern(1000, 99), size-1000) // the partial last cluster
			m.verify(t, im)
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			mustCheckClean(t, p)
			m.verify(t, mustOpen(t, p))
		})
	}
}

func byteSize(n int64) string { return strconv.FormatInt(n, 10) }

func TestOverlayCopyOnWrite(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.qcow2")
	const size = 3 << 20
	mustCreate(t, seed, CreateOptions{Size: size, ClusterSize: 4096})
	m := make(model, size)
	s := mustOpen(t, seed)
	m.write(t, s, pattern(size/2, 1), 1000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seedHash := fileHash(t, seed)

	// Overlay with a different cluster size and a relative backing path.
	sub := filepath.Join(dir, "vm")
	os.Mkdir(sub, 0o755)
	ov := filepath.Join(sub, "disk.qcow2")
	mustCreate(t, ov, CreateOptions{BackingFile: "../seed.qcow2", ClusterSize: 65536})
	im := mustOpen(t, ov)
	m.verify(t, im)
	in := im.Info()
	if in.BackingFile != "../seed.qcow2" || in.BackingFormat != FormatQcow2 || len(in.Chain()) != 2 || in.Backing.ClusterSize != 4096 {
		t.Fatalf("Info = %+v", in)
	}
	m.write(t, im, []byte("hello"), 5)             // partial cluster over seed data
	m.write(t, im, pattern(70000, 9), 65536*3-100) // spans clusters
	m.write(t, im, pattern(4096, 3), size-4096)    // over an unallocated seed area
	m.write(t, im, pattern(200, 4), 10)            // rewrite in place
	m.verify(t, im)
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	mustCheckClean(t, ov)
	if fileHash(t, seed) != seedHash {
		t.Fatal("writing the overlay changed the seed")
	}
	m.verify(t, mustOpen(t, ov))

	// Flatten gives the same disk without a backing file.
	flat := filepath.Join(dir, "flat.qcow2")
	var last int64
	if err := Flatten(context.Background(), ov, flat, func(done, total int64) { last = done }); err != nil {
		t.Fatal(err)
	}
	if last != size {
		t.Fatalf("progress ended at %d, want %d", last, size)
	}
	mustCheckClean(t, flat)
	fi := mustOpen(t, flat)
	if fi.Info().Backing != nil {
		t.Fatal("flattened image has a backing file")
	}
	m.verify(t, fi)
	if err := Flatten(context.Background(), ov, flat, nil); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Flatten over an existing file: %v, want ErrExist", err)
	}
}

func TestRawBacking(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "seed.img")
	m := model(pattern(1<<20+512, 5))
	if err := os.WriteFile(raw, m, 0o644); err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "ov.qcow2")
	mustCreate(t, ov, CreateOptions{BackingFile: raw, Size: 2 << 20})
	im := mustOpen(t, ov)
	m = append(m, make([]byte, 2<<20-len(m))...) // overlay bigger than its backing
	m.verify(t, im)
	m.write(t, im, pattern(3000, 7), 1<<20-1000)
	m.verify(t, im)
	if got := im.Info().Backing.Format; got != FormatRaw {
		t.Fatalf("backing format %q", got)
	}
	im.Close()
	mustCheckClean(t, ov)

	// A raw image opened directly reads and writes in place.
	r := mustOpen(t, raw)
	rm := model(pattern(1<<20+512, 5))
	rm.write(t, r, []byte("xyz"), 7)
	rm.verify(t, r)
}

// TestRefcountGrowth writes enough 512-byte clusters to need new refcount
// blocks and to move the refcount table (one table cluster covers 64 blocks
// of 256 clusters, i.e. 8 MiB of file).
func TestRefcountGrowth(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "g.qcow2")
	const size = 12 << 20
	mustCreate(t, p, CreateOptions{Size: size, ClusterSize: 512})
	im := mustOpen(t, p)
	oldTable := im.h.refTableOffset
	m := make(model, size)
	for off := int64(0); off < size; off += 1 << 20 {
		m.write(t, im, pattern(1<<20, byte(off>>20)), off)
	}
	m.verify(t, im)
	if im.h.refTableOffset == oldTable {
		t.Fatal("refcount table did not move; test does not exercise growth")
	}
	im.Close()
	mustCheckClean(t, p)
	m.verify(t, mustOpen(t, p))
}

// compressImage rewrites cluster vc of the image at p as a zlib-compressed
// cluster appended to the file, as "qemu-img convert -c" stores it, and
// returns the cluster's contents.
func compressCluster(t testing.TB, p string, vc int64, data []byte) {
	t.Helper()
	im := mustOpen(t, p)
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestCompression)
	zw.Write(data)
	zw.Close()
	host := im.alloc.end + 100 // not sector aligned, like QEMU packs them
	sectors := (host&511 + int64(z.Len()) + 511) / 512
	for c := host / im.cs; c <= (host&^511+sectors*512-1)/im.cs; c++ {
		if err := im.addRef(c, 1); err != nil {
			t.Fatal(err)
		}
	}
	im.alloc.end = (host&^511 + sectors*512 + im.cs - 1) &^ (im.cs - 1)
	if err := im.write(z.Bytes(), host); err != nil {
		t.Fatal(err)
	}
	if err := im.commitRefs(); err != nil {
		t.Fatal(err)
	}
	x := 62 - (im.h.clusterBits - 8)
	e := uint64(host) | uint64(sectors-1)<<x | flagCompress
	l2off := im.l1[vc/im.h.l2Entries()] & offsetMask
	if l2off == 0 {
		t.Fatal("compressCluster needs an allocated L2 table")
	}
	tbl, err := im.l2Table(l2off)
	if err != nil {
		t.Fatal(err)
	}
	tbl[vc%im.h.l2Entries()] = e
	if err := im.writeL2(l2off, int(vc%im.h.l2Entries()), int(vc%im.h.l2Entries())); err != nil {
		t.Fatal(err)
	}
	im.Close()
}

func TestCompressedClusters(t *testing.T) {
	for _, cs := range []int64{512, 65536} {
		t.Run(byteSize(cs), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "c.qcow2")
			size := 8 * cs
			mustCreate(t, p, CreateOptions{Size: size, ClusterSize: cs})
			m := make(model, size)
			im := mustOpen(t, p)
			m.write(t, im, []byte{1}, 0) // allocates the L2 table
			im.Close()
			c2 := pattern(int(cs), 42)
			compressCluster(t, p, 2, c2)
			copy(m[2*cs:], c2)
			c3 := bytes.Repeat([]byte("plan9 "), int(cs)/6+1)[:cs]
			compressCluster(t, p, 3, c3)
			copy(m[3*cs:], c3)
			mustCheckClean(t, p)
			im = mustOpen(t, p)
			m.verify(t, im)
			// Overwriting part of a compressed cluster copies it out and
			// frees the compressed data's refcount.
			m.write(t, im, []byte("new"), 2*cs+5)
			m.verify(t, im)
			im.Close()
			mustCheckClean(t, p)
			m.verify(t, mustOpen(t, p))
		})
	}
}

// headerPatch builds a valid image and edits its header bytes.
func refusedImage(t *testing.T, edit func(b []byte)) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bad.qcow2")
	mustCreate(t, p, CreateOptions{Size: 1 << 20, ClusterSize: 4096})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edit(b)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRefuseUnsupported(t *testing.T) {
	be := binary.BigEndian
	cases := []struct {
		name string
		edit func(b []byte)
		want error
	}{
		{"encrypted", func(b []byte) { be.PutUint32(b[32:], 2) }, ErrUnsupported},
		{"dirty", func(b []byte) { b[79] |= incDirty }, ErrUnsupported},
		{"corrupt bit", func(b []byte) { b[79] |= incCorrupt }, ErrUnsupported},
		{"external data file", func(b []byte) { b[79] |= incDataFile }, ErrUnsupported},
		{"unknown incompatible", func(b []byte) { b[72] |= 0x80 }, ErrUnsupported},
		{"zstd", func(b []byte) { b[79] |= incCompressType; b[104] = 1 }, ErrUnsupported},
		{"version 4", func(b []byte) { be.PutUint32(b[4:], 4) }, ErrUnsupported},
		{"data file extension", func(b []byte) {
			be.PutUint32(b[112:], extDataFile)
			be.PutUint32(b[116:], 4)
			copy(b[120:], "x.im")
		}, ErrUnsupported},
		{"bad cluster bits", func(b []byte) { be.PutUint32(b[20:], 30) }, ErrCorrupt},
		{"short L1", func(b []byte) { be.PutUint32(b[36:], 0) }, ErrCorrupt},
		{"misaligned L1", func(b []byte) { be.PutUint64(b[40:], 4097) }, ErrCorrupt},
		{"missing backing", func(b []byte) {
			be.PutUint64(b[8:], 1000)
			be.PutUint32(b[16:], 7)
			copy(b[1000:], "nothere")
		}, fs.ErrNotExist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := refusedImage(t, c.edit)
			before := fileHash(t, p)
			im, err := Open(p)
			if err == nil {
				im.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
			t.Log(err)
			if fileHash(t, p) != before {
				t.Fatal("refused image was modified")
			}
		})
	}
}

func TestSnapshotsReadOnly(t *testing.T) {
	p := refusedImage(t, func(b []byte) { binary.BigEndian.PutUint32(b[60:], 1) })
	if _, err := Open(p); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Open for writing with snapshots: %v", err)
	}
	im, err := OpenReadOnly(p)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if _, err := im.WriteAt([]byte{1}, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("WriteAt on read-only image: %v", err)
	}
}

func TestAutoclearClearedOnWrite(t *testing.T) {
	p := refusedImage(t, func(b []byte) { b[95] = 1 }) // bitmaps autoclear bit
	im := mustOpen(t, p)
	im.WriteAt([]byte{1}, 0)
	im.Close()
	b, _ := os.ReadFile(p)
	if b[95] != 0 {
		t.Fatal("autoclear bit not cleared by a write")
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.qcow2")
	os.WriteFile(p, []byte("keep"), 0o644)
	if err := Create(p, CreateOptions{Size: 1 << 20}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over existing file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "keep" {
		t.Fatal("existing file changed")
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
}

func TestBackingLoop(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.qcow2")
	b := filepath.Join(dir, "b.qcow2")
	mustCreate(t, a, CreateOptions{Size: 1 << 20})
	mustCreate(t, b, CreateOptions{BackingFile: "a.qcow2"})
	// Point a at b: a loop.
	raw, _ := os.ReadFile(a)
	binary.BigEndian.PutUint64(raw[8:], 4000)
	binary.BigEndian.PutUint32(raw[16:], 7)
	copy(raw[4000:], "b.qcow2")
	os.WriteFile(a, raw, 0o644)
	if _, err := OpenReadOnly(b); err == nil || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("open of a looping chain: %v", err)
	}
}

// TestConcurrentUse writes disjoint regions from several goroutines while
// others read; run with -race.
func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.qcow2")
	mustCreate(t, seed, CreateOptions{Size: 2 << 20, ClusterSize: 4096})
	ov := filepath.Join(dir, "ov.qcow2")
	mustCreate(t, ov, CreateOptions{BackingFile: seed, ClusterSize: 4096})
	im := mustOpen(t, ov)
	const workers, chunk = 4, 3000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 20 {
				off := int64((i*workers + w) * chunk)
				if _, err := im.WriteAt(pattern(chunk, byte(w)), off); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 10000)
			for i := range 20 {
				if _, err := im.ReadAt(buf, int64(i*7000)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	m := make(model, 2<<20)
	for w := range workers {
		for i := range 20 {
			copy(m[(i*workers+w)*chunk:], pattern(chunk, byte(w)))
		}
	}
	m.verify(t, im)
	im.Close()
	mustCheckClean(t, ov)
}

func TestRefuseOtherFormats(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.vmdk")
	os.WriteFile(p, append([]byte("KDMV"), make([]byte, 4096)...), 0o644)
	if _, err := Open(p); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "vmdk") {
		t.Fatalf("Open of a vmdk: %v", err)
	}
}
