package arena

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gridlord/engine/atomicfile"
)

// checkpoint records how far an import got through one arena. Clumps
// below Next.Clump are done; so are those listed in Done (finished out of
// order by concurrent workers when the checkpoint was taken).
type checkpoint struct {
	Arena      string   `json:"arena"`
	Start      int64    `json:"start"`
	ClumpMagic uint32   `json:"clumpmagic"`
	CTime      uint32   `json:"ctime"`
	Next       Position `json:"next"`
	Bytes      int64    `json:"bytes"` // uncompressed bytes of the clumps below Next
	Done       []int    `json:"done,omitempty"`
}

// checkpointName names the state file of arena a. Arena names repeat
// between partitions (fmtarenas calls them arenas0, arenas1, ...), so the
// name also hashes the arena's position and its random clump magic.
func checkpointName(a *Arena) string {
	h := sha1.Sum(fmt.Appendf(nil, "%s\x00%d\x00%d\x00%08x\x00%d", a.Name, a.Start, a.End, a.ClumpMagic, a.CTime))
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < ' ' || r > '~' {
			return '_'
		}
		return r
	}, a.Name)
	return "venti-import-" + safe + "-" + hex.EncodeToString(h[:6]) + ".json"
}

// loadCheckpoint returns the saved position for a, or the zero position
// when there is none. A checkpoint that does not fit the arena (it claims
// a position outside the arena) is ignored.
func loadCheckpoint(dir string, a *Arena) (checkpoint, error) {
	cp := checkpoint{Arena: a.Name, Start: a.Start, ClumpMagic: a.ClumpMagic, CTime: a.CTime}
	if dir == "" {
		return cp, nil
	}
	path := filepath.Join(dir, checkpointName(a))
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("read import checkpoint: %w", err)
	}
	var saved checkpoint
	if err := json.Unmarshal(b, &saved); err != nil {
		return cp, fmt.Errorf("import checkpoint %s is corrupt (delete it to import arena %s from the start): %w", path, a.Name, err)
	}
	if saved.Arena != a.Name || saved.Start != a.Start || saved.ClumpMagic != a.ClumpMagic || saved.CTime != a.CTime ||
		saved.Next.Clump < 0 || saved.Next.Offset < 0 || saved.Next.Offset > a.DataSize() {
		return cp, nil
	}
	return saved, nil
}

// saveCheckpoint writes cp atomically: a temporary file, fsync, rename,
// fsync of the directory (see atomicfile.Write).
func saveCheckpoint(dir string, a *Arena, cp checkpoint) error {
	sort.Ints(cp.Done)
	b, err := json.MarshalIndent(cp, "", "\t")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, checkpointName(a)), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save import checkpoint: %w", err)
	}
	return nil
}
