package qemu

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
)

// ErrNotInstalled means the QEMU executable was not found.
var ErrNotInstalled = errors.New("QEMU is not installed")

// ErrDiskMissing means a disk image named by the spec does not exist.
var ErrDiskMissing = errors.New("disk image missing")

// ErrDiskLocked means another QEMU holds a disk image open.
var ErrDiskLocked = errors.New("disk image in use by another QEMU")

// ErrAddrInUse means a socket or port the VM needs is taken.
var ErrAddrInUse = errors.New("socket or port in use")

// ErrAlreadyRunning means the node's VM is already running.
var ErrAlreadyRunning = errors.New("VM already running")

// installHint tells how to install QEMU on this OS.
func installHint() string {
	switch runtime.GOOS {
	case "linux":
		return "install it with: sudo apt-get install qemu-system-x86 qemu-utils (Debian/Ubuntu) or sudo dnf install qemu-system-x86 qemu-img (Fedora)"
	case "darwin":
		return "install it with: brew install qemu"
	case "windows":
		return "install it with: winget install SoftwareFreedomConservancy.QEMU, then add C:\\Program Files\\qemu to PATH"
	}
	return "install QEMU from your package manager or https://www.qemu.org/download/"
}

func notInstalled(binary string, err error) error {
	return fmt.Errorf("%w: %s not found (%v); %s", ErrNotInstalled, binary, err, installHint())
}

// classifyQEMUError maps QEMU's stderr from a failed start to one of the
// sentinel errors, quoting QEMU's own message.
func classifyQEMUError(stderr string) error {
	msg := lastMeaningfulLine(stderr)
	switch {
	case strings.Contains(stderr, `Failed to get "write" lock`) || strings.Contains(stderr, `Failed to get shared "write" lock`):
		return fmt.Errorf("%w: %s %s (stop the other VM using it, or give this node its own copy)", ErrDiskLocked, lineWith(stderr, "lock"), msg)
	case strings.Contains(stderr, "Address already in use"):
		return fmt.Errorf("%w: %s", ErrAddrInUse, msg)
	case strings.Contains(stderr, "Could not open") && strings.Contains(stderr, "No such file"):
		return fmt.Errorf("%w: %s", ErrDiskMissing, msg)
	}
	if msg == "" {
		return errors.New("QEMU exited without a message")
	}
	return errors.New(msg)
}

func lineWith(s, word string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func lastMeaningfulLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.Contains(l, "terminating on signal") {
			return l
		}
	}
	return ""
}

func lookPath(binary string) (string, error) {
	p, err := exec.LookPath(binary)
	if err != nil {
		return "", notInstalled(binary, err)
	}
	return p, nil
}
