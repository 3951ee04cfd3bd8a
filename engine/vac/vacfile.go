package vac

import (
	"fmt"
	"io"
	"os"
	"strings"

	"gridlord/engine/atomicfile"
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

// WriteScoreFile writes "vac:<score>\n" to name atomically (temporary
// file, fsync, rename, fsync of the directory; see atomicfile.Write).
func WriteScoreFile(name string, s venti.Score) error {
	if err := atomicfile.Write(name, []byte(FormatScore(s)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write vac file: %w", err)
	}
	return nil
}
