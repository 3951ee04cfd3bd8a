//go:build !unix

package store

import "os"

// mapArena maps nothing here: reads use pread (ReadAt).
func mapArena(f *os.File, size int64) []byte { return nil }

// unmapArena releases a mapping made by mapArena.
func unmapArena(b []byte) error { return nil }
