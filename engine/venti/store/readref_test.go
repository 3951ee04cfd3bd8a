package store

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"gridlord/engine/venti"
)

var _ venti.ReaderRef = (*Store)(nil)

// TestReadRef checks ReadRef: raw blocks in the file come from the
// mapping (a release), compressed ones and those still in the append
// buffer are read into the buffer (no release), damage and a file cut
// short are reported as ReadInto reports them, and blocks handed out
// stay readable after Close until released.
func TestReadRef(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 40)
	buf := make([]byte, venti.MaxBlock+64)
	// Not yet in the file: read from the append buffer.
	if d, rel, err := st.ReadRef(ctx, ws[0].s, ws[0].t, venti.MaxBlock, buf); err != nil || rel != nil || !bytes.Equal(d, ws[0].d) {
		t.Fatalf("unflushed block: %v, release %v, equal %v", err, rel != nil, bytes.Equal(d, ws[0].d))
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var held [][]byte
	var releases []func()
	for i, w := range ws {
		d, rel, err := st.ReadRef(ctx, w.s, w.t, venti.MaxBlock, buf)
		if err != nil || !bytes.Equal(d, w.d) {
			t.Fatalf("block %d: %v, equal %v", i, err, bytes.Equal(d, w.d))
		}
		if raw := i%2 == 0; raw != (rel != nil) {
			t.Fatalf("block %d (raw %v): release %v", i, raw, rel != nil)
		}
		if rel != nil {
			held, releases = append(held, d), append(releases, rel)
		}
	}
	if _, _, err := st.ReadRef(ctx, ws[2].s, ws[2].t, len(ws[2].d)-1, buf); err == nil {
		t.Fatal("ReadRef of a block larger than max: no error")
	}

	path, off := recordOffset(t, st, ws[4])
	flipByte(t, path, off+recHeaderSize+5)
	if _, rel, err := st.ReadRef(ctx, ws[4].s, ws[4].t, venti.MaxBlock, buf); !errors.Is(err, venti.ErrCorrupt) || rel != nil {
		t.Fatalf("damaged block: %v, release %v; want ErrCorrupt", err, rel != nil)
	}
	_, cut := recordOffset(t, st, ws[30])
	if err := os.Truncate(path, cut); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws[30:] {
		_, rel, err := st.ReadRef(ctx, w.s, w.t, venti.MaxBlock, buf)
		if rel != nil || !errors.Is(err, venti.ErrCorrupt) || !strings.Contains(err.Error(), "past the end of the file") {
			t.Fatalf("block cut off: %v, release %v; want ErrCorrupt past the end of the file", err, rel != nil)
		}
	}

	// The blocks handed out before stay mapped across Close.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for i, d := range held[:2] { // ws[0], ws[2]: before the cut and the damage
		if !bytes.Equal(d, ws[2*i].d) {
			t.Fatalf("held block %d changed after Close", 2*i)
		}
	}
	if _, rel, err := st.ReadRef(ctx, ws[0].s, ws[0].t, venti.MaxBlock, buf); !errors.Is(err, ErrClosed) || rel != nil {
		t.Fatalf("ReadRef after Close: %v, release %v; want ErrClosed", err, rel != nil)
	}
	if st.mapRefs.Load() != int64(len(releases)) {
		t.Fatalf("%d mapping references after Close, want %d", st.mapRefs.Load(), len(releases))
	}
	for _, rel := range releases {
		rel()
	}
	if n := st.mapRefs.Load(); n != 0 {
		t.Fatalf("%d mapping references after every release, want 0", n)
	}
}

var _ venti.ReaderNoWait = (*Store)(nil)

// TestReadRefNoWait checks ReadRefNoWait: raw blocks in the file, in the
// page cache, come from the mapping, checked; blocks still in the append
// buffer, compressed, damaged, missing or larger than max are left to
// ReadRef, and so is everything when every read's SHA-1 is verified (the
// default).
func TestReadRefNoWait(t *testing.T) {
	st := openT(t, t.TempDir(), WithReadVerify(false))
	ws := writeN(t, st, 0, 40)
	if _, _, ok := st.ReadRefNoWait(ws[0].s, ws[0].t, venti.MaxBlock); ok {
		t.Fatal("a block still in the append buffer was served")
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i, w := range ws {
		d, rel, ok := st.ReadRefNoWait(w.s, w.t, venti.MaxBlock)
		if raw := i%2 == 0; ok != raw {
			t.Fatalf("block %d (raw %v): served %v", i, raw, ok)
		}
		if !ok {
			if d != nil || rel != nil {
				t.Fatalf("block %d: not served, but data or a release", i)
			}
			continue
		}
		if !bytes.Equal(d, w.d) {
			t.Fatalf("block %d: wrong data", i)
		}
		rel()
	}
	if _, _, ok := st.ReadRefNoWait(ws[2].s, ws[2].t, len(ws[2].d)-1); ok {
		t.Fatal("a block larger than max was served")
	}
	if _, _, ok := st.ReadRefNoWait(venti.Sum([]byte("never written")), venti.DataType, venti.MaxBlock); ok {
		t.Fatal("a missing block was served")
	}
	if _, _, ok := st.ReadRefNoWait(venti.ZeroScore, venti.DataType, venti.MaxBlock); ok {
		t.Fatal("the zero score was served")
	}
	path, off := recordOffset(t, st, ws[4])
	flipByte(t, path, off+recHeaderSize+5)
	if _, _, ok := st.ReadRefNoWait(ws[4].s, ws[4].t, venti.MaxBlock); ok {
		t.Fatal("a damaged block was served")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	vst := openT(t, t.TempDir())
	vws := writeN(t, vst, 0, 4)
	if err := vst.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := vst.ReadRefNoWait(vws[0].s, vws[0].t, venti.MaxBlock); ok {
		t.Fatal("served with verified reads on")
	}
}
