package arena

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gridlord/engine/venti"
)

// testdata is the real plan9port venti data shared by the project.
const testdata = "../../../../shared/testdata/plan9port-venti"

// block is one block of blocks.bin.
type block struct {
	t    venti.Type
	data []byte
}

// realBlocks reads blocks.bin: type[1] length[4 BE] data, in write order.
func realBlocks(t testing.TB) []block {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, "blocks.bin"))
	if err != nil {
		t.Fatalf("read blocks.bin: %v", err)
	}
	var out []block
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("blocks.bin: %d trailing bytes", len(b))
		}
		n := binary.BigEndian.Uint32(b[1:])
		out = append(out, block{venti.Type(b[0]), b[5 : 5+n]})
		b = b[5+n:]
	}
	return out
}

// realArenas gunzips arenas.gz into a temporary file and returns its bytes
// and path.
func realArenas(t testing.TB) ([]byte, string) {
	t.Helper()
	f, err := os.Open(filepath.Join(testdata, "arenas.gz"))
	if err != nil {
		t.Fatalf("open arenas.gz: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip arenas.gz: %v", err)
	}
	path := filepath.Join(t.TempDir(), "arenas")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b, path
}

func openBytes(t testing.TB, b []byte) *Partition {
	t.Helper()
	p, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("open partition: %v", err)
	}
	return p
}
