package qcow2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"

	"gridlord/engine/atomicfile"
)

// DefaultClusterSize is the cluster size of images we create unless told
// otherwise (QEMU's default too).
const DefaultClusterSize = 64 << 10

// CreateOptions describes a new qcow2 image.
type CreateOptions struct {
	// Size is the virtual size in bytes; 0 means the size of the backing
	// file (and is an error without one).
	Size int64
	// ClusterSize is a power of two from 512 B to 2 MiB; 0 means
	// DefaultClusterSize.
	ClusterSize int64
	// BackingFile, if set, makes the new image an overlay (linked clone).
	// It is stored as given; a relative path is relative to the directory
	// of the new image, as in QEMU.
	BackingFile string
	// BackingFormat is FormatQcow2 or FormatRaw; "" means detect the
	// backing file's format and record it.
	BackingFormat string
}

// Create makes a new, empty qcow2 v3 image (compat 1.1, 16-bit refcounts) at
// path. With a backing file it is an overlay, created in time independent of
// the backing file's size: only the backing chain's headers are read, to
// check that it opens. The file appears atomically (temporary file, fsync,
// link); Create fails if path already exists.
func Create(path string, opts CreateOptions) error {
	cs := opts.ClusterSize
	if cs == 0 {
		cs = DefaultClusterSize
	}
	if cs < 1<<minClusterBits || cs > 1<<maxClusterBits || cs&(cs-1) != 0 {
		return fmt.Errorf("create %s: cluster size %d is not a power of two from 512 B to 2 MiB", path, cs)
	}
	h := &header{
		version:       3,
		clusterBits:   uint32(bits.TrailingZeros64(uint64(cs))),
		refcountOrder: 4,
		backingFile:   opts.BackingFile,
	}
	size := opts.Size
	if opts.BackingFile != "" {
		bpath := opts.BackingFile
		if !filepath.IsAbs(bpath) {
			bpath = filepath.Join(filepath.Dir(path), bpath)
		}
		b, err := open(bpath, opts.BackingFormat, false, nil)
		if err != nil {
			return fmt.Errorf("create %s: backing file: %w", path, err)
		}
		h.backingFormat = b.format
		if size == 0 {
			size = b.size
		}
		if err := b.Close(); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
	}
	if size <= 0 || size > maxVirtualSize {
		return fmt.Errorf("create %s: virtual size %d must be positive and at most %d", path, size, int64(maxVirtualSize))
	}
	h.size = uint64(size)
	return atomicCreate(path, func(f *os.File) error { return writeEmpty(f, h) })
}

// CreateOverlay makes a linked clone of backing at path: an empty qcow2
// overlay whose reads fall through to backing. See Create.
func CreateOverlay(path, backing string) error {
	return Create(path, CreateOptions{BackingFile: backing})
}

// layout computes, for an image whose first used clusters are fixed
// metadata, how many refcount-table and refcount-block clusters cover them
// all including themselves (16-bit refcounts).
func refLayout(cs, used int64) (rt, rb int64) {
	perBlock := cs / 2
	rt, rb = 1, 1
	for {
		total := used + rt + rb
		nrb := (total + perBlock - 1) / perBlock
		nrt := (nrb*8 + cs - 1) / cs
		if nrb == rb && nrt == rt {
			return rt, rb
		}
		rt, rb = max(rt, nrt), max(rb, nrb)
	}
}

// refStructures encodes a refcount table at tableOff followed by its
// blocks, giving clusters 0..total-1 a refcount of 1.
func refStructures(cs, tableOff, rt, rb, total int64) (table, blocks []byte) {
	table = make([]byte, rt*cs)
	blocks = make([]byte, rb*cs)
	for i := int64(0); i < rb; i++ {
		binary.BigEndian.PutUint64(table[i*8:], uint64(tableOff+(rt+i)*cs))
	}
	for c := int64(0); c < total; c++ {
		binary.BigEndian.PutUint16(blocks[c*2:], 1)
	}
	return table, blocks
}

// l1Entries is the number of L1 entries a disk of size bytes needs.
func l1Entries(size, cs int64) int64 {
	cover := cs * (cs / 8)
	return (size + cover - 1) / cover
}

// writeEmpty writes an empty image: header, refcount table, refcount
// blocks, zeroed L1 table. Zero regions are left to Truncate (sparse).
func writeEmpty(f *os.File, h *header) error {
	cs := h.clusterSize()
	l1n := l1Entries(int64(h.size), cs)
	l1c := max(1, (l1n*8+cs-1)/cs)
	rt, rb := refLayout(cs, 1+l1c)
	total := 1 + rt + rb + l1c
	h.refTableOffset, h.refTableClusters = uint64(cs), uint32(rt)
	h.l1Offset, h.l1Size = uint64((1+rt+rb)*cs), uint32(l1n)
	hdr, err := h.encodeV3()
	if err != nil {
		return err
	}
	table, blocks := refStructures(cs, cs, rt, rb, total)
	for _, w := range []struct {
		b   []byte
		off int64
	}{{trimZeros(hdr), 0}, {trimZeros(table), cs}, {trimZeros(blocks), (1 + rt) * cs}} {
		if _, err := f.WriteAt(w.b, w.off); err != nil {
			return err
		}
	}
	return f.Truncate(total * cs)
}

func trimZeros(b []byte) []byte { return bytes.TrimRight(b, "\x00") }

// atomicCreate creates path by filling a temporary file in the same
// directory, syncing it and linking it into place, so path either does not
// exist or is complete. It refuses to replace an existing file.
func atomicCreate(path string, fill func(*os.File) error) (err error) {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("create %s: %w", path, fs.ErrExist)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
	}()
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := fill(f); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("create %s: sync: %w", path, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("create %s: %w", path, cerr)
	}
	// Link fails if path appeared meanwhile; fall back to rename on file
	// systems without hard links.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", path, fs.ErrExist)
		}
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("create %s: %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
	}
	// Make the new directory entry durable (where the OS can).
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// Progress reports how many bytes of the virtual disk have been done.
type Progress func(done, total int64)

// Flatten writes a standalone qcow2 v3 copy of src (with its whole backing
// chain merged) to dst, which must not exist. Clusters that read as zeros are
// left unallocated, so the copy stays sparse. progress, if not nil, is called
// from the calling goroutine as the copy advances and once at the end.
// Cancelling ctx stops the copy and leaves no dst behind.
func Flatten(ctx context.Context, src, dst string, progress Progress) error {
	im, err := OpenReadOnly(src)
	if err != nil {
		return fmt.Errorf("flatten: %w", err)
	}
	defer im.Close()
	cs := int64(DefaultClusterSize)
	if im.h != nil {
		cs = im.cs
	}
	return atomicCreate(dst, func(f *os.File) error { return flattenInto(ctx, im, f, cs, progress) })
}

func flattenInto(ctx context.Context, im *Image, f *os.File, cs int64, progress Progress) error {
	size := im.size
	h := &header{
		version:       3,
		clusterBits:   uint32(bits.TrailingZeros64(uint64(cs))),
		refcountOrder: 4,
		size:          uint64(size),
	}
	l2n := cs / 8
	l1n := l1Entries(size, cs)
	l1c := max(1, (l1n*8+cs-1)/cs)
	l1 := make([]byte, l1c*cs)
	end := (1 + l1c) * cs // data starts after header and L1
	w := bufio.NewWriterSize(&offsetWriter{f: f, off: end}, 4<<20)
	buf := make([]byte, cs)
	zero := make([]byte, cs)
	l2 := make([]byte, cs)
	const report = 64 << 20
	lastReport := int64(0)
	for g := int64(0); g < l1n; g++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		gstart := g * l2n * cs
		gsize := min(l2n*cs, size-gstart)
		ok, err := im.mayHaveData(gstart, gsize)
		if err != nil {
			return err
		}
		if ok {
			clear(l2)
			used := false
			for i := int64(0); i*cs < gsize; i++ {
				off := gstart + i*cs
				if ok, err := im.mayHaveData(off, cs); err != nil {
					return err
				} else if !ok {
					continue
				}
				if err := im.readVirtual(buf, off); err != nil {
					return fmt.Errorf("read %s at %d: %w", im.path, off, err)
				}
				if bytes.Equal(buf, zero) {
					continue
				}
				if _, err := w.Write(buf); err != nil {
					return err
				}
				binary.BigEndian.PutUint64(l2[i*8:], uint64(end)|flagCopied)
				end += cs
				used = true
			}
			if used {
				if _, err := w.Write(l2); err != nil {
					return err
				}
				binary.BigEndian.PutUint64(l1[g*8:], uint64(end)|flagCopied)
				end += cs
			}
		}
		if done := gstart + gsize; progress != nil && done-lastReport >= report {
			progress(done, size)
			lastReport = done
		}
	}
	// Refcount structures go at the end and count every cluster once.
	used := end / cs
	rt, rb := refLayout(cs, used)
	table, blocks := refStructures(cs, end, rt, rb, used+rt+rb)
	if _, err := w.Write(table); err != nil {
		return err
	}
	if _, err := w.Write(blocks); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if _, err := f.WriteAt(l1, cs); err != nil {
		return err
	}
	h.l1Offset, h.l1Size = uint64(cs), uint32(l1n)
	h.refTableOffset, h.refTableClusters = uint64(end), uint32(rt)
	hdr, err := h.encodeV3()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return err
	}
	if progress != nil {
		progress(size, size)
	}
	return nil
}

// offsetWriter turns WriteAt into a sequential io.Writer.
type offsetWriter struct {
	f   *os.File
	off int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}
