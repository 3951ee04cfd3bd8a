package mirror

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"gridlord/engine/atomicfile"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// The files a Manager keeps in its directory:
//
//	mirrors.json            the mirror list: {"version":1,"mirrors":[{"addr":"host:port"},...]}
//	pos-HOST_PORT-HASH.json one per mirror: its State, rewritten after every Tsync it acknowledges
//
// Both are written with atomicfile (temp file, fsync, rename, directory
// fsync) and read strictly: unknown fields, trailing bytes and impossible
// values are errors naming the file.

const (
	listName    = "mirrors.json"
	listVersion = 1
	maxFileSize = 1 << 20 // neither file is anywhere near this
)

// State is a mirror's durable progress: every record of the store before
// Pos has been written to the mirror and covered by a Tsync the mirror
// answered. It is saved only after that answer, so a crash at any moment
// makes the mirror push some blocks again and never skip one.
type State struct {
	Addr  string    `json:"addr"`  // the mirror, as host:port
	Store string    `json:"store"` // the ID of the store Pos belongs to (store.Store.ID)
	Pos   store.Pos `json:"pos"`   // where pushing resumes
	// Blocks counts the records before Pos (those pushed and Skipped).
	Blocks int64 `json:"blocks"`
	// Bytes is the size of the blocks in them, uncompressed (for damaged
	// ones, as the store's index counts them).
	Bytes int64 `json:"bytes"`
	// Skipped counts damaged records of the store that could not be pushed.
	Skipped int64 `json:"skipped"`
}

// canonAddr returns the host:port a venti address dials, which names the
// mirror: "tcp!h!venti" and "h:17034" are one mirror.
func canonAddr(addr string) (string, error) {
	hp, err := venti.ParseAddr(strings.TrimSpace(addr))
	if err != nil {
		return "", fmt.Errorf("mirror address: %w", err)
	}
	return hp, nil
}

// stateFileName is the position file name of the mirror at addr (a
// canonical host:port): readable, and unique thanks to the hash.
func stateFileName(addr string) string {
	safe := []byte(addr)
	for i, c := range safe {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			safe[i] = '_'
		}
	}
	h := sha1.Sum([]byte(addr))
	return "pos-" + string(safe) + "-" + hex.EncodeToString(h[:4]) + ".json"
}

// decodeStrict decodes exactly one JSON value from b into v, refusing
// unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	if len(b) > maxFileSize {
		return fmt.Errorf("%d bytes, more than %d", len(b), maxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// parseState decodes and checks a position file.
func parseState(b []byte) (State, error) {
	var s State
	if err := decodeStrict(b, &s); err != nil {
		return State{}, err
	}
	canon, err := canonAddr(s.Addr)
	switch {
	case err != nil:
		return State{}, err
	case canon != s.Addr:
		return State{}, fmt.Errorf("address %q is not in host:port form (%q)", s.Addr, canon)
	case s.Store == "":
		return State{}, errors.New("no store ID")
	case s.Pos.Arena < 0 || s.Pos.Offset < store.StartPos().Offset || s.Pos.Offset >= 1<<32:
		return State{}, fmt.Errorf("impossible position %v", s.Pos)
	case s.Blocks < 0 || s.Bytes < 0 || s.Skipped < 0 || s.Skipped > s.Blocks || s.Bytes > s.Blocks*venti.MaxBlock:
		return State{}, fmt.Errorf("impossible counts: %d blocks of %d bytes, %d skipped", s.Blocks, s.Bytes, s.Skipped)
	}
	return s, nil
}

// loadState reads the position file path. A missing file gives the zero
// State and no error.
func loadState(path string) (State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read mirror position %s: %w", path, err)
	}
	s, err := parseState(b)
	if err != nil {
		return State{}, fmt.Errorf("mirror position %s: %w (remove the file to push everything again)", path, err)
	}
	return s, nil
}

// saveState writes s to path durably.
func saveState(path string, s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save mirror position: %w", err)
	}
	return nil
}

// listFile is the content of mirrors.json.
type listFile struct {
	Version int         `json:"version"`
	Mirrors []listEntry `json:"mirrors"`
}

// listEntry is one mirror of the list.
type listEntry struct {
	Addr string `json:"addr"` // host:port
}

// parseList decodes and checks a mirror list: version 1, canonical and
// distinct addresses.
func parseList(b []byte) ([]string, error) {
	var l listFile
	if err := decodeStrict(b, &l); err != nil {
		return nil, err
	}
	if l.Version != listVersion {
		return nil, fmt.Errorf("version %d, this gridlord reads %d", l.Version, listVersion)
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range l.Mirrors {
		canon, err := canonAddr(e.Addr)
		if err != nil {
			return nil, err
		}
		if canon != e.Addr {
			return nil, fmt.Errorf("address %q is not in host:port form (%q)", e.Addr, canon)
		}
		if seen[canon] {
			return nil, fmt.Errorf("mirror %s is listed twice", canon)
		}
		seen[canon] = true
		out = append(out, canon)
	}
	return out, nil
}

// encodeList is the mirrors.json content for addrs.
func encodeList(addrs []string) []byte {
	l := listFile{Version: listVersion, Mirrors: []listEntry{}}
	for _, a := range addrs {
		l.Mirrors = append(l.Mirrors, listEntry{Addr: a})
	}
	b, _ := json.MarshalIndent(l, "", "\t")
	return append(b, '\n')
}
