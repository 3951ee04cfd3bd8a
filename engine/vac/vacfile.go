package vac

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gridlord/engine/venti"
)

// FormatScore returns the text vac prints for an archive: "vac:<score>".
func FormatScore(s venti.Score) string { return "vac:" + s.String() }

// ParseScore parses "vac:<40 hex digits>", ignoring surrounding white
// space (the trailing newline of a .vac file).
func ParseScore(text string) (venti.Score, error) {
	t := strings.TrimSpace(text)
	prefix, hex, ok := strings.Cut(t, ":")
	if !ok || prefix != "vac" {
		return venti.Score{}, fmt.Errorf("parse %.60q: not a vac score (want vac:<40 hex digits>)", t)
	}
	return venti.ParseScore(hex)
}

// ReadScoreFile reads a .vac file (as vac -f writes it) and returns the
// archive's score. As unvac, it also accepts the text "vac:<score>" itself
// in place of a file name.
func ReadScoreFile(name string) (venti.Score, error) {
	if s, err := ParseScore(name); err == nil {
		return s, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return venti.Score{}, fmt.Errorf("read vac file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return venti.Score{}, fmt.Errorf("read vac file %s: %w", name, err)
	}
	s, err := ParseScore(string(b))
	if err != nil {
		return venti.Score{}, fmt.Errorf("read vac file %s: %w", name, err)
	}
	return s, nil
}

// WriteScoreFile writes "vac:<score>\n" to name atomically (temporary file,
// fsync, rename).
func WriteScoreFile(name string, s venti.Score) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write vac file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := fmt.Fprintln(tmp, FormatScore(s)); err != nil {
		return fmt.Errorf("write vac file %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write vac file %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write vac file %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write vac file %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write vac file %s: %w", name, err)
	}
	return nil
}
