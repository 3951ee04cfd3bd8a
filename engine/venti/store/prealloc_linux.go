package store

import (
	"os"
	"syscall"
)

// canPreallocate says whether preallocate can work here.
const canPreallocate = true

// preallocate reserves the disk blocks of f's bytes [off, off+n) without
// changing its size (fallocate with FALLOC_FL_KEEP_SIZE).
func preallocate(f *os.File, off, n int64) error {
	const keepSize = 0x01 // FALLOC_FL_KEEP_SIZE
	for {
		err := syscall.Fallocate(int(f.Fd()), keepSize, off, n)
		if err != syscall.EINTR {
			return err
		}
	}
}
