package arena

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"gridlord/engine/vac"
	"gridlord/engine/venti"
)

// tarTree reads tree.tar.gz: path -> header and contents.
func tarTree(t *testing.T) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	f, err := os.Open(filepath.Join(testdata, "tree.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		hdrs[name] = h
		if h.Typeflag == tar.TypeReg {
			if data[name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return hdrs, data
}

// unvacTree restores tree.vac from st and checks that the result is
// exactly tree/ of tree.tar.gz: the same names, kinds, permission bits,
// file contents and file modification times.
func unvacTree(t *testing.T, st venti.Reader) {
	t.Helper()
	ctx := context.Background()
	score, err := vac.ReadScoreFile(filepath.Join(testdata, "tree.vac"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := vac.Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := vac.Restore(ctx, a, dir, vac.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	hdrs, data := tarTree(t)
	seen := map[string]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seen[rel] = true
		h, ok := hdrs[rel]
		if !ok {
			t.Errorf("%s: restored but not in tree.tar.gz", rel)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != fs.FileMode(h.Mode).Perm() || fi.IsDir() != (h.Typeflag == tar.TypeDir) {
			t.Errorf("%s: mode %v, tar has %v (type %c)", rel, fi.Mode(), fs.FileMode(h.Mode), h.Typeflag)
		}
		if h.Typeflag == tar.TypeReg {
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, data[rel]) {
				t.Errorf("%s: contents differ (%d bytes, want %d)", rel, len(got), len(data[rel]))
			}
			if !fi.ModTime().Equal(h.ModTime) {
				t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime(), h.ModTime)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range hdrs {
		if !seen[name] && name != "." {
			t.Errorf("%s: in tree.tar.gz but not restored", name)
		}
	}
	if len(seen) < 8 {
		t.Errorf("only %d entries restored", len(seen))
	}
}

// TestUnvacAfterImport imports the real arenas and unvacs tree.vac from
// the result; it also unvacs straight from the read-only arena store.
func TestUnvacAfterImport(t *testing.T) {
	b, _ := realArenas(t)
	st := venti.NewMemStore()
	if _, err := Import(context.Background(), openBytes(t, b), st, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Run("imported", func(t *testing.T) { unvacTree(t, st) })
	t.Run("served", func(t *testing.T) {
		rs, err := OpenStore(context.Background(), bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		unvacTree(t, rs)
	})
}
