package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
	"gridlord/testing/p9pdata"
)

// runInProcess runs "gridlord args..." in this process.
func runInProcess(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &o, stderr: &e, log: slog.New(slog.NewTextHandler(&e, nil))}
	code = runMain(context.Background(), env, args)
	return o.String(), e.String(), code
}

// TestVentiImportCommand imports the real plan9port arenas into a store
// directory, checks every block of blocks.bin is there, imports again
// (nothing written), and imports a corrupted copy (the bad clump named on
// stderr, exit status 1, the rest stored).
func TestVentiImportCommand(t *testing.T) {
	dir := t.TempDir()
	arenas := filepath.Join(dir, "arenas")
	raw, err := p9pdata.Arenas()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(arenas, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	out, errOut, code := runInProcess(t, "venti", "import", "-store", storeDir, arenas)
	if code != 0 || !strings.Contains(out, "59 blocks (0.2 MB) written") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "arenas000: 59/59 clumps") {
		t.Errorf("no final progress line in stderr: %s", errOut)
	}
	out, _, code = runInProcess(t, "venti", "import", "-store", storeDir, arenas)
	if code != 0 || !strings.Contains(out, "0 blocks (0.0 MB) written") || !strings.Contains(out, "59 clumps done by an earlier import") {
		t.Errorf("second import: exit %d: %s", code, out)
	}

	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := p9pdata.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		got, err := st.Read(context.Background(), b.Score, b.Type, venti.MaxBlock)
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Errorf("block %v/%v: %v", b.Score, b.Type, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(blocks); n != 59 {
		t.Errorf("blocks.bin has %d blocks", n)
	}

	// A copy with a flipped clump magic: reported and skipped.
	bad := bytes.Clone(raw)
	const clump0 = 794624 + 8192 // first clump of arenas000
	bad[clump0] ^= 0xff
	badPath := filepath.Join(dir, "bad")
	os.WriteFile(badPath, bad, 0o644)
	out, errOut, code = runInProcess(t, "venti", "import", "-n", "-q", badPath)
	if code != 1 || !strings.Contains(out, "58 blocks") || !strings.Contains(errOut, "skipped: arena arenas000 clump 0 at partition offset 802816: bad clump magic") {
		t.Errorf("corrupt import: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	_, errOut, code = runInProcess(t, "venti", "import", "-n", "-store", storeDir, arenas)
	if code != 2 {
		t.Errorf("-n with -store: exit %d: %s", code, errOut)
	}
}
