//go:build unix

package qemu

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// detach puts QEMU in its own session so it survives the engine (and a
// Ctrl-C in the engine's terminal); a restarted engine re-adopts it.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}

// processAlive reports whether pid exists. When the OS can tell, it also
// checks that the process's command line mentions marker (the QMP socket),
// so a recycled pid is not mistaken for our QEMU.
func processAlive(pid int, marker string) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if b, err := os.ReadFile("/proc/" + itoa(pid) + "/cmdline"); err == nil {
		if st, err := os.ReadFile("/proc/" + itoa(pid) + "/stat"); err == nil {
			// A zombie (state Z) has exited and only awaits its reaper.
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				return false
			}
		}
		return marker == "" || strings.Contains(string(b), marker)
	}
	return true
}

func killProcess(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
