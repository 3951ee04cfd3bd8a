package venti_test

import (
	"bytes"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Test(t, func(*testing.T) venti.Store { return venti.NewMemStore() })
}

func TestZeroScore(t *testing.T) {
	if venti.Sum(nil) != venti.ZeroScore {
		t.Fatalf("ZeroScore %v is not SHA-1 of nothing %v", venti.ZeroScore, venti.Sum(nil))
	}
	s, err := venti.ParseScore("DA39A3EE5E6B4B0D3255BFEF95601890AFD80709")
	if err != nil || s != venti.ZeroScore {
		t.Fatalf("ParseScore upper case: %v %v", s, err)
	}
	for _, bad := range []string{"", "da39", "zz39a3ee5e6b4b0d3255bfef95601890afd80709"} {
		if _, err := venti.ParseScore(bad); err == nil {
			t.Errorf("ParseScore(%q) succeeded", bad)
		}
	}
}

func TestTypeConversion(t *testing.T) {
	// Pairs from libventi's dtype.c: wire -> internal.
	for wire, internal := range map[venti.Type]int{1: 16, 2: 8, 13: 0, 3: 9, 9: 15} {
		if got := wire.InternalType(); got != internal {
			t.Errorf("%v.InternalType() = %d, want %d", wire, got, internal)
		}
	}
	// internal -> wire (vttodisktype): data pointers and dir pointers share wire types.
	for internal, wire := range map[int]venti.Type{0: 13, 1: 3, 7: 9, 8: 2, 9: 3, 15: 9, 16: 1} {
		got, err := venti.TypeFromInternal(internal)
		if err != nil || got != wire {
			t.Errorf("TypeFromInternal(%d) = %v, %v; want %v", internal, got, err, wire)
		}
	}
	if _, err := venti.TypeFromInternal(17); err == nil {
		t.Error("TypeFromInternal(17) succeeded")
	}
}

func TestZeroTruncateExtend(t *testing.T) {
	z := venti.ZeroScore
	one := venti.Sum([]byte("1"))
	ptr := append(append(append([]byte{}, one[:]...), z[:]...), z[:]...)
	cases := []struct {
		name string
		t    venti.Type
		in   []byte
		want []byte
		size int
		ext  []byte
	}{
		{"data", venti.DataType, []byte{1, 0, 2, 0, 0}, []byte{1, 0, 2}, 6, []byte{1, 0, 2, 0, 0, 0}},
		{"allzero", venti.DataType, make([]byte, 8), []byte{}, 4, make([]byte, 4)},
		{"dir", venti.DirType, []byte{5, 0}, []byte{5}, 2, []byte{5, 0}},
		{"pointer", venti.PointerType0, append(ptr, 0, 0), one[:], 62, append(ptr, 0, 0)},
		{"root", venti.RootType, []byte{1, 0, 0}, []byte{1, 0, 0}, 3, []byte{1, 0, 0}},
	}
	for _, c := range cases {
		got := venti.ZeroTruncate(c.t, c.in)
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: ZeroTruncate = %x, want %x", c.name, got, c.want)
		}
		if ext := venti.ZeroExtend(c.t, got, c.size); !bytes.Equal(ext, c.ext) {
			t.Errorf("%s: ZeroExtend = %x, want %x", c.name, ext, c.ext)
		}
	}
}
