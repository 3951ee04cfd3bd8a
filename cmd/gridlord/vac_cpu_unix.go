//go:build unix

package main

import (
	"syscall"
	"time"
)

// vacProcessCPU returns the user+system CPU time this process has used, so
// "bench vac" can report throughput per CPU-second, which stays meaningful
// on a machine shared with other work.
func vacProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
