package store

import "unsafe"

// dioAlign is the alignment of direct writes: their file offset, length
// and memory address. 4096 covers devices of 512- and 4096-byte logical
// blocks.
const dioAlign = 4096

// alignedBuf returns an empty slice of capacity n (a multiple of dioAlign)
// whose first byte is dioAlign-aligned in memory, as O_DIRECT needs.
func alignedBuf(n int) []byte {
	b := make([]byte, n+dioAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % dioAlign); r != 0 {
		off = dioAlign - r
	}
	return b[off : off : off+n]
}

// alignUp rounds n up to a multiple of dioAlign.
func alignUp(n int64) int64 { return (n + dioAlign - 1) &^ (dioAlign - 1) }
