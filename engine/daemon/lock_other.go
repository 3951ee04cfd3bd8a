//go:build !unix

package daemon

import (
	"gridlord/engine/grid"

	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// gridLock is the exclusive lock on a grid directory. Without flock it is a
// file created exclusively and removed at release; a crashed engine leaves
// it behind, and the message says to remove it.
type gridLock struct {
	path string
}

// lockGrid takes the grid's lock or says which engine holds it.
func lockGrid(dir string) (*gridLock, error) {
	path := filepath.Join(dir, grid.LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if os.IsExist(err) {
			b, _ := os.ReadFile(path)
			return nil, fmt.Errorf("grid %s is already run by engine pid %s (socket %s); if that engine is gone, remove %s",
				dir, strings.TrimSpace(string(b)), filepath.Join(dir, grid.SocketName), path)
		}
		return nil, fmt.Errorf("lock grid %s: %w", dir, err)
	}
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	f.Close()
	return &gridLock{path: path}, nil
}

// release removes the lock file.
func (l *gridLock) release() error {
	if l == nil || l.path == "" {
		return nil
	}
	err := os.Remove(l.path)
	l.path = ""
	return err
}

// EngineRunning reports whether an engine holds the lock of the grid in
// dir: its lock file names a process that exists (on Windows FindProcess
// opens the process, so it fails for one that has gone).
func EngineRunning(dir string) (pid int, running bool) {
	b, err := os.ReadFile(filepath.Join(dir, grid.LockName))
	if err != nil {
		return 0, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return 0, false
	}
	p.Release()
	return pid, true
}
