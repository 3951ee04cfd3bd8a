package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// names lists dir's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestWriteReplaces: Write creates a file, replaces it with new contents and
// mode, and leaves nothing else in the directory.
func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := Write(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("two, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "two, longer" {
		t.Fatalf("contents %q, %v; want %q", got, err, "two, longer")
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	if n := names(t, dir); len(n) != 1 || n[0] != "f.json" {
		t.Errorf("directory holds %q, want only f.json", n)
	}
	// A relative path writes in the current directory.
	t.Chdir(dir)
	if err := Write("rel", []byte("r"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "rel")); err != nil || string(got) != "r" {
		t.Errorf("relative path: %q, %v", got, err)
	}
}

// TestWriteFailures: every way a Write can fail leaves the target as it
// was and no temporary file behind, and the error names the target.
func TestWriteFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := Write(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	// fill fails after writing part of the new contents.
	err := WriteFunc(path, 0o644, func(f *os.File) error {
		f.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Errorf("failing fill: %v, want boom naming %s", err, path)
	}
	// fill closes the file: Sync fails.
	if err := WriteFunc(path, 0o644, func(f *os.File) error { return f.Close() }); err == nil {
		t.Error("a closed temporary file was renamed into place")
	}
	// The target is a non-empty directory: the rename fails.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(sub, []byte("x"), 0o644); err == nil {
		t.Error("Write replaced a non-empty directory")
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("failed writes changed the target to %q", got)
	}
	if n := names(t, dir); len(n) != 2 {
		t.Errorf("directory holds %q after failed writes, want only f and sub", n)
	}
	// A missing directory: nothing is created.
	missing := filepath.Join(dir, "nodir", "f")
	if err := Write(missing, []byte("x"), 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("write into a missing directory: %v, want ErrNotExist", err)
	}
	if err := SyncDir(filepath.Join(dir, "nodir")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing directory: %v, want ErrNotExist", err)
	}
	if err := SyncDir(dir); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
}

// TestConcurrentWrites: many goroutines Write different versions of one
// file at once; all succeed, the file is exactly one of the versions, and
// no temporary file is left.
func TestConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "grid.json")
	const writers, rounds = 8, 20
	versions := make([][]byte, writers)
	for i := range versions {
		versions[i] = bytes.Repeat([]byte{byte('a' + i)}, 64<<10+i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := Write(path, versions[i], 0o644); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Write: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	which := -1
	for i, v := range versions {
		if bytes.Equal(got, v) {
			which = i
		}
	}
	if which < 0 {
		t.Errorf("file (%d bytes) is none of the versions written", len(got))
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("directory holds %q, want only grid.json", n)
	}
}

// TestRemoveTemps removes exactly the temporary files Writes to the path
// can leave behind.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index")
	keep := []string{"index", ".index.tmp", ".index.x1.tmp", ".other.123.tmp", ".index.123.tmp.bak"}
	stale := []string{".index.123.tmp", ".index.4294967295.tmp"}
	for _, n := range append(keep, stale...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A leftover named as Write names its temporary files.
	f, err := os.CreateTemp(dir, tempPrefix("index")+"*"+tempSuffix)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := RemoveTemps(path); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(names(t, dir))
	if want := fmt.Sprint([]string{".index.123.tmp.bak", ".index.tmp", ".index.x1.tmp", ".other.123.tmp", "index"}); got != want {
		t.Errorf("left %s, want %s", got, want)
	}
	if err := RemoveTemps(filepath.Join(dir, "nodir", "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RemoveTemps in a missing directory: %v", err)
	}
}
