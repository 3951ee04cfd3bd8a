// Package ini parses and edits Plan 9's plan9.ini boot configuration while
// keeping everything it does not change byte for byte: line order, comments,
// blank lines, line endings and [menu]/[section] blocks.
//
// A plan9.ini is a list of lines. "key=value" lines set variables; lines
// starting with '#' are comments; "[name]" starts a block that 9load and
// 9boot apply only when that configuration is chosen from the [menu] (the
// text before the first block, and the [common] block, always apply). Keys
// match case-insensitively, as in the kernels' getconf (cistrcmp). When a
// key is repeated, the 4e kernel uses the first line and 9front's addconf
// the last; Get returns the first, and Set removes the repeats so both
// agree.
//
// Locking rule: a File is not safe for concurrent use.
package ini

import (
	"bytes"
	"fmt"
	"strings"
)

// Kind classifies a line.
type Kind int

// Kinds of lines.
const (
	Blank    Kind = iota // empty or only white space
	Comment              // first non-blank character is '#'
	Section              // "[name]"
	KeyValue             // "key=value"
	Other                // anything else, kept as it is
)

// Line is one line of plan9.ini.
type Line struct {
	Kind    Kind
	Raw     string // the line as read, without its line ending
	Key     string // KeyValue: the key, trimmed
	Value   string // KeyValue: everything after the first '=' (not trimmed)
	Section string // Section: the name between the brackets
	EOL     string // "\n", "\r\n" or "" (last line without newline)
}

// File is a parsed plan9.ini.
type File struct {
	Lines []Line
}

// MaxSize is the largest plan9.ini accepted. 9load and the kernel read far
// less (BOOTARGSLEN is a few KiB); the limit only guards against feeding
// something that is not a plan9.ini to the parser.
const MaxSize = 64 << 10

// Parse splits b into lines. It fails only on input that cannot be a
// plan9.ini (too large, or containing NUL bytes).
func Parse(b []byte) (*File, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("plan9.ini: %d bytes is more than the %d-byte limit; is this really a plan9.ini?", len(b), MaxSize)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, fmt.Errorf("plan9.ini: NUL byte at offset %d; is this really a plan9.ini?", i)
	}
	f := &File{}
	s := string(b)
	for len(s) > 0 {
		line, eol := s, ""
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, eol, s = s[:i], "\n", s[i+1:]
		} else {
			s = ""
		}
		if strings.HasSuffix(line, "\r") && eol != "" {
			line, eol = line[:len(line)-1], "\r\n"
		}
		f.Lines = append(f.Lines, parseLine(line, eol))
	}
	return f, nil
}

func parseLine(raw, eol string) Line {
	l := Line{Raw: raw, EOL: eol}
	t := strings.TrimSpace(raw)
	switch {
	case t == "":
		l.Kind = Blank
	case strings.HasPrefix(t, "#"):
		l.Kind = Comment
	case strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]"):
		l.Kind = Section
		l.Section = strings.TrimSpace(t[1 : len(t)-1])
	default:
		if i := strings.IndexByte(raw, '='); i > 0 && strings.TrimSpace(raw[:i]) != "" {
			l.Kind = KeyValue
			l.Key = strings.TrimSpace(raw[:i])
			l.Value = raw[i+1:]
		} else {
			l.Kind = Other
		}
	}
	return l
}

// Bytes returns the file's text. For a File from Parse that has not been
// edited it is exactly the parsed input.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.Lines {
		b.WriteString(l.Raw)
		b.WriteString(l.EOL)
	}
	return b.Bytes()
}

// span returns the line range [lo, hi) of a block: section "" is the text
// before the first block. ok is false when the section does not exist.
func (f *File) span(section string) (lo, hi int, ok bool) {
	lo, hi = 0, len(f.Lines)
	cur, found := "", section == ""
	for i, l := range f.Lines {
		if l.Kind != Section {
			continue
		}
		if cur == section && found {
			return lo, i, true
		}
		cur = l.Section
		if cur == section {
			lo, found = i+1, true
		}
	}
	return lo, hi, found
}

// Sections lists the block names in order ("menu", "common", ...).
func (f *File) Sections() []string {
	var out []string
	for _, l := range f.Lines {
		if l.Kind == Section {
			out = append(out, l.Section)
		}
	}
	return out
}

// Get returns the value of key in the top part of the file (before any
// block). The first occurrence wins.
func (f *File) Get(key string) (string, bool) { return f.GetIn("", key) }

// GetIn returns the value of key inside block section ("" for the top).
func (f *File) GetIn(section, key string) (string, bool) {
	lo, hi, ok := f.span(section)
	if !ok {
		return "", false
	}
	for _, l := range f.Lines[lo:hi] {
		if l.Kind == KeyValue && strings.EqualFold(l.Key, key) {
			return l.Value, true
		}
	}
	return "", false
}

// Keys returns the keys of the top part in order, without duplicates.
func (f *File) Keys() []string {
	lo, hi, _ := f.span("")
	seen := map[string]bool{}
	var out []string
	for _, l := range f.Lines[lo:hi] {
		if k := strings.ToLower(l.Key); l.Kind == KeyValue && !seen[k] {
			seen[k] = true
			out = append(out, l.Key)
		}
	}
	return out
}

// Set sets key to value in the top part of the file.
func (f *File) Set(key, value string) error { return f.SetIn("", key, value) }

// SetIn sets key to value inside block section ("" for the top). The first
// existing line for key is rewritten in place (as "key=value") and any later
// duplicates in the same block are removed, so the value is unambiguous; a
// new key goes after the block's last key=value line (or at its start). A
// missing block is created at the end of the file.
func (f *File) SetIn(section, key, value string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("plan9.ini: value for %q contains a line break or NUL", key)
	}
	lo, hi, ok := f.span(section)
	if !ok {
		f.ensureEOL()
		f.Lines = append(f.Lines, parseLine("["+section+"]", f.eol()))
		lo, hi = len(f.Lines), len(f.Lines)
	}
	first := -1
	var out []Line
	out = append(out, f.Lines[:lo]...)
	for i := lo; i < hi; i++ {
		l := f.Lines[i]
		if l.Kind == KeyValue && strings.EqualFold(l.Key, key) {
			if first >= 0 {
				continue // drop duplicate
			}
			first = i
			l = parseLine(key+"="+value, l.EOL)
		}
		out = append(out, l)
	}
	if first < 0 {
		// After the block's last key=value (or other) line; in a block
		// without any, at its end before trailing blank lines.
		at := -1
		for j := len(out) - 1; j >= lo; j-- {
			if out[j].Kind == KeyValue || out[j].Kind == Other {
				at = j + 1
				break
			}
		}
		if at < 0 {
			at = len(out)
			for at > lo && out[at-1].Kind == Blank {
				at--
			}
		}
		eol := f.eol()
		if at > 0 && out[at-1].EOL == "" {
			out[at-1].EOL = eol
		}
		nl := parseLine(key+"="+value, eol)
		out = append(out[:at], append([]Line{nl}, out[at:]...)...)
	}
	out = append(out, f.Lines[hi:]...)
	f.Lines = out
	return nil
}

// Delete removes every key=value line for key in the top part and reports
// whether there was one.
func (f *File) Delete(key string) bool { return f.DeleteIn("", key) }

// DeleteIn removes every key=value line for key inside block section.
func (f *File) DeleteIn(section, key string) bool {
	lo, hi, ok := f.span(section)
	if !ok {
		return false
	}
	var out []Line
	found := false
	for i, l := range f.Lines {
		if i >= lo && i < hi && l.Kind == KeyValue && strings.EqualFold(l.Key, key) {
			found = true
			continue
		}
		out = append(out, l)
	}
	f.Lines = out
	return found
}

// eol returns the file's line ending style ("\r\n" if its first line uses it).
func (f *File) eol() string {
	for _, l := range f.Lines {
		if l.EOL != "" {
			return l.EOL
		}
	}
	return "\n"
}

// ensureEOL gives the last line a line ending so text can follow it.
func (f *File) ensureEOL() {
	if n := len(f.Lines); n > 0 && f.Lines[n-1].EOL == "" {
		f.Lines[n-1].EOL = f.eol()
	}
}

func checkKey(key string) error {
	if key == "" || strings.TrimSpace(key) != key || strings.ContainsAny(key, "=\r\n\x00[#") {
		return fmt.Errorf("plan9.ini: invalid key %q (no spaces around it, no '=', '[', '#' or line breaks)", key)
	}
	return nil
}
