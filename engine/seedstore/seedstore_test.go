package seedstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gridlord/engine/qcow2"
	"gridlord/engine/venti/store"
	"gridlord/testing/testenv"
)

// seed is the real 9legacy seed that ships with Gridlord.
const seed = "../../images/seeds/9legacy-grid-seed.qcow2"

// newStore opens a store in a new temporary directory, which it returns;
// the store closes with the test.
func newStore(t testing.TB) (string, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "venti"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return dir, st
}

// diskSum returns the SHA-256 of the virtual disk of the image at path.
func diskSum(t *testing.T, path string) string {
	t.Helper()
	img, err := qcow2.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(img, 0, img.Size())); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dirBytes is the bytes the files under dir take.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			n += fi.Size()
		}
		return nil
	})
	return n
}

// TestRealSeedRoundTrip stores the shipped seed and restores it: the
// restored disk is the seed's disk byte for byte, the store takes less
// than the seed's own (zlib-compressed) qcow2 file, and the clumps of the
// seed's venti are left out of the archived disk. A block the venti loses
// makes Restore fail instead of giving a different disk.
func TestRealSeedRoundTrip(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	dir, st := newStore(t)
	res, err := Import(ctx, st, seed, ImportOptions{TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := diskSum(t, seed)
	if res.DiskSHA256 != want {
		t.Fatalf("Import measured SHA-256 %s, the disk has %s", res.DiskSHA256, want)
	}
	if res.Clumps != 9317 || res.Blanked < res.Clumps*99/100 {
		t.Fatalf("%d of %d clumps left out of the archived disk; want (nearly) all of the seed's 9317", res.Blanked, res.Clumps)
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(seed)
	if err != nil {
		t.Fatal(err)
	}
	stored := dirBytes(t, filepath.Join(dir, "venti"))
	t.Logf("seed %d bytes, store %d bytes (%.3f×); %d clumps, %d blanked (%d bytes)",
		fi.Size(), stored, float64(stored)/float64(fi.Size()), res.Clumps, res.Blanked, res.BlankedBytes)
	if stored > fi.Size() {
		t.Errorf("the store takes %d bytes, more than the seed's qcow2 file (%d)", stored, fi.Size())
	}

	out := filepath.Join(dir, "restored.qcow2")
	if err := Restore(ctx, st, res.Vac, out, res.DiskSHA256, nil); err != nil {
		t.Fatal(err)
	}
	if got := diskSum(t, out); got != want {
		t.Fatalf("restored disk has SHA-256 %s, want %s", got, want)
	}

	// Importing again stores nothing new.
	before := st.Stats().Blocks
	if _, err := Import(ctx, st, seed, ImportOptions{TempDir: dir}); err != nil {
		t.Fatal(err)
	}
	if after := st.Stats().Blocks; after > before+8 {
		t.Errorf("a second import stored %d new blocks", after-before)
	}

	// A wrong checksum (a venti that gives back other bytes) fails.
	err = Restore(ctx, st, res.Vac, filepath.Join(dir, "bad.qcow2"), want[:63]+"0", nil)
	if err == nil {
		t.Fatal("Restore with the wrong SHA-256 succeeded")
	}
	if _, serr := os.Stat(filepath.Join(dir, "bad.qcow2")); serr == nil {
		t.Fatal("a failed Restore left its output behind")
	}
	t.Log(err)
}

// TestNoArenas: an image without venti arenas is refused with ErrNoArenas
// and nothing is stored.
func TestNoArenas(t *testing.T) {
	dir, st := newStore(t)
	img := filepath.Join(dir, "blank.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(context.Background(), st, img, ImportOptions{TempDir: dir}); !errors.Is(err, ErrNoArenas) {
		t.Fatalf("Import of a blank disk: %v, want ErrNoArenas", err)
	}
	if n := st.Stats().Blocks; n != 0 {
		t.Fatalf("%d blocks stored", n)
	}
}

// TestAnyDisk: with AnyDisk a disk without arenas is archived whole and
// restored as a qcow2 file with the same contents.
func TestAnyDisk(t *testing.T) {
	ctx := context.Background()
	dir, st := newStore(t)
	img := filepath.Join(dir, "disk.raw")
	b := make([]byte, 3<<20)
	for i := range b[1<<20 : 2<<20] {
		b[1<<20+i] = byte(i * 7)
	}
	if err := os.WriteFile(img, b, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Import(ctx, st, img, ImportOptions{TempDir: dir, AnyDisk: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clumps != 0 || res.DiskSize != int64(len(b)) {
		t.Fatalf("result %+v", res)
	}
	out := filepath.Join(dir, "out.qcow2")
	if err := Restore(ctx, st, res.Vac, out, res.DiskSHA256, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := diskSum(t, out), diskSum(t, img); got != want {
		t.Fatalf("restored disk %s, want %s", got, want)
	}
}
