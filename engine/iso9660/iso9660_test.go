package iso9660

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// image returns the bytes of a testdata image (made by testdata/make.sh).
func image(t testing.TB, name string) []byte {
	t.Helper()
	return gunzip(t, name+".iso.gz")
}

// rootNames lists the root directory.
func rootNames(t testing.TB, f fs.FS) []string {
	t.Helper()
	ents, err := fs.ReadDir(f, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// gunzip returns the contents of a gzipped testdata file.
func gunzip(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openBytes(t testing.TB, b []byte) *FS {
	t.Helper()
	f, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readFile(t *testing.T, f fs.FS, name string) string {
	t.Helper()
	b, err := fs.ReadFile(f, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRockRidge(t *testing.T) {
	f := openBytes(t, image(t, "rrj"))
	if e := f.Extensions(); !e.RockRidge || !e.Joliet {
		t.Fatalf("extensions %+v, want Rock Ridge and Joliet", e)
	}
	if f.Label() != "GRIDTEST" {
		t.Errorf("label %q", f.Label())
	}
	if got := readFile(t, f, "386/bin/venti/fmtarenas"); got != "hello\n" {
		t.Errorf("fmtarenas = %q", got)
	}
	if got := readFile(t, f, "a/b/c/d/e/f/g/h/i/j/leaf.txt"); got != "deep\n" {
		t.Errorf("deep leaf = %q", got)
	}
	if got := readFile(t, f, "A Long Name with spaces and MixedCase.txt"); got != "x\n" {
		t.Errorf("long name = %q", got)
	}
	if got := readFile(t, f, "386/9load"); got != strings.Repeat("z", 100000) {
		t.Errorf("9load: %d bytes, not 100000 z", len(got))
	}
	fi, err := fs.Stat(f, "386/9load")
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*Stat)
	if !st.HasOwner || st.UID != 1000 || st.GID != 1001 {
		t.Errorf("9load owner %+v, want uid 1000 gid 1001", st)
	}
	if want := time.Date(2005, 6, 7, 8, 9, 10, 0, time.UTC); !fi.ModTime().Equal(want) {
		t.Errorf("9load mtime %v, want %v", fi.ModTime(), want)
	}
	if fi.Mode() != 0o644 || fi.Size() != 100000 {
		t.Errorf("9load mode %v size %d", fi.Mode(), fi.Size())
	}
	fi, err = fs.Stat(f, "386/bin/venti/fmtarenas")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o775 {
		t.Errorf("fmtarenas mode %v, want 0775", fi.Mode())
	}
	fi, err = fs.Stat(f, "a/bin")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("a/bin mode %v, want a symlink", fi.Mode())
	}
	if l, err := f.ReadLink("a/bin"); err != nil || l != "../386/bin" {
		t.Errorf("a/bin -> %q, %v", l, err)
	}
	fi, err = fs.Stat(f, "empty")
	if err != nil || !fi.IsDir() || fi.Mode() != fs.ModeDir|0o755 {
		t.Errorf("empty: %v %v", fi, err)
	}
	// The plain ISO names never show through Rock Ridge ones.
	if _, err := fs.Stat(f, "a_long_n.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("8.3 name visible: %v", err)
	}
	if err := fstest.TestFS(f, "386/9load", "386/bin/venti/fmtarenas", "a/b/c/d/e/f/g/h/i/j/leaf.txt", "empty"); err != nil {
		t.Fatal(err)
	}
}

func TestJoliet(t *testing.T) {
	f := openBytes(t, image(t, "joliet"))
	if e := f.Extensions(); e.RockRidge || !e.Joliet {
		t.Fatalf("extensions %+v, want Joliet only", e)
	}
	if got := readFile(t, f, "A Long Name with spaces and MixedCase.txt"); got != "x\n" {
		t.Errorf("long name = %q", got)
	}
	if got := readFile(t, f, "386/bin/venti/fmtarenas"); got != "hello\n" {
		t.Errorf("fmtarenas = %q", got)
	}
	fi, err := fs.Stat(f, "386/9load")
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*Stat); st.HasOwner || fi.Mode() != 0o444 {
		t.Errorf("Joliet 9load %+v mode %v: want no owner, mode 0444", st, fi.Mode())
	}
	if err := fstest.TestFS(f, "386/9load", "a/b/c/d/e/f/g/h/i/j/leaf.txt"); err != nil {
		t.Fatal(err)
	}
}

func TestPlainNames(t *testing.T) {
	f := openBytes(t, image(t, "plain"))
	if e := f.Extensions(); e.RockRidge || e.Joliet {
		t.Fatalf("extensions %+v, want none", e)
	}
	if got := readFile(t, f, "386/9load"); len(got) != 100000 {
		t.Errorf("9load: %d bytes", len(got))
	}
	names := rootNames(t, f)
	if strings.Join(names, " ") != "386 a a_long_n.txt empty" {
		t.Errorf("root names %q", names)
	}
}

// TestStableIDs: a file's Stat.ID is the same on every open and differs
// between files.
func TestStableIDs(t *testing.T) {
	b := image(t, "rrj")
	ids := map[uint64]string{}
	for range 2 {
		f := openBytes(t, b)
		err := fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			id := fi.Sys().(*Stat).ID
			if other, ok := ids[id]; ok && other != p {
				t.Errorf("%s and %s share ID %d", p, other, id)
			}
			ids[id] = p
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadImages(t *testing.T) {
	good := image(t, "rrj")
	vol := int64(len(good))
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not an ISO 9660 image"},
		{"zeros", make([]byte, 64*SectorSize), "no CD001"},
		{"truncated", good[:len(good)/2], "truncated"},
		{"descriptors only", good[:17*SectorSize], "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// A file whose extent was cut off is reported when read, by name.
	f, err := Open(bytes.NewReader(good), vol)
	if err != nil {
		t.Fatal(err)
	}
	f.size = vol - 50*SectorSize // as if the file ended early
	if _, err := fs.ReadFile(f, "386/9load"); err == nil {
		t.Log("9load lies before the cut")
	} else if !strings.Contains(err.Error(), "9load") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestOpenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.iso")
	if err := os.WriteFile(p, image(t, "rrj"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readFile(t, f, "386/bin/venti/fmtarenas"); got != "hello\n" {
		t.Errorf("fmtarenas = %q", got)
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "none.iso")); err == nil {
		t.Error("missing file opened")
	}
	bad := filepath.Join(t.TempDir(), "bad.iso")
	os.WriteFile(bad, []byte("hello"), 0o644)
	if _, err := OpenFile(bad); err == nil || !strings.Contains(err.Error(), bad) || !errors.Is(err, ErrNotISO) {
		t.Errorf("OpenFile(bad) = %v, want ErrNotISO naming the file", err)
	}
}

// FuzzOpen: no image bytes make the reader panic or hang; whatever opens
// can be walked and read. The input is the image after its 16 system-area
// sectors (always ignored), which keeps the inputs small.
func FuzzOpen(f *testing.F) {
	seed := gunzip(f, "fuzzseed.bin.gz")
	f.Add(seed)
	f.Add(seed[:3*SectorSize])
	f.Fuzz(func(t *testing.T, tail []byte) {
		b := append(make([]byte, descStart*SectorSize), tail...)
		img, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		fs.WalkDir(img, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if fl, err := img.Open(p); err == nil {
				io.Copy(io.Discard, io.LimitReader(fl.(io.Reader), 1<<20))
				fl.Close()
			}
			return nil
		})
	})
}

// TestRelocated: a tree deeper than ISO 9660 allows, relocated with
// Rock Ridge CL/RE entries, reads back as the original tree.
func TestRelocated(t *testing.T) {
	f := openBytes(t, image(t, "reloc"))
	if got := readFile(t, f, "a/b/c/d/e/f/g/h/i/j/leaf.txt"); got != "deep\n" {
		t.Errorf("deep leaf = %q", got)
	}
	names := rootNames(t, f)
	if strings.Join(names, " ") != "386 A Long Name with spaces and MixedCase.txt a empty" {
		t.Errorf("root lists %q: a relocated directory shows", names)
	}
	if err := fstest.TestFS(f, "a/b/c/d/e/f/g/h/i/j/leaf.txt"); err != nil {
		t.Fatal(err)
	}
}
