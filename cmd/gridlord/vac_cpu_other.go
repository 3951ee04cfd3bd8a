//go:build !unix

package main

import "time"

// vacProcessCPU is not measured here; "bench vac" then omits CPU figures.
func vacProcessCPU() time.Duration { return 0 }
