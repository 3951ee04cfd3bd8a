package gridfs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gridlord/engine/grid"
)

// SpawnOptions configure Spawn. Exe is required.
type SpawnOptions struct {
	// Exe is the gridlord executable; Spawn runs "Exe engine -grid DIR Args...".
	Exe  string
	Args []string
	// Wait bounds how long the new engine may take to answer (default 60s).
	Wait time.Duration
	// Logger receives progress (default: discarded).
	Logger *slog.Logger
}

// Spawn starts an engine daemon for the grid in dir, detached so that it
// outlives the caller as the VMs do, with its output appended to
// dir/engine.log, and returns a client connected to it and its pid.
// When another client starts an engine for the same grid at the same
// moment, the one that takes the grid's lock serves it; Spawn then
// connects to that one.
func Spawn(ctx context.Context, dir string, o SpawnOptions) (*Client, int, error) {
	if o.Wait == 0 {
		o.Wait = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	logPath := filepath.Join(dir, grid.LogName)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("start the engine: %w", err)
	}
	cmd := exec.Command(o.Exe, append([]string{"engine", "-grid", dir}, o.Args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	detach(cmd)
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("start the engine %s: %w", o.Exe, err)
	}
	pid := cmd.Process.Pid
	o.Logger.Info("started engine daemon", "pid", pid, "grid", dir, "log", logPath)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	sock := filepath.Join(dir, grid.SocketName)
	deadline := time.NewTimer(o.Wait)
	defer deadline.Stop()
	for {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := Dial(dctx, sock)
		cancel()
		if err == nil {
			// The engine that answers holds the lock and has written its
			// pid: ours, or a concurrent start's that won.
			if p := lockPID(dir); p > 0 {
				pid = p
			}
			return c, pid, nil
		}
		select {
		case werr := <-exited:
			// A concurrent start that won the grid's lock makes ours give
			// up: wait for the winner to answer (it may still be opening
			// the grid).
			other := lockPID(dir)
			if other <= 0 || other == pid {
				return nil, 0, fmt.Errorf("the engine exited (%v) before answering; its log %s ends:\n%s", werr, logPath, logTail(logPath, 10))
			}
			o.Logger.Info("another engine took the grid; waiting for it to answer", "pid", other)
			pid, exited = other, nil // a nil channel never fires: dial until the deadline
			continue
		case <-deadline.C:
			return nil, 0, fmt.Errorf("the engine (pid %d) did not answer on %s within %v: %w; its log %s ends:\n%s", pid, sock, o.Wait, err, logPath, logTail(logPath, 10))
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail returns the last n lines of a file.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockPID is the pid the engine holding the grid's lock wrote there (0 if
// unreadable).
func lockPID(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, grid.LockName))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
