package qcow2

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// benchSeed makes a sparse 10 GiB seed with 8 MiB of data at the start
// (where a Plan 9 disk keeps its partition table and 9fat). It costs a few
// MiB of disk.
func benchSeed(b *testing.B) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "seed.qcow2")
	mustCreate(b, p, CreateOptions{Size: 10 << 30})
	im := mustOpen(b, p)
	if _, err := im.WriteAt(pattern(8<<20, 1), 0); err != nil {
		b.Fatal(err)
	}
	if err := im.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkClone10G creates a linked clone of a 10 GiB seed (target < 20 ms).
// Compare with BenchmarkBaselineAtomicFile, which creates a small file the
// same crash-safe way.
func BenchmarkClone10G(b *testing.B) {
	seed := benchSeed(b)
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		p := filepath.Join(dir, "clone"+strconv.Itoa(i)+".qcow2")
		if err := CreateOverlay(p, seed); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(p)
		i++
		b.StartTimer()
	}
}

// BenchmarkBaselineAtomicFile writes a 4 KiB file with temp file, fsync and
// link, the floor under any crash-safe file creation.
func BenchmarkBaselineAtomicFile(b *testing.B) {
	dir := b.TempDir()
	buf := pattern(4096, 1)
	i := 0
	for b.Loop() {
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		err := atomicCreate(p, func(f *os.File) error { _, err := f.Write(buf); return err })
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(p)
		i++
		b.StartTimer()
	}
}

// BenchmarkRewrite4KFirstWrite opens a fresh clone of a 10 GiB seed, rewrites
// 4 KiB inside the seed's data (as when editing plan9.ini: copy-on-write of
// one cluster, a new L2 table), and closes it (target < 50 ms).
func BenchmarkRewrite4KFirstWrite(b *testing.B) {
	seed := benchSeed(b)
	dir := b.TempDir()
	buf := pattern(4096, 7)
	i, syncs := 0, 0
	for b.Loop() {
		b.StopTimer()
		p := filepath.Join(dir, "clone"+strconv.Itoa(i)+".qcow2")
		if err := CreateOverlay(p, seed); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		im, err := openCounting(p, &syncs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := im.WriteAt(buf, 1<<20+512); err != nil {
			b.Fatal(err)
		}
		if err := im.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(p)
		i++
		b.StartTimer()
	}
	b.ReportMetric(float64(syncs)/float64(i), "fsyncs/op")
}

// countingFile counts fsyncs, the cost that dominates small writes.
type countingFile struct {
	*os.File
	n *int
}

func (c countingFile) Sync() error { *c.n++; return c.File.Sync() }

// openCounting opens path for writing like Open, counting fsyncs in *n.
func openCounting(path string, n *int) (*Image, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return openStorage(countingFile{f, n}, path, st.Size(), "", true, nil)
}

// BenchmarkRewrite4KInPlace rewrites 4 KiB that the overlay already holds,
// with Sync.
func BenchmarkRewrite4KInPlace(b *testing.B) {
	seed := benchSeed(b)
	p := filepath.Join(b.TempDir(), "clone.qcow2")
	if err := CreateOverlay(p, seed); err != nil {
		b.Fatal(err)
	}
	im := mustOpen(b, p)
	buf := pattern(4096, 7)
	for b.Loop() {
		if _, err := im.WriteAt(buf, 1<<20+512); err != nil {
			b.Fatal(err)
		}
		if err := im.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineWrite4KSync is a plain 4 KiB write and fsync on a file:
// the floor under the rewrite benchmarks.
func BenchmarkBaselineWrite4KSync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := pattern(4096, 7)
	for b.Loop() {
		if _, err := f.WriteAt(buf, 1<<20+512); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead1M reads 1 MiB through a clone from the seed.
func BenchmarkRead1M(b *testing.B) {
	seed := benchSeed(b)
	p := filepath.Join(b.TempDir(), "clone.qcow2")
	if err := CreateOverlay(p, seed); err != nil {
		b.Fatal(err)
	}
	im := mustOpen(b, p)
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := im.ReadAt(buf, 2<<20); err != nil {
			b.Fatal(err)
		}
	}
}
