// Package seedtest makes Plan 9 distribution fixtures for the seed-build
// tests out of the shared, real 9legacy seed (../shared/testdata/
// plan9-seed): no distribution CD can be downloaded in tests.
//
// The seed's fossil archive is a real, filtered Plan 9 root (the grid
// selection, 1,109 entries of the 9legacy CD's replica log), and its 9fat
// holds the kernels. Tree restores that archive from the seed's own venti
// arenas, adds the kernels from the 9fat and writes dist/replica/plan9.log
// (the seed's replica client log, which is that selection of the CD's
// log, plus the kernels), so the tree looks like a CD's. ISO makes an ISO
// 9660 image of it with xorriso (Rock Ridge and Joliet). Both are cached
// under the user's cache directory, keyed by the seed's SHA-256.
package seedtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/plan9disk"
	"gridlord/engine/seedbuild"
	"gridlord/engine/vac"
	"gridlord/engine/venti"
	"gridlord/engine/venti/arena"
	"gridlord/testing/testenv"
)

// SeedEnv overrides the path of the shared seed image.
const SeedEnv = "GRIDLORD_PLAN9_SEED"

// Archive is the score of the seed's last fossil archive (its README).
const Archive = "vac:15e82544206166188aa1c95d6d54f9f4589f052a"

// version changes whenever the fixture's making changes, so stale caches
// are not used.
const version = "1"

// Kernels maps the seed's 9fat kernel files to their place in the tree.
func Kernels() map[string]string {
	return map[string]string{"9PCCPUF": "386/9pccpuf", "9PCCPU": "386/9pccpu", "9PCF": "386/9pcf"}
}

// SeedImage returns the path of the shared seed; the test fails if the
// integration tier is on and it is missing.
func SeedImage(t testing.TB) string {
	t.Helper()
	testenv.Integration(t)
	if p := os.Getenv(SeedEnv); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("seedtest: no go.mod above the test's directory")
		}
		dir = parent
	}
	p := filepath.Join(filepath.Dir(dir), "shared", "testdata", "plan9-seed", "9legacy-grid-seed.qcow2")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the shared Plan 9 seed is needed: %v (set %s to its path)", err, SeedEnv)
	}
	return p
}

// cacheDir returns the fixture cache directory for the seed.
func cacheDir(t testing.TB, seed string) string {
	t.Helper()
	f, err := os.Open(seed)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("hash %s: %v", seed, err)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "gridlord-test", "plan9-dist", hex.EncodeToString(h.Sum(nil))[:16]+"-v"+version)
}

// Tree returns a directory holding the distribution tree (read-only by
// convention: copy it to change it).
func Tree(t testing.TB) string {
	t.Helper()
	seed := SeedImage(t)
	dir := cacheDir(t, seed)
	tree := filepath.Join(dir, "tree")
	if _, err := os.Stat(filepath.Join(tree, seedbuild.LogPath)); err == nil {
		return tree
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(dir, ".tree-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := build(context.Background(), seed, tmp); err != nil {
		t.Fatalf("make the distribution tree from %s: %v", seed, err)
	}
	if err := os.Rename(filepath.Join(tmp, "active"), tree); err != nil {
		if _, serr := os.Stat(filepath.Join(tree, seedbuild.LogPath)); serr != nil {
			t.Fatal(err)
		}
		// Another test process made it first.
	}
	return tree
}

// ISO returns an ISO 9660 image (Rock Ridge and Joliet) of Tree.
func ISO(t testing.TB) string {
	t.Helper()
	xorriso := testenv.Tool(t, "xorriso")
	tree := Tree(t)
	iso := filepath.Join(filepath.Dir(tree), "plan9.iso")
	if _, err := os.Stat(iso); err == nil {
		return iso
	}
	tmp := iso + fmt.Sprintf(".%d.tmp", os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.Command(xorriso, "-as", "mkisofs", "-R", "-J", "-joliet-long", "-V", "PLAN9", "-o", tmp, tree)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, iso); err != nil {
		t.Fatal(err)
	}
	return iso
}

// build restores the seed's archive into dir/active and completes it.
func build(ctx context.Context, seed, dir string) error {
	src, err := arena.OpenSource(seed)
	if err != nil {
		return err
	}
	defer src.Close()
	part, err := arena.Open(src, src.Size)
	if err != nil {
		return err
	}
	store := venti.NewMemStore()
	if _, err := arena.Import(ctx, part, store, arena.ImportOptions{}); err != nil {
		return fmt.Errorf("import the seed's arenas: %w", err)
	}
	score, err := vac.ParseScore(Archive)
	if err != nil {
		return err
	}
	a, err := vac.Open(ctx, store, score)
	if err != nil {
		return fmt.Errorf("open the seed's archive %s: %w", Archive, err)
	}
	if err := vac.Restore(ctx, a, dir, vac.RestoreOptions{Patterns: []string{"active"}}); err != nil {
		return fmt.Errorf("restore the seed's archive: %w", err)
	}
	tree := filepath.Join(dir, "active")
	logData, err := os.ReadFile(filepath.Join(tree, "dist/replica/client/plan9.log"))
	if err != nil {
		return fmt.Errorf("the seed's replica client log: %w", err)
	}
	entries, err := seedbuild.ParseLog(bytes.NewReader(logData))
	if err != nil {
		return err
	}
	// The install's own traces are not part of a CD.
	if err := os.RemoveAll(filepath.Join(tree, "dist/replica/client")); err != nil {
		return err
	}
	added, err := addKernels(seed, tree, entries[len(entries)-1])
	if err != nil {
		return err
	}
	entries = append(entries, added...)
	var buf bytes.Buffer
	if err := seedbuild.WriteLog(&buf, entries); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(tree, seedbuild.LogPath), buf.Bytes(), 0o664)
}

// addKernels copies the kernels from the seed's 9fat into the tree and
// returns their log entries, numbered after last.
func addKernels(seed, tree string, last seedbuild.LogEntry) ([]seedbuild.LogEntry, error) {
	im, closeImg, err := plan9disk.OpenImage(seed, false)
	if err != nil {
		return nil, err
	}
	defer closeImg()
	fat, err := im.FAT()
	if err != nil {
		return nil, err
	}
	var out []seedbuild.LogEntry
	for _, name := range []string{"9PCCPUF", "9PCCPU", "9PCF"} {
		p := Kernels()[name]
		st, err := fat.Stat(name)
		if err != nil {
			return nil, fmt.Errorf("the seed's 9fat: %w", err)
		}
		b, err := fat.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("the seed's 9fat: %w", err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), b, 0o664); err != nil {
			return nil, err
		}
		mt := st.ModTime
		if err := os.Chtimes(filepath.Join(tree, p), mt, mt); err != nil {
			return nil, err
		}
		out = append(out, seedbuild.LogEntry{
			Time: last.Time, Gen: last.Gen + uint32(len(out)) + 1, Verb: 'a', Path: p, ServerPath: p,
			Mode: 0o664, UID: "sys", GID: "sys", Mtime: uint32(mt.Unix()), Length: int64(len(b)),
		})
	}
	return out, nil
}

// CopyTree copies the distribution tree into a new directory under
// t.TempDir (to damage it), leaving out the paths in omit.
func CopyTree(t testing.TB, omit ...string) string {
	t.Helper()
	src := Tree(t)
	dst := filepath.Join(t.TempDir(), "dist")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		for _, o := range omit {
			if rel == o || strings.HasPrefix(rel, o+"/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil && !errors.Is(err, filepath.SkipDir) {
		t.Fatal(err)
	}
	return dst
}

// Truncated returns a copy of the first third of the file at src (a
// truncated ISO image) under t.TempDir.
func Truncated(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut"+filepath.Ext(src))
	if err := os.WriteFile(cut, b[:len(b)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	return cut
}
