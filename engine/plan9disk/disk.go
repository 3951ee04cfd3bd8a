// Package plan9disk finds and edits the configuration stored on a Plan 9
// disk image offline: the partition table (MBR type 0x39 or a GPT "plan9"
// partition, subdivided by the "part NAME START END" text in its second
// sector), plan9.ini in the 9fat partition, the nvram record, and the fossil
// and venti config blocks.
//
// Everything works on a Disk, so the same code edits raw images and (through
// an adapter) qcow2 images. Subpackages do one job each: fat (the FAT file
// system), ini (plan9.ini text), nvram (the key record).
//
// Locking rule: nothing here locks; callers must not edit one image from two
// goroutines or processes at once.
package plan9disk

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// SectorSize is the sector size of the disks Plan 9 partitions (prep(8)).
const SectorSize = 512

// Disk is a disk image: random-access reads and writes and a size in bytes.
// *File implements it for raw images; a qcow2 image can too.
type Disk interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
}

// File is a raw disk image file.
type File struct {
	f    *os.File
	size int64
}

var _ Disk = (*File)(nil)

// OpenFile opens the raw image at path, for writing when writable is set.
func OpenFile(path string, writable bool) (*File, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open disk image: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open disk image: %w", err)
	}
	return &File{f: f, size: st.Size()}, nil
}

// ReadAt reads from the image.
func (f *File) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }

// WriteAt writes to the image; writes past the end are refused so that a
// bad offset never grows the file.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > f.size {
		return 0, fmt.Errorf("write %d bytes at %d: past the end of the %d-byte image", len(p), off, f.size)
	}
	return f.f.WriteAt(p, off)
}

// Size returns the image size in bytes.
func (f *File) Size() int64 { return f.size }

// Sync flushes the image to stable storage.
func (f *File) Sync() error { return f.f.Sync() }

// Close syncs and closes the image.
func (f *File) Close() error {
	return errors.Join(f.f.Sync(), f.f.Close())
}

// Section is the part of a Disk that one partition occupies. Reads and
// writes outside it fail.
type Section struct {
	d        Disk
	off, len int64
	name     string
}

var _ Disk = (*Section)(nil)

// NewSection returns the n bytes of d starting at byte off.
func NewSection(d Disk, name string, off, n int64) *Section {
	return &Section{d: d, off: off, len: n, name: name}
}

// ReadAt reads within the section.
func (s *Section) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= s.len {
		return 0, fmt.Errorf("read partition %s at %d: %w", s.name, off, io.EOF)
	}
	want := len(p)
	if int64(want) > s.len-off {
		p = p[:s.len-off]
	}
	n, err := s.d.ReadAt(p, s.off+off)
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// WriteAt writes within the section; a write that would cross its end is
// refused whole.
func (s *Section) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.len {
		return 0, fmt.Errorf("write partition %s: %d bytes at %d crosses its end (%d bytes)", s.name, len(p), off, s.len)
	}
	return s.d.WriteAt(p, s.off+off)
}

// Size is the section length in bytes.
func (s *Section) Size() int64 { return s.len }

// Sync flushes the underlying disk when it can sync (File and qcow2 images
// can); otherwise it does nothing.
func (s *Section) Sync() error {
	if sy, ok := s.d.(interface{ Sync() error }); ok {
		return sy.Sync()
	}
	return nil
}
