//go:build !windows

package gridfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Listen creates the unix socket sockPath with mode 0600 (owner only). A
// socket file left by a dead engine is removed; if a live server answers on
// it, Listen refuses with an error wrapping ErrInUse. Any other file at
// sockPath is left alone and refused. Concurrent Listens on one path (in any
// processes) are serialized with a lock on sockPath+".lock", which is left
// in place, so exactly one of them wins. Closing the listener removes the
// socket.
func Listen(sockPath string) (net.Listener, error) {
	unlock, err := lockPath(sockPath + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if fi, err := os.Lstat(sockPath); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("gridfs: %s exists and is not a socket; move it away", sockPath)
		}
		if err := probe(sockPath); err != nil {
			return nil, err
		}
		if err := os.Remove(sockPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("gridfs: remove stale socket %s: %w", sockPath, err)
		}
	}
	// Bind inside a private 0700 directory, set 0600, then link into place
	// (link, unlike rename, never replaces), so the socket is never
	// reachable with wider permissions, without touching the process-wide
	// umask.
	tmpDir, err := os.MkdirTemp(filepath.Dir(sockPath), ".gridfs-sock-*")
	if err != nil {
		return nil, fmt.Errorf("gridfs: listen on %s: %w", sockPath, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("gridfs: listen on %s: %w", sockPath, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("gridfs: chmod socket %s: %w", sockPath, err)
	}
	if err := os.Link(tmp, sockPath); err != nil {
		ln.Close()
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("gridfs: %w: %s appeared while starting (is another engine starting on this grid?)", ErrInUse, sockPath)
		}
		return nil, fmt.Errorf("gridfs: place socket %s: %w", sockPath, err)
	}
	fi, err := os.Lstat(sockPath)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("gridfs: stat socket %s: %w", sockPath, err)
	}
	return &unixListener{UnixListener: ul, path: sockPath, fi: fi}, nil
}

// lockPath takes an exclusive flock on path, creating it.
func lockPath(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("gridfs: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("gridfs: lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// unixListener removes its socket file on Close, unless another server
// has replaced it meanwhile.
type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
	once sync.Once
}

// Close implements net.Listener.
func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}

// probe returns ErrInUse if something accepts connections on sockPath.
func probe(sockPath string) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(context.Background(), "unix", sockPath)
	if err != nil {
		return nil // nothing answers: stale
	}
	c.Close()
	return fmt.Errorf("gridfs: %w: a server is answering on %s (is another engine running on this grid?)", ErrInUse, sockPath)
}

func dialAddr(ctx context.Context, sockPath string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", sockPath)
}
