//go:build unix

package store

import (
	"os"
	"strconv"
	"syscall"
)

// mapArena maps size bytes of f read-only, or returns nil when that is not
// possible (a 32-bit address space, a failed mmap): reads then use pread.
// The mapping may extend past the end of the file; only bytes below the
// arena's readable limit are ever touched.
func mapArena(f *os.File, size int64) []byte {
	if strconv.IntSize < 64 || size <= 0 {
		return nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return b
}

// unmapArena releases a mapping made by mapArena.
func unmapArena(b []byte) error {
	if b == nil {
		return nil
	}
	return syscall.Munmap(b)
}
