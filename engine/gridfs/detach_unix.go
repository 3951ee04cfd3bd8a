//go:build unix

package gridfs

import (
	"os/exec"
	"syscall"
)

// detach makes cmd a session leader of its own, so it outlives its starter
// and is not killed by the terminal's signals.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }
