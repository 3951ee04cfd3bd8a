//go:build windows

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// errSharingViolation is Windows' ERROR_SHARING_VIOLATION, which package
// syscall does not name.
const errSharingViolation = syscall.Errno(32)

// lockDir opens dir/lock with no sharing, which Windows refuses to a second
// opener until we close it or die, and records our pid in dir/lock.pid.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return nil, fmt.Errorf("lock store %s: %w", dir, err)
	}
	h, err := syscall.CreateFile(p, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		if errors.Is(err, errSharingViolation) {
			b, _ := os.ReadFile(path + ".pid")
			pid := strings.TrimSpace(string(b))
			if _, err := strconv.Atoi(pid); err != nil {
				pid = "unknown"
			}
			return nil, fmt.Errorf("store %s is in use by another gridlord (pid %s): %w", dir, pid, ErrLocked)
		}
		return nil, fmt.Errorf("lock store %s: %w", dir, err)
	}
	os.WriteFile(path+".pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	return os.NewFile(uintptr(h), path), nil
}

// unlockDir releases a lock taken by lockDir.
func unlockDir(f *os.File) error { return f.Close() }
