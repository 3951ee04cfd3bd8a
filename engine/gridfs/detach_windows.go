//go:build windows

package gridfs

import (
	"os/exec"
	"syscall"
)

// detach starts cmd without a console, in a process group of its own, so it
// outlives its starter.
func detach(cmd *exec.Cmd) {
	const detachedProcess = 0x00000008
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP | detachedProcess}
}
