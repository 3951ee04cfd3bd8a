//go:build !linux

package store

import "os"

// datasync flushes f to stable storage (on macOS os.File.Sync uses
// F_FULLFSYNC).
func datasync(f *os.File) error { return f.Sync() }
