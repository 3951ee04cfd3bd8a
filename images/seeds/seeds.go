// Package seeds holds the seed disk images that ship inside Gridlord, so
// that a new grid boots real Plan 9 with no file to find and no network:
// today the 9legacy grid seed (a real cpu + auth + fossil + venti install,
// MIT licence; LICENSE, NOTICE and README.md in this directory). The
// catalog entry naming a shipped file is in images/catalog.json (field
// "shipped").
package seeds

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gridlord/engine/atomicfile"
)

//go:embed 9legacy-grid-seed.qcow2
var legacyGrid []byte

// files maps a shipped file name to its bytes.
func files() map[string][]byte {
	return map[string][]byte{"9legacy-grid-seed.qcow2": legacyGrid}
}

// Names returns the shipped file names.
func Names() []string {
	var out []string
	for n := range files() {
		out = append(out, n)
	}
	return out
}

// Open returns a reader of the shipped file name and its size.
func Open(name string) (io.ReaderAt, int64, error) {
	b, ok := files()[name]
	if !ok {
		return nil, 0, fmt.Errorf("no seed image %q ships with Gridlord (shipped: %v)", name, Names())
	}
	return bytes.NewReader(b), int64(len(b)), nil
}

// Extract writes the shipped file name into dir (atomically, read-only)
// unless a file of that name with the expected SHA-256 is already there,
// and returns its path. wantSHA256 is the catalog's checksum: a shipped
// file that does not match it is refused, so a broken build never seeds a
// grid.
func Extract(dir, name, wantSHA256 string) (string, error) {
	b, ok := files()[name]
	if !ok {
		return "", fmt.Errorf("no seed image %q ships with Gridlord (shipped: %v)", name, Names())
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != wantSHA256 {
		return "", fmt.Errorf("shipped seed %s: SHA-256 %s, the catalog says %s: this Gridlord build is broken (rebuild it from a clean checkout)", name, got, wantSHA256)
	}
	path := filepath.Join(dir, name)
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, b) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("extract shipped seed %s: %w", name, err)
	}
	if err := atomicfile.Write(path, b, 0o444); err != nil {
		return "", fmt.Errorf("extract shipped seed %s: %w", name, err)
	}
	return path, nil
}
