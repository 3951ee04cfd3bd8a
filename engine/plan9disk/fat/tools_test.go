package fat

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/testing/testenv"
)

// run runs an external tool and returns its combined output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// TestToolsAcceptOurWrites formats volumes of each width with Format, writes
// files and directories with long and short names, and checks that
// fsck.fat -n finds nothing to fix and that mtools reads every file back.
func TestToolsAcceptOurWrites(t *testing.T) {
	fsck := testenv.Tool(t, "fsck.fat")
	mtype := testenv.Tool(t, "mtype")
	for _, w := range widths {
		t.Run(w.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fat.img")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(w.opts.TotalSectors * 512); err != nil {
				t.Fatal(err)
			}
			if err := Format(f, w.opts); err != nil {
				t.Fatal(err)
			}
			fs, err := Open(f, w.opts.TotalSectors*512)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]string{
				"plan9.ini":                "bootfile=sdC0!9fat!9pcf\n",
				"9pcf":                     strings.Repeat("kernel", 3000),
				"4e/A Long Name.txt":       "long",
				"4e/sub/x":                 "x",
				"4e/sub/replaced.ini":      "new contents",
				"mixed.Case.name":          "m",
				"plan9.nvr":                string(make([]byte, 512)),
				"4e/sub/removed-later.txt": "gone",
			}
			for _, d := range []string{"4e", "4e/sub"} {
				if err := fs.Mkdir(d); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 30 {
				files[fmt.Sprintf("4e/sub/grow%02d_with_a_long_name", i)] = fmt.Sprint(i)
			}
			if err := fs.WriteFile("4e/sub/replaced.ini", bytes.Repeat([]byte("old"), 2000)); err != nil {
				t.Fatal(err)
			}
			for name, data := range files {
				if err := fs.WriteFile(name, []byte(data)); err != nil {
					t.Fatalf("write %s: %v", name, err)
				}
			}
			if err := fs.Remove("4e/sub/removed-later.txt"); err != nil {
				t.Fatal(err)
			}
			delete(files, "4e/sub/removed-later.txt")
			if out, err := run(t, fsck, "-n", "-v", img); err != nil || strings.Contains(out, "unchanged") {
				t.Fatalf("fsck.fat -n: %v\n%s", err, out)
			} else {
				t.Logf("fsck.fat -n: clean (%d lines of -v output)", strings.Count(out, "\n"))
			}
			for name, data := range files {
				out, err := run(t, mtype, "-i", img, "::"+name)
				if err != nil {
					t.Fatalf("mtype %s: %v\n%s", name, err, out)
				}
				if out != data {
					t.Fatalf("mtype %s: got %d bytes, want %d", name, len(out), len(data))
				}
			}
		})
	}
}

// TestReadsMkfsFat reads volumes made by mkfs.fat and written by mcopy.
func TestReadsMkfsFat(t *testing.T) {
	mkfs := testenv.Tool(t, "mkfs.fat")
	mcopy := testenv.Tool(t, "mcopy")
	mmd := testenv.Tool(t, "mmd")
	fsck := testenv.Tool(t, "fsck.fat")
	for _, c := range []struct {
		bits, kib string
	}{{"12", "2048"}, {"16", "20480"}, {"32", "70000"}} {
		t.Run("fat"+c.bits, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "v.img")
			if out, err := run(t, mkfs, "-C", "-F", c.bits, "-s", "1", img, c.kib); err != nil {
				t.Fatalf("mkfs.fat: %v\n%s", err, out)
			}
			src := filepath.Join(dir, "plan9.ini")
			os.WriteFile(src, []byte("console=0\n"), 0o644)
			if out, err := run(t, mmd, "-i", img, "::4e"); err != nil {
				t.Fatalf("mmd: %v\n%s", err, out)
			}
			for _, dst := range []string{"::plan9.ini", "::4e/Some Long Name.ini"} {
				if out, err := run(t, mcopy, "-i", img, src, dst); err != nil {
					t.Fatalf("mcopy: %v\n%s", err, out)
				}
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			fs, err := Open(f, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"plan9.ini", "4e/some long name.ini"} {
				b, err := fs.ReadFile(p)
				if err != nil || string(b) != "console=0\n" {
					t.Fatalf("read %s = %q, %v", p, b, err)
				}
			}
			if err := fs.WriteFile("4e/Some Long Name.ini", []byte("replaced\n")); err != nil {
				t.Fatal(err)
			}
			if err := fs.WriteFile("4e/new.txt", []byte("new\n")); err != nil {
				t.Fatal(err)
			}
			if out, err := run(t, fsck, "-n", img); err != nil {
				t.Fatalf("fsck.fat -n after our writes: %v\n%s", err, out)
			}
		})
	}
}
