//go:build !linux

package store

import (
	"errors"
	"os"
)

// openDirect is not done on this system: appends go through the page
// cache (pwrite).
func openDirect(path string) (*os.File, error) { return nil, errors.ErrUnsupported }
