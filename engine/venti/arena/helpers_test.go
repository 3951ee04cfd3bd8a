package arena

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"gridlord/engine/venti"
	"gridlord/testing/p9pdata"
)

// block is one block of an arena: its type and data.
type block struct {
	t    venti.Type
	data []byte
}

// realBlocks returns the blocks of the real plan9port data (p9pdata.Blocks),
// in write order.
func realBlocks(t testing.TB) []block {
	t.Helper()
	bs, err := p9pdata.Blocks()
	if err != nil {
		t.Fatalf("plan9port blocks: %v", err)
	}
	out := make([]block, len(bs))
	for i, b := range bs {
		out[i] = block{b.Type, b.Data}
	}
	return out
}

// realArenas writes the real plan9port arena partition (p9pdata.Arenas)
// to a temporary file and returns its bytes and path.
func realArenas(t testing.TB) ([]byte, string) {
	t.Helper()
	b, err := p9pdata.Arenas()
	if err != nil {
		t.Fatalf("plan9port arenas: %v", err)
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
