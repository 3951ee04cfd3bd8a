package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/whack"
)

// whackWrite stores blocks from, from+1, ... with WriteWhacked, giving
// each its whack encoding (nil for the blocks whack cannot shrink).
func whackWrite(t *testing.T, st *Store, from, n int) (ws []written, enc [][]byte) {
	t.Helper()
	for i := from; i < from+n; i++ {
		d := block(i)
		buf := make([]byte, len(d))
		var w []byte
		if m := whack.Encode(buf, d); m > 0 {
			w = buf[:m]
		}
		s, err := st.WriteWhacked(ctx, venti.DataType, d, w)
		if err != nil {
			t.Fatalf("write block %d: %v", i, err)
		}
		ws = append(ws, written{s: s, t: venti.DataType, d: d})
		enc = append(enc, w)
	}
	return ws, enc
}

// TestWhackRecords: blocks written with their whack encoding are stored
// as whack records (arena format 3) and read back, through the index and
// after the log is scanned again; Whacked gives back exactly the bytes
// written, and says no for blocks stored in another encoding.
func TestWhackRecords(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	plain := writeN(t, st, 100, 4)
	ws, enc := whackWrite(t, st, 0, 20)
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if v := arenaVersionOf(t, st.cur.path); v != 3 {
		t.Fatalf("arena format %d after whack records, want 3", v)
	}
	nwhack := 0
	for i, w := range ws {
		path, off := recordOffset(t, st, w)
		h, p := recordAt(t, path, st.cur.magic, off)
		switch {
		case enc[i] == nil && h.flags != flagRaw:
			t.Fatalf("block %d: incompressible, stored with flags %d", i, h.flags)
		case enc[i] != nil && (h.flags != flagWhack || !bytes.Equal(p[compPrefix:], enc[i])):
			t.Fatalf("block %d: stored with flags %d, want its whack bytes", i, h.flags)
		}
		got, ok, err := st.Whacked(ctx, w.s, w.t)
		if err != nil || ok != (enc[i] != nil) || !bytes.Equal(got, enc[i]) {
			t.Fatalf("Whacked(block %d) = %d bytes, %v, %v; want its %d whack bytes", i, len(got), ok, err, len(enc[i]))
		}
		if ok {
			nwhack++
		}
	}
	if nwhack < 5 {
		t.Fatalf("only %d of %d blocks whack-compressed: the test data is wrong", nwhack, len(ws))
	}
	if _, ok, err := st.Whacked(ctx, plain[1].s, plain[1].t); ok || err != nil {
		t.Fatalf("Whacked of an S2 block: %v, %v", ok, err)
	}
	if _, _, err := st.Whacked(ctx, venti.Sum([]byte("absent")), venti.DataType); !errors.Is(err, venti.ErrNotFound) {
		t.Fatalf("Whacked of a missing block: %v", err)
	}
	// A block already stored is not written again in another encoding.
	buf := make([]byte, len(plain[1].d))
	if n := whack.Encode(buf, plain[1].d); n > 0 {
		if _, err := st.WriteWhacked(ctx, plain[1].t, plain[1].d, buf[:n]); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := st.Whacked(ctx, plain[1].s, plain[1].t); ok {
			t.Fatal("a second write of a stored block changed its encoding")
		}
	}
	readAll(t, st, append(ws, plain...))
	st.Close()
	checkClean(t, dir)
	// The index rebuilt from the log.
	if err := os.Remove(filepath.Join(dir, indexName)); err != nil {
		t.Fatal(err)
	}
	st = openT(t, dir)
	readAll(t, st, append(ws, plain...))
}

// TestCorruptWhack: a damaged whack record is reported with its score by
// check and by reads (with and without SHA-1 verification), never served.
func TestCorruptWhack(t *testing.T) {
	for _, how := range []string{"disk-byte", "bad-decode"} {
		for _, verify := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/verify=%v", how, verify), func(t *testing.T) {
				dir := t.TempDir()
				st := openT(t, dir)
				ws, enc := whackWrite(t, st, 0, 12)
				vi := -1
				for i := range ws {
					if enc[i] != nil && vi < 0 {
						vi = i
					}
				}
				victim := ws[vi]
				path, off := recordOffset(t, st, victim)
				magic := st.cur.magic
				st.Close()
				h, p := recordAt(t, path, magic, off)
				if how == "disk-byte" {
					flipByte(t, path, off+recHeaderSize+int64(len(p))/2)
				} else {
					// A record that checks out on disk but whose whack
					// data decodes to other bytes.
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					rec := b[off : off+recHeaderSize+int64(len(p))]
					pl := bytes.Clone(rec[recHeaderSize:])
					pl[len(pl)-1] ^= 0x40
					copy(rec, encodeRecord(make([]byte, len(rec)), magic, h.typ, h.score, h.flags, pl))
					if err := os.WriteFile(path, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				st = checkDamaged(t, dir, victim, verify)
				// Whacked checks the bytes on disk, not what they decode to
				// (its users check what they rebuild).
				if w, _, err := st.Whacked(ctx, victim.s, victim.t); how == "disk-byte" && (w != nil || !errors.Is(err, venti.ErrCorrupt)) {
					t.Fatalf("Whacked of a damaged record: %d bytes, %v", len(w), err)
				}
				readAll(t, st, append(append([]written(nil), ws[:vi]...), ws[vi+1:]...))
			})
		}
	}
}

// TestWhackRecordsIterate: the log iterator mirrors use gives whack
// records decoded, in write order.
func TestWhackRecordsIterate(t *testing.T) {
	st := openT(t, t.TempDir(), WithArenaSize(minArena))
	ws, _ := whackWrite(t, st, 0, 60)
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	it, err := st.Records(StartPos())
	if err != nil {
		t.Fatal(err)
	}
	sameBlocks(t, drain(t, it), ws)
}
