package seedbuild

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// DMDIR is the directory bit of a Plan 9 mode.
const DMDIR = 1 << 31

// LogEntry is one line of a replica log (replica(1), applylog in
// sys/src/cmd/replica): "time gen verb path serverpath mode uid gid mtime
// length", fields quoted as Plan 9's tokenize reads them.
type LogEntry struct {
	// Time and Gen order the entries (the time the change was logged and
	// a sequence number within that second).
	Time uint32
	Gen  uint32
	// Verb is 'a' (add), 'c' (contents changed), 'm' (metadata changed)
	// or 'd' (delete).
	Verb byte
	// Path is the file's name relative to the root, without a leading
	// slash; ServerPath is where the server holds it ("-" in the log
	// when it is Path).
	Path       string
	ServerPath string
	// Mode is the Plan 9 mode, with DMDIR for directories.
	Mode     uint32
	UID, GID string
	Mtime    uint32
	Length   int64
}

// IsDir reports whether the entry is a directory.
func (e LogEntry) IsDir() bool { return e.Mode&DMDIR != 0 }

// String formats the entry as replica writes it.
func (e LogEntry) String() string {
	sp := "-"
	if e.ServerPath != "" && e.ServerPath != e.Path {
		sp = quote(e.ServerPath)
	}
	return fmt.Sprintf("%d %d %c %s %s %o %s %s %d %d", e.Time, e.Gen, e.Verb, quote(e.Path), sp, e.Mode, quote(e.UID), quote(e.GID), e.Mtime, e.Length)
}

// maxLogLine bounds one log line (applylog reads lines of any length, but
// a path is at most a few hundred bytes).
const maxLogLine = 64 << 10

// ParseLog reads a replica log. A line that is not a valid entry is an
// error naming its number: a damaged log would install a damaged system.
func ParseLog(r io.Reader) ([]LogEntry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLogLine)
	var out []LogEntry
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, err := ParseLogLine(line)
		if err != nil {
			return nil, fmt.Errorf("plan9.log line %d: %w", n, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("plan9.log line %d: longer than %d bytes", len(out)+1, maxLogLine)
		}
		return nil, fmt.Errorf("read plan9.log: %w", err)
	}
	return out, nil
}

// ParseLogLine parses one log line.
func ParseLogLine(line string) (LogEntry, error) {
	f, err := tokenize(line)
	if err != nil {
		return LogEntry{}, err
	}
	if len(f) != 10 {
		return LogEntry{}, fmt.Errorf("%d fields, want 10 (time gen verb path serverpath mode uid gid mtime length)", len(f))
	}
	var e LogEntry
	num := func(i int, what string, base int) uint32 {
		v, perr := strconv.ParseUint(f[i], base, 32)
		if perr != nil && err == nil {
			err = fmt.Errorf("%s %q is not a number", what, f[i])
		}
		return uint32(v)
	}
	e.Time = num(0, "time", 10)
	e.Gen = num(1, "generation", 10)
	e.Mode = num(5, "mode", 8)
	e.Mtime = num(8, "mtime", 10)
	if err != nil {
		return LogEntry{}, err
	}
	if e.Length, err = strconv.ParseInt(f[9], 10, 64); err != nil || e.Length < 0 {
		return LogEntry{}, fmt.Errorf("length %q is not a number", f[9])
	}
	if len(f[2]) != 1 || !strings.Contains("acdm", f[2]) {
		return LogEntry{}, fmt.Errorf("verb %q is not one of a, c, d, m", f[2])
	}
	e.Verb = f[2][0]
	e.Path = f[3]
	if err := checkPath(e.Path); err != nil {
		return LogEntry{}, err
	}
	e.ServerPath = f[4]
	if e.ServerPath == "-" {
		e.ServerPath = e.Path
	} else if err := checkPath(e.ServerPath); err != nil {
		return LogEntry{}, fmt.Errorf("server path: %w", err)
	}
	e.UID, e.GID = f[6], f[7]
	if e.UID == "" || e.GID == "" {
		return LogEntry{}, errors.New("empty owner or group")
	}
	return e, nil
}

// checkPath accepts a clean relative path.
func checkPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("path %q is not a relative file name", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("path %q has an empty, . or .. element", p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("path %q holds a NUL byte", p)
	}
	return nil
}

// tokenize splits a line into fields as Plan 9's tokenize does: fields
// are separated by blanks, and '...' quotes (with ” for a quote) may
// make up any part of a field.
func tokenize(s string) ([]string, error) {
	var out []string
	i := 0
	for {
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		var b strings.Builder
		for i < len(s) && !isBlank(s[i]) {
			if s[i] != '\'' {
				b.WriteByte(s[i])
				i++
				continue
			}
			i++ // opening quote
			for {
				if i >= len(s) {
					return nil, errors.New("unterminated quote")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
		}
		out = append(out, b.String())
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// quote quotes s as Plan 9's %q does when it must.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\r\n'") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// WriteLog writes entries in the log format, one a line.
func WriteLog(w io.Writer, entries []LogEntry) error {
	bw := bufio.NewWriter(w)
	for _, e := range entries {
		bw.WriteString(e.String())
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Final applies a log in order and returns the entry of every path that
// exists at its end (its last add, change or metadata entry), in the
// order the paths first appeared.
func Final(entries []LogEntry) []LogEntry {
	idx := map[string]int{}
	var out []LogEntry
	gone := map[string]bool{}
	for _, e := range entries {
		i, seen := idx[e.Path]
		switch {
		case e.Verb == 'd':
			if seen {
				gone[e.Path] = true
			}
		case seen:
			out[i] = e
			delete(gone, e.Path)
		default:
			idx[e.Path] = len(out)
			out = append(out, e)
		}
	}
	kept := out[:0]
	for _, e := range out {
		if !gone[e.Path] {
			kept = append(kept, e)
		}
	}
	return kept
}

// Totals counts the files and bytes of a log's final state.
func Totals(entries []LogEntry) (files int, bytes int64) {
	for _, e := range Final(entries) {
		files++
		if !e.IsDir() {
			bytes += e.Length
		}
	}
	return files, bytes
}
