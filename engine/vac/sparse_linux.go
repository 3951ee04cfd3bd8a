//go:build linux

package vac

import (
	"errors"
	"os"
	"syscall"
)

// lseek whence values for finding holes (Linux).
const (
	seekData = 3
	seekHole = 4
)

// holeFinder finds whole blocks inside holes of a sparse file with
// SEEK_DATA/SEEK_HOLE, so that they are recorded as zero without being
// read. If the file system does not support it, everything is read (and
// zero blocks are still detected, just not skipped).
type holeFinder struct {
	f       *os.File
	size    int64
	dataEnd int64 // reads below this offset are known to be data
	ok      bool
}

func newHoleFinder(f *os.File, size int64) *holeFinder {
	return &holeFinder{f: f, size: size, ok: true}
}

// zeroBlocksAt returns how many whole blocks of ds bytes starting at off
// lie entirely in a hole.
func (h *holeFinder) zeroBlocksAt(off, ds int64) int64 {
	if !h.ok || off < h.dataEnd || off >= h.size {
		return 0
	}
	d, err := h.f.Seek(off, seekData)
	if errors.Is(err, syscall.ENXIO) {
		d = h.size
	} else if err != nil {
		h.ok = false
		return 0
	}
	d = min(d, h.size)
	n := (d - off) / ds
	start := off + n*ds
	he := h.size
	if d < h.size {
		if he, err = h.f.Seek(d, seekHole); err != nil {
			h.ok = false
			he = h.size
		}
	}
	h.dataEnd = max(he, start+ds)
	return n
}

// allocate reserves the disk blocks of f's bytes [off, off+n) just
// before they are written (fallocate, mode 0): ext4 then writes into
// blocks it has instead of allocating them as the pages go in (a 256 MiB
// restore in 1 MiB writes: about 70 ms of CPU plain, 50 ms allocated
// first). Only ranges about to be written are allocated, so the holes of
// a sparse file stay holes.
func allocate(f *os.File, off, n int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, off, n)
		if err != syscall.EINTR {
			return err
		}
	}
}
