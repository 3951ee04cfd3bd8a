//go:build !unix && !windows

package app

import "os/exec"

// detach does nothing where processes cannot be detached.
func detach(*exec.Cmd) {}
