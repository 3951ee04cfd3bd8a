package seedbuild

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"9fans.net/go/plan9"
)

func realLog(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "grid-plan9.log"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLogRoundTrip: the real 9legacy log parses and is written back byte
// for byte.
func TestLogRoundTrip(t *testing.T) {
	b := realLog(t)
	entries, err := ParseLog(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1109 {
		t.Fatalf("%d entries, want 1109", len(entries))
	}
	e := entries[0]
	if e.Time != 1681498530 || e.Gen != 10 || e.Verb != 'a' || e.Path != "adm" || e.ServerPath != "adm" ||
		e.Mode != DMDIR|0o775 || e.UID != "adm" || e.GID != "adm" || e.Mtime != 1681497796 || e.Length != 0 || !e.IsDir() {
		t.Errorf("first entry %+v", e)
	}
	var out bytes.Buffer
	if err := WriteLog(&out, entries); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), b) {
		t.Error("the log written back differs from the original")
	}
	files, size := Totals(entries)
	if files != 1109 || size < 60<<20 || size > 80<<20 {
		t.Errorf("totals %d files %d bytes", files, size)
	}
}

func TestLogQuoting(t *testing.T) {
	e := LogEntry{Time: 1, Gen: 2, Verb: 'm', Path: "usr/glenda/it's a file", ServerPath: "x y", Mode: 0o644, UID: "glenda", GID: "a b", Mtime: 3, Length: 4}
	line := e.String()
	if line != `1 2 m 'usr/glenda/it''s a file' 'x y' 644 glenda 'a b' 3 4` {
		t.Errorf("formatted %q", line)
	}
	got, err := ParseLogLine(line)
	if err != nil || got != e {
		t.Errorf("parsed back %+v, %v", got, err)
	}
	// Quotes may make up part of a field, as tokenize allows.
	got, err = ParseLogLine(`1 2 a ab'c d'e - 20000000775 sys sys 3 0`)
	if err != nil || got.Path != "abc de" || got.ServerPath != "abc de" {
		t.Errorf("mid-field quotes: %+v, %v", got, err)
	}
}

func TestLogErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"1 2 a adm - 775 adm adm 3", "9 fields"},
		{"x 2 a adm - 775 adm adm 3 0", "time"},
		{"1 2 z adm - 775 adm adm 3 0", "verb"},
		{"1 2 a /adm - 775 adm adm 3 0", "relative"},
		{"1 2 a adm/../x - 775 adm adm 3 0", ".."},
		{"1 2 a adm - 789 adm adm 3 0", "mode"},
		{"1 2 a adm - 775 adm adm 3 -1", "length"},
		{"1 2 a 'adm - 775 adm adm 3 0", "unterminated"},
		{"1 2 a adm - 775 '' adm 3 0", "owner"},
	} {
		_, err := ParseLog(strings.NewReader("1 1 a lib - 20000000775 sys sys 1 0\n" + tc.line + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v, want an error about %q on line 2", tc.line, err, tc.want)
		}
	}
}

func TestFinal(t *testing.T) {
	log := "1 1 a a - 664 sys sys 1 10\n1 2 a b - 664 sys sys 1 20\n1 3 c a - 664 sys sys 2 11\n1 4 d b - 664 sys sys 2 0\n1 5 a c - 664 sys sys 3 5\n1 6 d c - 664 sys sys 4 0\n1 7 a c - 600 sys sys 5 6\n"
	entries, err := ParseLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range Final(entries) {
		got = append(got, e.String())
	}
	want := []string{"1 3 c a - 664 sys sys 2 11", "1 7 a c - 600 sys sys 5 6"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("final %q, want %q", got, want)
	}
}

// TestGridProfile: the grid profile keeps exactly the verified grid
// selection (the seed's log) and drops sources, manuals, other
// architectures, compilers and games.
func TestGridProfile(t *testing.T) {
	entries, err := ParseLog(bytes.NewReader(realLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !ProfileGrid.Keep(e.Path) {
			t.Errorf("the grid profile drops %s, part of the verified selection", e.Path)
		}
	}
	for _, p := range []string{"sys/src", "sys/src/cmd/rc/exec.c", "sys/man/1/rc", "sys/doc/9.ms", "mips/bin/rc", "amd64",
		"386/bin/8c", "386/bin/8l", "386/bin/games/sokoban", "386/lib/libc.a", "sys/include/u.h", "lib/font/bit/lucida/unicode.9.font",
		"acme/bin/386/win", "dist/replica/plan9.log", "usr/bootes"} {
		if ProfileGrid.Keep(p) {
			t.Errorf("the grid profile keeps %s", p)
		}
	}
	for _, p := range []string{"sys", "sys/lib", "lib/font/bit", "386", "usr"} {
		if !ProfileGrid.Keep(p) {
			t.Errorf("the grid profile drops the directory %s above what it keeps", p)
		}
	}
	if got := ProfileGrid.Filter(entries); len(got) != len(entries) {
		t.Errorf("Filter kept %d of %d", len(got), len(entries))
	}
	for _, p := range []string{"sys/src/cmd/rc/exec.c", "386/bin/8c", "sys/man/1/rc", "acme/bin/386/win"} {
		if !ProfileFull.Keep(p) {
			t.Errorf("the full profile drops %s", p)
		}
	}
	for _, p := range []string{"mips/bin/rc", "amd64", "acme/bin/arm/win"} {
		if ProfileFull.Keep(p) {
			t.Errorf("the full profile keeps %s", p)
		}
	}
	if _, err := ParseProfile("tiny"); err == nil {
		t.Error("unknown profile accepted")
	}
	if p, err := ParseProfile("full"); err != nil || p != ProfileFull {
		t.Errorf("ParseProfile(full) = %v, %v", p, err)
	}
}

// minimalDist is the smallest tree Check accepts.
func minimalDist() fstest.MapFS {
	m := fstest.MapFS{}
	for _, r := range requirements() {
		for _, p := range r.paths {
			m[p] = &fstest.MapFile{Data: []byte("x"), Mode: 0o775}
		}
	}
	m[LogPath] = &fstest.MapFile{Data: []byte("1 1 a 386 - 20000000775 sys sys 1 0\n1 2 a 386/bin - 20000000775 sys sys 1 0\n1 3 a 386/bin/rc - 775 sys sys 1 1\n1 4 a sys/src/x.c - 664 sys sys 1 1\n")}
	return m
}

func TestCheck(t *testing.T) {
	m := minimalDist()
	d, err := Check(m, "cd")
	if err != nil {
		t.Fatal(err)
	}
	if d.Kernel != "386/9pccpuf" || len(d.Log) != 4 {
		t.Errorf("kernel %s, %d entries", d.Kernel, len(d.Log))
	}
	delete(m, "386/9pccpuf")
	if d, err := Check(m, "cd"); err != nil || d.Kernel != "386/9pccpu" {
		t.Errorf("with only 9pccpu: %v, %v", d, err)
	}
	var pd plan9.Dir
	d.Meta("386/bin/rc", &pd)
	if pd.Uid != "sys" || pd.Mode != 0o775 || pd.Mtime != 1 {
		t.Errorf("Meta = %v", pd)
	}

	for _, tc := range []struct {
		omit []string
		want []string
	}{
		{[]string{"386/9pccpu", "386/9pccpuf"}, []string{"a cpu kernel (386/9pccpuf or 386/9pccpu)"}},
		{[]string{LogPath}, []string{"the replica log (dist/replica/plan9.log)"}},
		{[]string{"386/9load", "386/bin/venti/fmtisect"}, []string{"the boot loader (386/9load)", "venti's programs (386/bin/venti/fmtisect)"}},
	} {
		m := minimalDist()
		for _, p := range tc.omit {
			delete(m, p)
		}
		_, err := Check(m, "plan9.iso")
		if err == nil {
			t.Errorf("without %v: accepted", tc.omit)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) || !strings.Contains(err.Error(), "plan9.iso") {
				t.Errorf("without %v: %v, want it to name %q", tc.omit, err, w)
			}
		}
	}

	// A log naming a file of the grid selection that the tree lacks.
	m = minimalDist()
	m[LogPath] = &fstest.MapFile{Data: []byte("1 1 a 386/bin/cat - 775 sys sys 1 1\n1 2 a sys/src/gone.c - 664 sys sys 1 1\n")}
	if _, err := Check(m, "cd"); err == nil || !strings.Contains(err.Error(), "386/bin/cat") || strings.Contains(err.Error(), "gone.c") {
		t.Errorf("log naming a missing file: %v", err)
	}
	m = minimalDist()
	m[LogPath] = &fstest.MapFile{Data: []byte("garbage\n")}
	if _, err := Check(m, "cd"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("garbage log: %v", err)
	}
	m[LogPath] = &fstest.MapFile{Data: nil}
	if _, err := Check(m, "cd"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty log: %v", err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Open(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing source opened")
	}
	bad := filepath.Join(dir, "bad.iso")
	os.WriteFile(bad, []byte("not an iso"), 0o644)
	if _, _, err := Open(bad); err == nil || !strings.Contains(err.Error(), "not an ISO 9660 image") || !strings.Contains(err.Error(), "Plan 9 CD image") {
		t.Errorf("Open(garbage) = %v", err)
	}
	fsys, closeFS, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFS()
	if _, err := Check(fsys, dir); err == nil || !strings.Contains(err.Error(), "the boot loader") {
		t.Errorf("Check(empty dir) = %v", err)
	}
}

// FuzzParseLog: no bytes make the parser panic, and what parses is
// written back to a log that parses to the same entries.
func FuzzParseLog(f *testing.F) {
	b := realLog(f)
	f.Add(b[:2000])
	f.Add([]byte("1 2 m 'usr/glenda/it''s a file' 'x y' 644 glenda 'a b' 3 4\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		entries, err := ParseLog(bytes.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteLog(&out, entries); err != nil {
			t.Fatal(err)
		}
		again, err := ParseLog(&out)
		if err != nil {
			t.Fatalf("written log does not parse: %v\n%s", err, out.String())
		}
		if len(again) != len(entries) {
			t.Fatalf("%d entries, then %d", len(entries), len(again))
		}
		for i := range again {
			if again[i] != entries[i] {
				t.Fatalf("entry %d: %+v, then %+v", i, entries[i], again[i])
			}
		}
		Final(entries)
		ProfileGrid.Filter(entries)
	})
}

func TestBootEnd(t *testing.T) {
	re := bootEnd("installer")
	for _, tc := range []struct {
		out  string
		want int // the group that matches; 0 for none
	}{
		{"init: starting /bin/rc\r\ninstaller# ", 1},
		{"trying sdC0....found 9pccpuf\r\n.premature EOF\r\nBoot from: ", 2},
		{"version...\r\nboot: settime mount: '/tmp' file does not exist\r\n", 3},
		{"panic: fault\r\n", 3},
		{"/boot/usbd: /dev/usb: no hubs\r\n", 0},
		{"x reboot: later\r\n", 0},
		{"boot: can't open /srv/usb: '/srv/usb' file does not exist\r\n", -1},
		{"installer# ls\r\n", 0},
	} {
		m := re.FindStringSubmatch(tc.out)
		got := 0
		for i := 1; i <= 3 && m != nil; i++ {
			if m[i] != "" {
				got = i
			}
		}
		if tc.want < 0 { // matched, then passed over as harmless
			if got != 3 || !harmlessBootLine(m[3]) {
				t.Errorf("%q: group %d, harmless %v; want group 3, harmless", tc.out, got, m != nil && harmlessBootLine(m[3]))
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%q: group %d, want %d", tc.out, got, tc.want)
		}
	}
	if _, err := StartInstaller(t.Context(), &Distribution{}, InstallerOptions{}); err == nil {
		t.Error("an installer without a scratch directory started")
	}
}
