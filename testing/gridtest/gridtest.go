// Package gridtest holds helpers for tests that run a real grid's engine
// and VMs (the CLI's and the window's integration tests).
package gridtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/qemu"
)

// Cleanup stops the grid in dir (down through gridfs), ends its engine
// (SIGTERM to the pid in its lock file, unless that is this process) and
// kills any QEMU its nodes left behind, so that no test leaves VMs running.
func Cleanup(t testing.TB, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if b, err := os.ReadFile(filepath.Join(dir, grid.LockName)); err == nil {
		if c, err := gridfs.Dial(ctx, filepath.Join(dir, grid.SocketName)); err == nil {
			c.Ctl(ctx, "down")
			c.Close()
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	recs, _ := filepath.Glob(filepath.Join(dir, grid.NodesDir, "*", qemu.FileState))
	for _, r := range recs {
		var rec struct {
			PID int `json:"pid"`
		}
		if b, err := os.ReadFile(r); err == nil && json.Unmarshal(b, &rec) == nil && rec.PID > 0 {
			if syscall.Kill(rec.PID, syscall.SIGKILL) == nil {
				t.Logf("killed leftover QEMU pid %d", rec.PID)
			}
		}
	}
}
