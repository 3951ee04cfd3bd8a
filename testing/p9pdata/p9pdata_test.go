package p9pdata

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/venti"
)

func TestPath(t *testing.T) {
	for _, name := range []string{"README.md", "arenas.gz", "blocks.bin", "blocks.txt", "sparse.vac", "tree.sha1", "tree.tar.gz", "tree.vac"} {
		p := Path(name)
		if !filepath.IsAbs(p) {
			t.Errorf("Path(%q) = %q, not absolute", name, p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	// From another working directory too.
	t.Chdir(t.TempDir())
	if b, err := os.ReadFile(Path("tree.vac")); err != nil || !strings.HasPrefix(string(b), "vac:") {
		t.Errorf("tree.vac from elsewhere: %q, %v", b, err)
	}
}

func mustScore(t *testing.T, s string) venti.Score {
	t.Helper()
	sc, err := venti.ParseScore(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestBlocks checks the blocks against facts README.md states.
func TestBlocks(t *testing.T) {
	blocks, err := Blocks()
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 59 {
		t.Fatalf("%d blocks, want 59", len(blocks))
	}
	want := map[venti.Score]struct {
		t    venti.Type
		data string
	}{
		mustScore(t, "89b2a8ac40d7d723f1445396ee005d2eee047da4"): {venti.DataType, "a single data block\n"},
		mustScore(t, "4910d3fdbb12c7bf206a65be9912975698f01770"): {venti.PointerType(2), // wire type 4
			"dir-typed block"},
	}
	total := 0
	for _, b := range blocks {
		total += len(b.Data)
		if w, ok := want[b.Score]; ok {
			if b.Type != w.t || string(b.Data) != w.data {
				t.Errorf("block %v: type %v %q, want type %v %q", b.Score, b.Type, b.Data, w.t, w.data)
			}
			delete(want, b.Score)
		}
	}
	if len(want) != 0 {
		t.Errorf("blocks missing: %v", want)
	}
	if total != 222321 {
		t.Errorf("%d bytes of blocks, want 222,321", total)
	}
}

func TestArenas(t *testing.T) {
	b, err := Arenas()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 25165824 {
		t.Errorf("arenas: %d bytes, want 25,165,824", len(b))
	}
}

func TestTreeSHA1(t *testing.T) {
	m, err := TreeSHA1()
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 8 || m["tree/sparse.img"] != "b97fbc08d2768add5c0b62c9df90d41b6bf61f97" || m["tree/empty"] != "da39a3ee5e6b4b0d3255bfef95601890afd80709" {
		t.Errorf("tree.sha1: %v", m)
	}
}

// TestExtractAndCheckTree: an extracted tree passes CheckTree; each kind
// of damage is reported.
func TestExtractAndCheckTree(t *testing.T) {
	dir := t.TempDir()
	if err := ExtractTree(dir); err != nil {
		t.Fatal(err)
	}
	if err := CheckTree(dir); err != nil {
		t.Fatalf("freshly extracted tree: %v", err)
	}
	tree := filepath.Join(dir, "tree")
	b, err := os.ReadFile(filepath.Join(tree, "lib", "namespace"))
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	fi, _ := os.Stat(filepath.Join(tree, "lib", "namespace"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(tree, "lib", "namespace"), b, 0o644))
	must(os.Chtimes(filepath.Join(tree, "lib", "namespace"), fi.ModTime(), fi.ModTime()))
	must(os.Chmod(filepath.Join(tree, "bin", "random.bin"), 0o644))
	must(os.Chtimes(filepath.Join(tree, "README"), fi.ModTime(), fi.ModTime()))
	must(os.Remove(filepath.Join(tree, "empty")))
	must(os.WriteFile(filepath.Join(tree, "extra"), nil, 0o644))
	err = CheckTree(dir)
	if err == nil {
		t.Fatal("damaged tree passed CheckTree")
	}
	for _, want := range []string{
		"tree/lib/namespace: contents differ",
		"tree/lib/namespace: sha1",
		"tree/bin/random.bin: mode -rw-r--r--, tar has -rwxr-xr-x",
		"tree/bin/random.bin: mode -rw-r--r--, want -rwxr-xr-x",
		"tree/README: mtime",
		"tree/empty: in tree.tar.gz but not restored",
		"tree/extra: restored but not in tree.tar.gz",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckTree error lacks %q:\n%v", want, err)
		}
	}
}
