//go:build !unix && !windows

package daemon

import "os/exec"

// detach does nothing where processes cannot be detached.
func detach(*exec.Cmd) {}
