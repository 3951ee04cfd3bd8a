//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// detach makes cmd a session leader, so the engine outlives the CLI and is
// not hit by the terminal's signals.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}
