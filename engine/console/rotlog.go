package console

import (
	"fmt"
	"os"
)

// rotLog is an append-only log file that is rotated when it reaches max
// bytes: path.N-1 -> path.N, ..., path -> path.1, keeping keep old files.
// It is not safe for concurrent use; Hub.mu guards it.
type rotLog struct {
	path string
	max  int64
	keep int
	f    *os.File
	size int64
}

func openRotLog(path string, max int64, keep int) (*rotLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open console log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat console log: %w", err)
	}
	return &rotLog{path: path, max: max, keep: keep, f: f, size: st.Size()}, nil
}

// Write appends p, rotating first when p would push the file past max.
func (l *rotLog) Write(p []byte) error {
	if l.size > 0 && l.size+int64(len(p)) > l.max {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("write console log %s: %w", l.path, err)
	}
	return nil
}

func (l *rotLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close console log %s: %w", l.path, err)
	}
	os.Remove(fmt.Sprintf("%s.%d", l.path, l.keep))
	for i := l.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return fmt.Errorf("rotate console log %s: %w", l.path, err)
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("reopen console log %s: %w", l.path, err)
	}
	l.f, l.size = f, 0
	return nil
}

// Close closes the current file.
func (l *rotLog) Close() error { return l.f.Close() }
