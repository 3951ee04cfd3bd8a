package fat

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// memDev is an in-memory Device that refuses access past its end.
type memDev struct{ b []byte }

func (m *memDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("memDev: read %d@%d past end %d", len(p), off, len(m.b))
	}
	return copy(p, m.b[off:]), nil
}

func (m *memDev) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("memDev: write %d@%d past end %d", len(p), off, len(m.b))
	}
	return copy(m.b[off:], p), nil
}

var fixedClock = WithClock(func() time.Time { return time.Date(2026, 11, 23, 12, 34, 56, 0, time.UTC) })

func newFS(t testing.TB, o FormatOptions) (*memDev, *FS) {
	t.Helper()
	dev := &memDev{b: make([]byte, o.TotalSectors*512)}
	if err := Format(dev, o); err != nil {
		t.Fatal(err)
	}
	fs, err := Open(dev, int64(len(dev.b)), fixedClock)
	if err != nil {
		t.Fatal(err)
	}
	return dev, fs
}

var widths = []struct {
	name string
	opts FormatOptions
	want int
}{
	{"fat12", FormatOptions{TotalSectors: 4096}, 12},
	{"fat16", FormatOptions{TotalSectors: 40960}, 16},
	{"fat32", FormatOptions{TotalSectors: 66700, SectorsPerCluster: 1, Bits: 32}, 32},
}

func TestFormatWidthAndVolid(t *testing.T) {
	for _, w := range widths {
		t.Run(w.name, func(t *testing.T) {
			o := w.opts
			o.HiddenSectors = 63
			dev, fs := newFS(t, o)
			if fs.Type() != w.want {
				t.Fatalf("type %d, want %d", fs.Type(), w.want)
			}
			bs := dev.b[:512]
			if string(bs[3:11]) != "Plan9.00" {
				t.Errorf("OEM %q", bs[3:11])
			}
			volOff := 39
			root := 63 + fs.rootSec
			if w.want == 32 {
				volOff = 67
				root = 63 + fs.dataSec
			}
			if got := le32(bs[volOff:]); got != root {
				t.Errorf("volid %d, want root LBA %d", got, root)
			}
		})
	}
}

func TestFilesRoundTrip(t *testing.T) {
	for _, w := range widths {
		t.Run(w.name, func(t *testing.T) {
			_, fs := newFS(t, w.opts)
			big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80000 bytes, many clusters
			files := map[string][]byte{
				"plan9.ini":                  []byte("bootfile=sdC0!9fat!9pcf\n"),
				"9LOAD":                      []byte("loader"),
				"9pcf":                       big,
				"empty":                      nil,
				"A Long File Name.txt":       []byte("lfn"),
				"MiXeD.Ini":                  []byte("mixed"),
				"ünïcode":                    []byte("utf16"),
				"averyveryverylongname.conf": []byte("x"),
			}
			if err := fs.Mkdir("4e"); err != nil {
				t.Fatal(err)
			}
			if err := fs.Mkdir("4e/sub"); err != nil {
				t.Fatal(err)
			}
			files["4e/sub/deep.txt"] = []byte("deep")
			for i := range 40 { // enough to grow a subdirectory past one cluster
				files[fmt.Sprintf("4e/file number %02d with long name", i)] = []byte(fmt.Sprint(i))
			}
			for name, data := range files {
				if err := fs.WriteFile(name, data); err != nil {
					t.Fatalf("write %s: %v", name, err)
				}
			}
			check := func(fs *FS) {
				for name, data := range files {
					got, err := fs.ReadFile(name)
					if err != nil {
						t.Fatalf("read %s: %v", name, err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("read %s: %d bytes, want %d", name, len(got), len(data))
					}
				}
			}
			check(fs)
			// Reopen from the device: nothing lives only in memory.
			fs2, err := Open(fs.dev, 1<<40)
			if err != nil {
				t.Fatal(err)
			}
			check(fs2)
			// Case-insensitive lookup by long and short name.
			if _, err := fs2.ReadFile("PLAN9.INI"); err != nil {
				t.Error(err)
			}
			st, err := fs2.Stat("plan9.ini")
			if err != nil || st.Name != "plan9.ini" || st.ShortName != "PLAN9.INI" {
				t.Errorf("stat plan9.ini = %+v, %v", st, err)
			}
			if st.ModTime.Year() != 2026 {
				t.Errorf("mtime %v", st.ModTime)
			}
			if st, err := fs2.Stat("A Long File Name.txt"); err != nil || !strings.HasPrefix(st.ShortName, "ALONGF~") {
				t.Errorf("stat lfn = %+v, %v", st, err)
			}
		})
	}
}

func TestReplaceFreesOldChain(t *testing.T) {
	_, fs := newFS(t, widths[1].opts)
	free0 := fs.FreeBytes()
	if err := fs.WriteFile("f", bytes.Repeat([]byte{1}, 10000)); err != nil {
		t.Fatal(err)
	}
	if err := fs.WriteFile("F", []byte("short")); err != nil { // same file, other case
		t.Fatal(err)
	}
	if got := fs.FreeBytes(); got != free0-fs.ClusterSize() {
		t.Errorf("free %d, want %d", got, free0-fs.ClusterSize())
	}
	ents, _ := fs.ReadDir("/")
	if len(ents) != 1 || ents[0].Name != "f" || ents[0].Size != 5 {
		t.Errorf("root = %+v", ents)
	}
	if err := fs.Remove("f"); err != nil {
		t.Fatal(err)
	}
	if fs.FreeBytes() != free0 {
		t.Errorf("free after remove %d, want %d", fs.FreeBytes(), free0)
	}
	if _, err := fs.ReadFile("f"); !errors.Is(err, ErrNotExist) {
		t.Errorf("read removed: %v", err)
	}
}

func TestRefusedWritesChangeNothing(t *testing.T) {
	dev, fs := newFS(t, FormatOptions{TotalSectors: 400, RootEntries: 16})
	if err := fs.WriteFile("keep", []byte("keep")); err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), dev.b...)
	cases := []struct {
		name string
		f    func() error
	}{
		{"too big", func() error { return fs.WriteFile("big", make([]byte, 400*512)) }},
		{"bad name", func() error { return fs.WriteFile("a:b", nil) }},
		{"no parent", func() error { return fs.WriteFile("nodir/x", nil) }},
		{"parent file", func() error { return fs.WriteFile("keep/x", nil) }},
		{"mkdir exists", func() error { return fs.Mkdir("keep") }},
		{"root full", func() error { // last: it writes entries before it fails
			for i := 0; ; i++ {
				if err := fs.WriteFile(fmt.Sprintf("F%d", i), nil); err != nil {
					return err
				}
			}
		}},
	}
	for _, c := range cases {
		name, f := c.name, c.f
		err := f()
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		t.Logf("%s: %v", name, err)
		if name == "root full" {
			continue
		}
		if !bytes.Equal(before, dev.b) {
			t.Fatalf("%s: device changed by a refused write", name)
		}
	}
}

func TestOpenRejectsGarbage(t *testing.T) {
	dev := &memDev{b: make([]byte, 64*1024)}
	if _, err := Open(dev, int64(len(dev.b))); err == nil {
		t.Fatal("zeroed device opened as FAT")
	} else {
		t.Log(err)
	}
}

func TestChainLoopDetected(t *testing.T) {
	_, fs := newFS(t, widths[0].opts)
	if err := fs.WriteFile("f", make([]byte, 3*int(fs.ClusterSize()))); err != nil {
		t.Fatal(err)
	}
	_, e, _ := fs.find("f")
	fs.setEntry(e.clus+2, e.clus) // loop back to the start
	if _, err := fs.ReadFile("f"); err == nil || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("loop not detected: %v", err)
	}
}

// fuzzSize is the volume size the fuzzer's inputs describe; bytes past the
// input read as zeros, so a small input can describe a whole volume.
const fuzzSize = 2200 << 10

// FuzzOpenRead feeds arbitrary bytes as the start of a volume: Open and
// reading every file must not panic, hang or write; a write on a copy must
// not panic either.
func FuzzOpenRead(f *testing.F) {
	// Small seeds keep the fuzzer's minimisation of new inputs quick.
	for _, o := range []FormatOptions{{TotalSectors: 200, SectorsPerCluster: 1, RootEntries: 16}, {TotalSectors: 4200, SectorsPerCluster: 1, RootEntries: 16}} {
		dev := &memDev{b: make([]byte, o.TotalSectors*512)}
		if err := Format(dev, o); err != nil {
			f.Fatal(err)
		}
		fs, err := Open(dev, int64(len(dev.b)))
		if err != nil {
			f.Fatal(err)
		}
		fs.Mkdir("d")
		fs.WriteFile("d/a long name.txt", []byte("hello"))
		fs.WriteFile("plan9.ini", []byte("a=b\n"))
		// Keep the seed small: boot sector, FATs, root and the first clusters.
		f.Add(dev.b[:int(fs.dataSec*512)+3*512])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzSize {
			return
		}
		fs, err := Open(&roDev{b: b}, fuzzSize)
		if err != nil {
			return
		}
		budget := 100 // a damaged tree can be a deep cycle: bound the walk
		var walk func(string, int)
		walk = func(p string, depth int) {
			if depth > 4 {
				return
			}
			ents, err := fs.ReadDir(p)
			if err != nil {
				return
			}
			for _, e := range ents {
				if budget--; budget < 0 {
					return
				}
				if e.IsDir {
					walk(p+"/"+e.Name, depth+1)
				} else {
					fs.ReadFile(p + "/" + e.Name)
				}
			}
		}
		walk("", 0)
		if wfs, err := Open(&cowDev{base: b, secs: map[int64][]byte{}}, fuzzSize); err == nil {
			wfs.WriteFile("plan9.ini", []byte("x=y\n"))
			wfs.WriteFile("d/new file.txt", []byte("z"))
		}
	})
}

// roDev is a Device whose writes panic, so fuzzing proves reads don't
// write. Bytes past b read as zeros.
type roDev struct{ b []byte }

func (r *roDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > fuzzSize {
		return 0, fmt.Errorf("read past end")
	}
	clear(p)
	if off < int64(len(r.b)) {
		copy(p, r.b[off:])
	}
	return len(p), nil
}

func (r *roDev) WriteAt(p []byte, off int64) (int, error) { panic("write during read-only use") }

// cowDev is a copy-on-write Device over a fuzz input: bytes past the input
// read as zeros, writes land in per-sector copies (cheaper than allocating
// the whole volume for every input).
type cowDev struct {
	base []byte
	secs map[int64][]byte
}

func (c *cowDev) sector(n int64, write bool) []byte {
	if s, ok := c.secs[n]; ok {
		return s
	}
	s := make([]byte, 512)
	if off := n * 512; off < int64(len(c.base)) {
		copy(s, c.base[off:])
	}
	if write {
		c.secs[n] = s
	}
	return s
}

func (c *cowDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > fuzzSize {
		return 0, fmt.Errorf("read past end")
	}
	for i := 0; i < len(p); {
		s := c.sector((off+int64(i))/512, false)
		i += copy(p[i:], s[(off+int64(i))%512:])
	}
	return len(p), nil
}

func (c *cowDev) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > fuzzSize {
		return 0, fmt.Errorf("write past end")
	}
	for i := 0; i < len(p); {
		s := c.sector((off+int64(i))/512, true)
		i += copy(s[(off+int64(i))%512:], p[i:])
	}
	return len(p), nil
}
