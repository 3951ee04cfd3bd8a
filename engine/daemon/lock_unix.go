//go:build unix

package daemon

import (
	"gridlord/engine/grid"

	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// gridLock is the exclusive lock on a grid directory: an flock on
// GRIDDIR/engine.lock, which holds the owner's pid. The kernel drops the
// lock when the process dies, so a crashed engine never blocks the next.
type gridLock struct {
	f *os.File
}

// lockGrid takes the grid's lock or says which engine holds it.
func lockGrid(dir string) (*gridLock, error) {
	path := filepath.Join(dir, grid.LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock grid %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b))
			if _, perr := strconv.Atoi(pid); perr != nil {
				pid = "unknown"
			}
			return nil, fmt.Errorf("grid %s is already run by engine pid %s (socket %s)", dir, pid, filepath.Join(dir, grid.SocketName))
		}
		return nil, fmt.Errorf("lock grid %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &gridLock{f: f}, nil
}

// release drops the lock (the pid is left: the file is only meaningful
// while locked).
func (l *gridLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// EngineRunning reports whether an engine holds the lock of the grid in
// dir, and its pid (0 if unreadable). It probes with a shared flock that
// it drops at once; an engine starting in that instant could find the
// grid locked, so it is only for callers whose own engine just gave up.
func EngineRunning(dir string) (pid int, running bool) {
	path := filepath.Join(dir, grid.LockName)
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, false
	}
	b, _ := os.ReadFile(path)
	pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, true
}
