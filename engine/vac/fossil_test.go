package vac

import (
	"context"
	"encoding/binary"
	"io"
	"testing"

	"gridlord/engine/venti"
)

// packV9 encodes a fossil-style VacDir (version 9), as fossil's vdpack does.
func packV9(elem string, entry, gen, mentry, mgen uint32, qid uint64, mode uint32, qidSpace bool) []byte {
	b := binary.BigEndian.AppendUint32(nil, DirMagic)
	b = binary.BigEndian.AppendUint16(b, 9)
	b = appendString(b, elem)
	for _, v := range []uint32{entry, gen, mentry, mgen} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = binary.BigEndian.AppendUint64(b, qid)
	b = appendString(b, "adm")
	b = appendString(b, "sys")
	b = appendString(b, "adm")
	for _, v := range []uint32{1600000000, 1, 1600000000, 1600000000, mode} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	if qidSpace {
		b = append(b, optQidSpace, 0, 16)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, 100)
	}
	return b
}

// TestFossilArchive reads an archive laid out as fossil's archiver writes
// it: root name "fossil", one extra level of entries above the three top
// entries, meta blocks with magic 0x5656fc7a and VacDir version 9 with
// explicit generations.
func TestFossilArchive(t *testing.T) {
	ctx := context.Background()
	st := venti.NewMemStore()
	w := func(ty venti.Type, b []byte) venti.Score {
		s, err := st.Write(ctx, ty, venti.ZeroTruncate(ty, b))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	meta := func(entries ...[]byte) venti.Score {
		names := make([]string, len(entries))
		b, err := packMetaBlock(entries, names, 8160)
		if err != nil {
			t.Fatal(err)
		}
		binary.BigEndian.PutUint32(b, MetaMagicFossil)
		return w(venti.DataType, b)
	}
	ent := func(dir bool, size uint64, s venti.Score) Entry {
		return Entry{Gen: 7, PSize: 8160, DSize: 8160, Active: true, Dir: dir, Size: size, Score: s}
	}
	file := ent(false, 5, w(venti.DataType, []byte("hello")))
	src := ent(true, 40, w(venti.DirType, file.Pack(nil)))
	msrc := ent(false, 8160, meta(packV9("f", 0, 7, 0, 0, 2, 0o644, false)))
	super := ent(false, 8160, meta(packV9("root", 0, 7, 1, 7, 1, ModeDir|0o555, true)))
	three := ent(true, 120, w(venti.DirType, super.Pack(msrc.Pack(src.Pack(nil)))))
	d := w(venti.DirType, three.Pack(nil))
	rb, _ := Root{Name: "fossil", Type: "vac", Score: d, BlockSize: 8160}.Pack()
	a, err := Open(ctx, st, w(venti.RootType, rb))
	if err != nil {
		t.Fatal(err)
	}
	if r := a.Root().DirEntry(); r.Elem != "root" || !r.QidSpace || r.QidMax != 100 || r.Version != 9 {
		t.Errorf("root %+v", r)
	}
	r, err := a.OpenFile(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read f: %q, %v", b, err)
	}
	// A generation mismatch between VacDir and VtEntry is an error.
	src2 := ent(true, 40, w(venti.DirType, Entry{Gen: 8, PSize: 8160, DSize: 8160, Active: true, Size: 5, Score: file.Score}.Pack(nil)))
	three = ent(true, 120, w(venti.DirType, super.Pack(msrc.Pack(src2.Pack(nil)))))
	rb, _ = Root{Name: "fossil", Type: "vac", Score: w(venti.DirType, three.Pack(nil)), BlockSize: 8160}.Pack()
	a, err = Open(ctx, st, w(venti.RootType, rb))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Root().ReadDir(ctx); err == nil {
		t.Error("generation mismatch accepted")
	}
}
