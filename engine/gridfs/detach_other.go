//go:build !unix && !windows

package gridfs

import "os/exec"

// detach does nothing where processes cannot be detached.
func detach(*exec.Cmd) {}
