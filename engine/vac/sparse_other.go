//go:build !linux

package vac

import (
	"errors"
	"os"
)

// holeFinder is a no-op where SEEK_DATA is not available: every block is
// read, and zero blocks are still detected and not stored.
type holeFinder struct{}

func newHoleFinder(*os.File, int64) *holeFinder { return &holeFinder{} }

func (*holeFinder) zeroBlocksAt(off, ds int64) int64 { return 0 }

// allocate does nothing here: the blocks are allocated as they are
// written.
func allocate(*os.File, int64, int64) error { return errors.ErrUnsupported }
