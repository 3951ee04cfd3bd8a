//go:build !linux

package store

import (
	"errors"
	"os"
)

// canPreallocate says whether preallocate can work here.
const canPreallocate = false

// preallocate is not done on this system: appends allocate as they go.
func preallocate(f *os.File, off, n int64) error { return errors.ErrUnsupported }
