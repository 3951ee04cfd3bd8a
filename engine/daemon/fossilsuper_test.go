package daemon

import (
	"strings"
	"testing"
)

// The real seed's fossil1 (9legacy), read as archiveFossil reads it: its
// header, then its super block while the catch-up archive fossil starts at
// boot is being written, and after it is done.
const (
	realHeaderXD = `0000000  37 76 ae 89 00 01 20 00 00 00 00 12 00 00 00 13
0000010  00 00 00 69 00 00 c3 50 00 00 00 00 00 00 00 00
`
	realSuperArchivingXD = `0000000  23 40 a3 b1 00 01 00 00 00 05 00 00 00 07 00 00
0000010  00 00 00 00 04 67 00 00 00 77 ff ff ff ff 00 00
0000020  00 6e 15 e8 25 44 20 61 66 18 8a a1 c9 5d 6d 54
0000030  f9 f4 58 9f 05 2a 76 66 73 00 00 00 00 00 00 00
`
	realSuperIdleXD = `0000000  23 40 a3 b1 00 01 00 00 00 05 00 00 00 07 00 00
0000010  00 00 00 00 04 67 00 00 00 77 ff ff ff ff ff ff
0000020  ff ff f4 7d 14 77 20 4a 1a 85 fd 6d 79 48 2d a1
0000030  1e 55 3d 7a ad 70 76 66 73 00 00 00 00 00 00 00
`
)

func TestFossilSuperOfRealSeed(t *testing.T) {
	h, err := parseXD(realHeaderXD)
	if err != nil {
		t.Fatal(err)
	}
	off, err := decodeFossilHeader(h)
	if err != nil || off != 18*8192 {
		t.Fatalf("super block at %d, %v; want %d", off, err, 18*8192)
	}
	b, err := parseXD(realSuperArchivingXD)
	if err != nil {
		t.Fatal(err)
	}
	s, err := decodeFossilSuper(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.epochHigh != 7 || s.next != fossilNilBlock || s.current != 0x6e || !s.archiving() ||
		s.last != "vac:15e82544206166188aa1c95d6d54f9f4589f052a" {
		t.Fatalf("while archiving: %+v", s)
	}
	b, _ = parseXD(realSuperIdleXD)
	if s, err = decodeFossilSuper(b); err != nil || s.archiving() || s.last != "vac:f47d1477204a1a85fd6d79482da11e553d7aad70" {
		t.Fatalf("idle: %+v, %v", s, err)
	}
}

func TestParseXD(t *testing.T) {
	// Console noise between the lines is skipped; a "*" ends the bytes.
	b, err := parseXD("fsys: dialing venti\r\n" + realHeaderXD + "*\n0000200\n")
	if err != nil || len(b) != 32 {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	for _, bad := range []string{
		"0000010  00 01\n",              // does not start at 0
		"0000000  00 01\n0000020  00\n", // a gap
		"0000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f\n0000000  00\n", // goes back
	} {
		if _, err := parseXD(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := decodeFossilHeader(make([]byte, 32)); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Errorf("zero header: %v", err)
	}
	if _, err := decodeFossilSuper(make([]byte, 10)); err == nil {
		t.Error("short super block accepted")
	}
}

// FuzzFossilSuper: the bytes come from a guest's console.
func FuzzFossilSuper(f *testing.F) {
	f.Add(realHeaderXD)
	f.Add(realSuperArchivingXD)
	f.Add("0000000  ff\n*\n")
	f.Fuzz(func(t *testing.T, out string) {
		b, err := parseXD(out)
		if err != nil {
			return
		}
		if len(b) > len(out) {
			t.Fatalf("%d bytes from %d characters", len(b), len(out))
		}
		decodeFossilHeader(b)
		decodeFossilSuper(b)
	})
}
