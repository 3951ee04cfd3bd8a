package store

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident reports whether the bytes m[lo:hi] of a mapping lie in pages
// the page cache holds (mincore(2)), so that reading them waits for no
// disk.
func resident(m []byte, lo, hi int64) bool {
	if lo < 0 || lo >= hi || hi > int64(len(m)) {
		return false
	}
	ps := int64(os.Getpagesize())
	start := lo / ps * ps
	n := (hi - start + ps - 1) / ps
	var small [32]byte
	vec := small[:]
	if n > int64(len(vec)) {
		vec = make([]byte, n)
	}
	vec = vec[:n]
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[start])), uintptr(hi-start), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return false
	}
	for _, v := range vec {
		if v&1 == 0 {
			return false
		}
	}
	return true
}
