package store

import (
	"os"
	"syscall"
)

// openDirect opens path for writing with O_DIRECT: writes go from the
// caller's buffer to the device without passing through the page cache.
// It fails where the file system refuses O_DIRECT (tmpfs, some FUSE).
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
}
