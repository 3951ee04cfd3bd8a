// Package p9pdata is the project's one copy of real plan9port venti and
// vac data, and the helpers tests use to read it: an arena partition
// (arenas.gz), every block two vac runs wrote (blocks.bin, listed in
// blocks.txt), the vac scores (tree.vac, sparse.vac), and the archived
// directory (tree.tar.gz) with its files' SHA-1s (tree.sha1). README.md in
// this directory says how plan9port made each file.
//
// The files are found next to this source file, so tests that use them
// work from any package directory (but not in a binary built with
// -trimpath).
package p9pdata

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gridlord/engine/venti"
)

// Dir returns the absolute path of the directory holding the data files.
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("p9pdata: runtime.Caller failed; cannot locate the test data")
	}
	return filepath.Dir(file)
}

// Path returns the absolute path of the data file name ("blocks.bin",
// "tree.vac", ...).
func Path(name string) string { return filepath.Join(Dir(), name) }

// Block is one block of blocks.bin.
type Block struct {
	// Type is the block's wire type (13 data, 2 dir, 3+ pointer levels,
	// 1 root).
	Type venti.Type
	// Score is the block's score as blocks.txt lists it (and the SHA-1 of
	// Data).
	Score venti.Score
	// Data is the block's contents.
	Data []byte
}

// Blocks reads the 59 blocks of blocks.bin (type[1] length[4, big-endian]
// data), in the order plan9port's clients wrote them, and checks them
// against blocks.txt ("type score length" per block): the same number of
// blocks, each with the listed type and length and with the listed score
// as the SHA-1 of its data.
func Blocks() ([]Block, error) {
	bin, err := os.ReadFile(Path("blocks.bin"))
	if err != nil {
		return nil, err
	}
	txt, err := os.ReadFile(Path("blocks.txt"))
	if err != nil {
		return nil, err
	}
	var blocks []Block
	for len(bin) > 0 {
		if len(bin) < 5 {
			return nil, errors.New("blocks.bin: torn header")
		}
		n := int(binary.BigEndian.Uint32(bin[1:5]))
		if len(bin) < 5+n {
			return nil, errors.New("blocks.bin: torn block")
		}
		blocks = append(blocks, Block{Type: venti.Type(bin[0]), Data: bin[5 : 5+n]})
		bin = bin[5+n:]
	}
	i := 0
	for _, line := range strings.Split(string(txt), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var ty, n int
		var sc string
		if _, err := fmt.Sscan(line, &ty, &sc, &n); err != nil {
			return nil, fmt.Errorf("blocks.txt %q: %w", line, err)
		}
		s, err := venti.ParseScore(sc)
		if err != nil {
			return nil, fmt.Errorf("blocks.txt %q: %w", line, err)
		}
		if i >= len(blocks) || blocks[i].Type != venti.Type(ty) || len(blocks[i].Data) != n || venti.Sum(blocks[i].Data) != s {
			return nil, fmt.Errorf("blocks.txt line %q does not match blocks.bin block %d", line, i)
		}
		blocks[i].Score = s
		i++
	}
	if i != len(blocks) || i == 0 {
		return nil, fmt.Errorf("blocks.txt lists %d blocks, blocks.bin holds %d", i, len(blocks))
	}
	return blocks, nil
}

// openGzip opens the gzipped data file name; closing the result closes
// the file.
func openGzip(name string) (io.ReadCloser, error) {
	f, err := os.Open(Path(name))
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

// Arenas returns the arena partition plan9port's venti wrote (arenas.gz
// gunzipped: 25,165,824 bytes, three 8 MiB arenas of which arenas000 holds
// the 59 blocks of Blocks).
func Arenas() ([]byte, error) {
	r, err := openGzip("arenas.gz")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("gunzip arenas.gz: %w", err)
	}
	return b, nil
}

// TreeSHA1 reads tree.sha1: the hex SHA-1 of every regular file of the
// archived tree, by its slash-separated path ("tree/README").
func TreeSHA1() (map[string]string, error) {
	f, err := os.Open(Path("tree.sha1"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 {
			m[fields[1]] = fields[0]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tree.sha1: %w", err)
	}
	return m, nil
}

// tarEntry is one member of tree.tar.gz.
type tarEntry struct {
	hdr  *tar.Header
	data []byte // regular files only
}

// readTar reads every member of tree.tar.gz, calling fn for each in order.
func readTar(fn func(name string, e tarEntry) error) error {
	r, err := openGzip("tree.tar.gz")
	if err != nil {
		return err
	}
	defer r.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tree.tar.gz: %w", err)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if !filepath.IsLocal(name) {
			return fmt.Errorf("tree.tar.gz: member %q leaves the tree", h.Name)
		}
		e := tarEntry{hdr: h}
		if h.Typeflag == tar.TypeReg {
			if e.data, err = io.ReadAll(tr); err != nil {
				return fmt.Errorf("read tree.tar.gz %s: %w", h.Name, err)
			}
		}
		if err := fn(name, e); err != nil {
			return err
		}
	}
}

// ExtractTree unpacks tree.tar.gz into dst, which must exist, creating
// dst/tree with the permission bits and modification times the archive
// records for its files and directories.
func ExtractTree(dst string) error {
	type dirTime struct {
		p string
		m time.Time
	}
	var dirs []dirTime
	err := readTar(func(name string, e tarEntry) error {
		p := filepath.Join(dst, name)
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(p, fs.FileMode(e.hdr.Mode).Perm()); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{p, e.hdr.ModTime})
		case tar.TypeReg:
			if err := os.WriteFile(p, e.data, 0o600); err != nil {
				return err
			}
			if err := os.Chmod(p, fs.FileMode(e.hdr.Mode).Perm()); err != nil {
				return err
			}
			if err := os.Chtimes(p, e.hdr.ModTime, e.hdr.ModTime); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("extract tree.tar.gz: %w", err)
	}
	// Directory times last, deepest first: filling a directory changes
	// its mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].p, dirs[i].m, dirs[i].m); err != nil {
			return fmt.Errorf("extract tree.tar.gz: %w", err)
		}
	}
	return nil
}

// promisedModes are the permission bits README.md promises.
var promisedModes = map[string]fs.FileMode{"tree/dir/sub/deep.txt": 0o640, "tree/bin/random.bin": 0o755, "tree/README": 0o644, "tree/dir": 0o755}

// readmeMTime is the modification time README.md promises for tree/README.
var readmeMTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// CheckTree checks that dir holds exactly the tree of tree.tar.gz, as a
// restore of tree.vac must leave it: the same names and kinds, permission
// bits, file contents and file modification times, at least 8 entries;
// the SHA-1s of tree.sha1; and the modes and README mtime that README.md
// promises. It returns every difference found, joined, or nil.
func CheckTree(dir string) error {
	want := map[string]tarEntry{}
	if err := readTar(func(name string, e tarEntry) error { want[name] = e; return nil }); err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seen[rel] = true
		e, ok := want[rel]
		if !ok {
			bad("%s: restored but not in tree.tar.gz", rel)
			return nil
		}
		h := e.hdr
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != fs.FileMode(h.Mode).Perm() || fi.IsDir() != (h.Typeflag == tar.TypeDir) {
			bad("%s: mode %v, tar has %v (type %c)", rel, fi.Mode(), fs.FileMode(h.Mode), h.Typeflag)
		}
		if h.Typeflag == tar.TypeReg {
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, e.data) {
				bad("%s: contents differ (%d bytes, want %d)", rel, len(got), len(e.data))
			}
			if !fi.ModTime().Equal(h.ModTime) {
				bad("%s: mtime %v, want %v", rel, fi.ModTime(), h.ModTime)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check tree %s: %w", dir, err)
	}
	for name := range want {
		if !seen[name] && name != "." {
			bad("%s: in tree.tar.gz but not restored", name)
		}
	}
	if len(seen) < 8 {
		bad("only %d entries restored", len(seen))
	}

	sums, err := TreeSHA1()
	if err != nil {
		return err
	}
	for p, sum := range sums {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			bad("%s: %v", p, err)
			continue
		}
		if got := sha1.Sum(b); hex.EncodeToString(got[:]) != sum {
			bad("%s: sha1 %x, want %s", p, got, sum)
		}
	}
	for p, mode := range promisedModes {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			bad("%s: %v", p, err)
		} else if fi.Mode().Perm() != mode {
			bad("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "tree", "README")); err == nil && !fi.ModTime().Equal(readmeMTime) {
		bad("tree/README: mtime %v, want %v", fi.ModTime().UTC(), readmeMTime)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restored tree %s differs from tree.tar.gz:\n%w", dir, err)
	}
	return nil
}
