// Package qcow2 reads and writes qcow2 (versions 2 and 3) and raw disk
// images in pure Go, following backing chains, so Gridlord can clone seed
// images as linked clones and edit them offline without qemu-nbd or root.
//
// The on-disk format is QEMU's docs/interop/qcow2.txt. Reading supports every
// cluster size from 512 B to 2 MiB, any refcount width, zlib-compressed
// clusters and zero clusters. Writing goes into the top image only, with
// copy-on-write from the backing chain; see write.go for the order in which
// metadata reaches the disk.
//
// Locking: every exported method of *Image takes the image's mutex, so an
// Image is safe for concurrent use by several goroutines (operations are
// serialised). Backing images belong to the image that opened them. On Linux
// an image opened for writing takes the byte-range locks QEMU uses, so Open
// fails (ErrInUse) on an image a running QEMU uses and QEMU refuses an image
// we hold open for writing; elsewhere nothing stops that, so never write an
// image that a running VM uses.
package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Format names, as qemu-img spells them.
const (
	FormatQcow2 = "qcow2"
	FormatRaw   = "raw"
)

// maxChain bounds the length of a backing chain (and so catches loops).
const maxChain = 64

// ErrReadOnly is returned by WriteAt on an image opened with OpenReadOnly.
var ErrReadOnly = errors.New("image is open read-only")

// ErrInUse is wrapped by the error Open returns when another program, such
// as a QEMU running a VM on the image, holds QEMU's image locks on it (Linux
// only).
var ErrInUse = errors.New("image is in use")

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("image is closed")

// storage is the file under an image; *os.File implements it. Tests swap in
// files that fail part way to simulate a crash.
type storage interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Close() error
}

// Image is an open qcow2 or raw disk image together with its backing chain.
// It implements io.ReaderAt and io.WriterAt over the virtual disk.
type Image struct {
	mu       sync.Mutex
	path     string // as opened
	f        storage
	fileSize int64 // size of the file when opened, grown by our writes
	format   string
	writable bool
	closed   bool
	failed   error // sticky: a write failed part way; metadata in memory may differ from disk

	size    int64 // virtual size
	h       *header
	cs      int64 // cluster size (qcow2 only)
	l1      []uint64
	l2      map[uint64][]uint64 // L2 tables by host offset
	backing *Image

	zdesc uint64 // L2 entry of the compressed cluster in zbuf
	zbuf  []byte
	zr    io.ReadCloser // the inflater decompress reuses (a flate.Resetter)

	alloc *allocator // nil until the first write needs it
}

var (
	_ io.ReaderAt = (*Image)(nil)
	_ io.WriterAt = (*Image)(nil)
)

// Open opens the image at path for reading and writing. The format is
// detected from the file's magic; anything that is not qcow2 is opened as raw.
// Backing images are opened read-only. Unsupported features (encryption,
// external data files, unknown incompatible bits, dirty or corrupt bit,
// internal snapshots) are refused with an error wrapping ErrUnsupported;
// refusing never modifies the file.
func Open(path string) (*Image, error) { return open(path, "", true, nil) }

// OpenReadOnly opens the image at path for reading only, like Open.
func OpenReadOnly(path string) (*Image, error) { return open(path, "", false, nil) }

// open opens one image of a chain; seen holds the images above it.
func open(path, format string, writable bool, seen []os.FileInfo) (*Image, error) {
	if len(seen) >= maxChain {
		return nil, fmt.Errorf("open %s: backing chain longer than %d images (a loop?)", path, maxChain)
	}
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open image %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open image %s: not a regular file", path)
	}
	if writable {
		if err := lockForWrite(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("open image %s for writing: %w", path, err)
		}
	}
	for _, s := range seen {
		if os.SameFile(s, st) {
			f.Close()
			return nil, fmt.Errorf("open image %s: backing chain loops back to this file", path)
		}
	}
	im, err := openStorage(f, path, st.Size(), format, writable, append(seen, st))
	if err != nil {
		f.Close()
		return nil, err
	}
	return im, nil
}

// openStorage opens an image on f. On error the caller closes f.
func openStorage(f storage, path string, fileSize int64, format string, writable bool, seen []os.FileInfo) (*Image, error) {
	im := &Image{path: path, f: f, fileSize: fileSize, writable: writable}
	// The header, its extensions and the backing file name all lie in the
	// first cluster; read that much (the cluster size is in the header).
	first := make([]byte, min(fileSize, 4096))
	if _, err := f.ReadAt(first, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read header of %s: %w", path, err)
	}
	isQcow := len(first) >= 4 && binary.BigEndian.Uint32(first) == magic
	if isQcow && len(first) >= 24 {
		if cb := binary.BigEndian.Uint32(first[20:]); cb > 12 && cb <= maxClusterBits && fileSize > 4096 {
			first = make([]byte, min(fileSize, 1<<cb))
			if _, err := f.ReadAt(first, 0); err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read header of %s: %w", path, err)
			}
		}
	}
	if format == "" && !isQcow {
		if other := otherFormat(first); other != "" {
			return nil, fmt.Errorf("open %s: %w: image format %s (convert it with qemu-img convert -O qcow2)", path, ErrUnsupported, other)
		}
	}
	switch {
	case format == FormatRaw || (format == "" && !isQcow):
		im.format = FormatRaw
		im.size = fileSize
		return im, nil
	case format == FormatQcow2 || format == "":
		im.format = FormatQcow2
	default:
		return nil, fmt.Errorf("open %s: %w: image format %q (only qcow2 and raw are supported)", path, ErrUnsupported, format)
	}
	h, err := parseHeader(first, fileSize)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if writable {
		if h.incompatible&incCorrupt != 0 {
			return nil, fmt.Errorf("open %s for writing: %w: image is marked corrupt; repair it with \"qemu-img check -r all\"", path, ErrUnsupported)
		}
		if h.nbSnapshots != 0 {
			return nil, fmt.Errorf("open %s for writing: %w: image has %d internal snapshots", path, ErrUnsupported, h.nbSnapshots)
		}
	}
	im.h, im.cs, im.size = h, h.clusterSize(), int64(h.size)
	im.l2 = make(map[uint64][]uint64)
	if h.l1Size > 0 {
		raw := make([]byte, int(h.l1Size)*8)
		if _, err := f.ReadAt(raw, int64(h.l1Offset)); err != nil {
			return nil, fmt.Errorf("open %s: read L1 table: %w", path, err)
		}
		im.l1 = make([]uint64, h.l1Size)
		for i := range im.l1 {
			im.l1[i] = binary.BigEndian.Uint64(raw[i*8:])
		}
	}
	if writable {
		if err := im.loadAllocator(); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	if h.backingFile != "" {
		bpath := h.backingFile
		if !filepath.IsAbs(bpath) {
			bpath = filepath.Join(filepath.Dir(path), bpath)
		}
		bfmt := h.backingFormat
		if bfmt != "" && bfmt != FormatQcow2 && bfmt != FormatRaw {
			return nil, fmt.Errorf("open %s: %w: backing file %s has format %q", path, ErrUnsupported, h.backingFile, bfmt)
		}
		b, err := open(bpath, bfmt, false, seen)
		if err != nil {
			return nil, fmt.Errorf("open backing file of %s: %w", path, err)
		}
		im.backing = b
	}
	return im, nil
}

// Size returns the virtual size of the disk in bytes.
func (im *Image) Size() int64 { return im.size }

// Format returns FormatQcow2 or FormatRaw.
func (im *Image) Format() string { return im.format }

// Path returns the path the image was opened with.
func (im *Image) Path() string { return im.path }

// Sync flushes the top image's file to stable storage.
func (im *Image) Sync() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return ErrClosed
	}
	if !im.writable {
		return nil
	}
	if err := im.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", im.path, err)
	}
	return nil
}

// Close syncs (if writable) and closes the image and its backing chain.
// Calling Close again returns nil.
func (im *Image) Close() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return nil
	}
	im.closed = true
	var errs []error
	if im.writable {
		if err := im.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync %s: %w", im.path, err))
		}
	}
	if err := im.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", im.path, err))
	}
	if im.backing != nil {
		errs = append(errs, im.backing.Close())
	}
	return errors.Join(errs...)
}

// ReadAt reads len(p) bytes of the virtual disk at off, through the backing
// chain. Like os.File it returns io.EOF when the read runs past the end of
// the disk.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", im.path, off)
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return 0, ErrClosed
	}
	if im.failed != nil {
		// The in-memory tables may point at clusters the failed write
		// never filled: refuse rather than return wrong data.
		return 0, fmt.Errorf("read %s: an earlier write failed, reopen the image: %w", im.path, im.failed)
	}
	var eof error
	if off >= im.size {
		return 0, io.EOF
	}
	if rest := im.size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	if err := im.readLocked(p, off); err != nil {
		return 0, fmt.Errorf("read %s at %d: %w", im.path, off, err)
	}
	return len(p), eof
}

// readVirtual fills p from the virtual disk at off; bytes past the end of
// the disk read as zeros (a backing file may be smaller than its overlay).
func (im *Image) readVirtual(p []byte, off int64) error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if off >= im.size {
		clear(p)
		return nil
	}
	if rest := im.size - off; int64(len(p)) > rest {
		clear(p[rest:])
		p = p[:rest]
	}
	return im.readLocked(p, off)
}

// readLocked reads p at off, which lies within the virtual size.
func (im *Image) readLocked(p []byte, off int64) error {
	if im.format == FormatRaw {
		return im.readFile(p, off)
	}
	for len(p) > 0 {
		in := off & (im.cs - 1)
		n := min(im.cs-in, int64(len(p)))
		if err := im.readClusterPart(p[:n], off>>im.h.clusterBits, in); err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// readFile reads from the underlying file; bytes past its end read as
// zeros, as QEMU does.
func (im *Image) readFile(p []byte, off int64) error {
	n, err := im.f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(p[n:])
	return nil
}

// entry kinds
const (
	kindUnallocated = iota
	kindZero
	kindData
	kindCompressed
)

// classify returns what an L2 entry means and, for data, its host offset.
func (im *Image) classify(e uint64) (kind int, host int64, err error) {
	if e&flagCompress != 0 {
		return kindCompressed, 0, nil
	}
	host = int64(e & offsetMask)
	if im.h.version >= 3 && e&flagZero != 0 {
		return kindZero, host, nil
	}
	if host == 0 {
		return kindUnallocated, 0, nil
	}
	if host&(im.cs-1) != 0 {
		return 0, 0, fmt.Errorf("%w: data cluster offset %#x not cluster aligned", ErrCorrupt, host)
	}
	return kindData, host, nil
}

// readClusterPart reads p from virtual cluster vc starting at byte in.
func (im *Image) readClusterPart(p []byte, vc, in int64) error {
	e, err := im.l2Entry(vc)
	if err != nil {
		return err
	}
	kind, host, err := im.classify(e)
	if err != nil {
		return err
	}
	switch kind {
	case kindUnallocated:
		if im.backing != nil {
			return im.backing.readVirtual(p, vc*im.cs+in)
		}
		clear(p)
	case kindZero:
		clear(p)
	case kindData:
		return im.readFile(p, host+in)
	case kindCompressed:
		buf, err := im.decompress(e)
		if err != nil {
			return err
		}
		copy(p, buf[in:])
	}
	return nil
}

// l1Index returns the L1 index of virtual cluster vc.
func (im *Image) l1Index(vc int64) int64 { return vc / im.h.l2Entries() }

// l2Entry returns the L2 entry for virtual cluster vc (0 if unallocated).
func (im *Image) l2Entry(vc int64) (uint64, error) {
	i := im.l1Index(vc)
	if i >= int64(len(im.l1)) {
		return 0, fmt.Errorf("%w: cluster %d beyond L1 table", ErrCorrupt, vc)
	}
	off := im.l1[i] & offsetMask
	if off == 0 {
		return 0, nil
	}
	t, err := im.l2Table(off)
	if err != nil {
		return 0, err
	}
	return t[vc%im.h.l2Entries()], nil
}

// l2Table returns the L2 table at host offset off, reading it on first use.
func (im *Image) l2Table(off uint64) ([]uint64, error) {
	if t, ok := im.l2[off]; ok {
		return t, nil
	}
	if off&uint64(im.cs-1) != 0 {
		return nil, fmt.Errorf("%w: L2 table offset %#x not cluster aligned", ErrCorrupt, off)
	}
	if int64(off)+im.cs > im.fileSize {
		return nil, fmt.Errorf("%w: L2 table at %#x lies past the end of the file", ErrCorrupt, off)
	}
	raw := make([]byte, im.cs)
	if _, err := im.f.ReadAt(raw, int64(off)); err != nil {
		return nil, fmt.Errorf("read L2 table at %#x: %w", off, err)
	}
	t := make([]uint64, im.h.l2Entries())
	for i := range t {
		t[i] = binary.BigEndian.Uint64(raw[i*8:])
	}
	im.l2[off] = t
	return t, nil
}

// compressedSpan returns where the compressed data of L2 entry e lies: the
// host offset and the number of bytes counted by its sector field.
func (im *Image) compressedSpan(e uint64) (host, n int64) {
	x := 62 - (im.h.clusterBits - 8)
	host = int64(e & (1<<x - 1))
	sectors := int64((e>>x)&(1<<(62-x)-1)) + 1
	return host, sectors*512 - host&511
}

// decompress returns the cluster stored compressed by L2 entry e. The
// returned slice is valid until the next call.
func (im *Image) decompress(e uint64) ([]byte, error) {
	if im.zbuf != nil && im.zdesc == e {
		return im.zbuf, nil
	}
	host, n := im.compressedSpan(e)
	if host >= im.fileSize {
		return nil, fmt.Errorf("%w: compressed cluster at %#x lies past the end of the file", ErrCorrupt, host)
	}
	n = min(n, im.fileSize-host)
	src := make([]byte, n)
	if _, err := im.f.ReadAt(src, host); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read compressed cluster at %#x: %w", host, err)
	}
	if im.zbuf == nil {
		im.zbuf = make([]byte, im.cs)
	}
	im.zdesc = 0
	// One inflater per image, reset for each cluster (each would
	// otherwise allocate its tens of KiB of tables).
	if im.zr == nil {
		im.zr = flate.NewReader(byteReader(src))
	} else if err := im.zr.(flate.Resetter).Reset(byteReader(src), nil); err != nil {
		return nil, fmt.Errorf("compressed cluster at %#x: %w", host, err)
	}
	if _, err := io.ReadFull(im.zr, im.zbuf); err != nil {
		return nil, fmt.Errorf("%w: compressed cluster at %#x: %v", ErrCorrupt, host, err)
	}
	im.zdesc = e
	return im.zbuf, nil
}

// byteReader is a minimal io.ByteReader over a slice, so flate reads no
// further than it must.
func byteReader(b []byte) *sliceReader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *sliceReader) ReadByte() (byte, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// mayHaveData reports whether any byte in [off, off+n) of the virtual disk
// may be non-zero, looking through the chain. It is a cheap hint used to
// skip holes: false means the range certainly reads as zeros.
func (im *Image) mayHaveData(off, n int64) (bool, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if off >= im.size {
		return false, nil
	}
	n = min(n, im.size-off)
	if im.format == FormatRaw {
		return true, nil
	}
	for n > 0 {
		vc := off >> im.h.clusterBits
		in := off & (im.cs - 1)
		m := min(im.cs-in, n)
		if l1i := im.l1Index(vc); l1i < int64(len(im.l1)) && im.l1[l1i]&offsetMask == 0 {
			// No L2 table: the whole L1 range is unallocated here.
			m = min((l1i+1)*im.h.l2Entries()*im.cs-off, n)
		}
		e, err := im.l2Entry(vc)
		if err != nil {
			return false, err
		}
		kind, _, err := im.classify(e)
		if err != nil {
			return false, err
		}
		switch kind {
		case kindData, kindCompressed:
			return true, nil
		case kindUnallocated:
			if im.backing != nil {
				if ok, err := im.backing.mayHaveData(off, m); ok || err != nil {
					return ok, err
				}
			}
		}
		off, n = off+m, n-m
	}
	return false, nil
}

// otherFormat names the disk image format whose magic starts b, for formats
// we must not mistake for raw disks (writing them as raw would corrupt them).
func otherFormat(b []byte) string {
	for _, m := range []struct{ magic, name string }{
		{"KDMV", "vmdk"}, {"# Disk DescriptorFile", "vmdk"}, {"vhdxfile", "vhdx"},
		{"conectix", "vpc (vhd)"}, {"<<< Oracle VM VirtualBox Disk Image >>>", "vdi"},
		{"QEVM", "qed"},
	} {
		if bytes.HasPrefix(b, []byte(m.magic)) {
			return m.name
		}
	}
	return ""
}
