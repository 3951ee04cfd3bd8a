//go:build unix && !linux && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package vac

import "syscall"

// atimeOf is not known here; the caller records the mtime instead.
func atimeOf(*syscall.Stat_t) int64 { return 0 }
