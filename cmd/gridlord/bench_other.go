//go:build !unix

package main

import (
	"os"
	"time"
)

// allocatedBytes is the disk space fi's file takes; here, its size.
func allocatedBytes(fi os.FileInfo) int64 { return fi.Size() }

// processCPU is not available here; the benchmark then omits CPU figures.
func processCPU() (time.Duration, bool) { return 0, false }
