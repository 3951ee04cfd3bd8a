//go:build windows

package qemu

import (
	"os"
	"os/exec"
)

func detach(*exec.Cmd) {}

// processAlive reports whether pid can be opened; Windows gives no cheap
// way to read another process's command line, so marker is not checked.
func processAlive(pid int, _ string) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}

func killProcess(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
