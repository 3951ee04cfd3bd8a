//go:build !unix

package main

import "time"

// processCPU is not available here; the benchmark then omits CPU figures.
func processCPU() (time.Duration, bool) { return 0, false }
