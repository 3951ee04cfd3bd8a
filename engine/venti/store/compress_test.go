package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/whack"
)

// arenaVersionOf reads the format version in the header of arena file path.
func arenaVersionOf(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeArenaHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h.version
}

// recordAt returns the decoded header and payload of the record at off in
// arena file path.
func recordAt(t *testing.T, path string, magic uint32, off int64) (recHeader, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeRecHeader(b[off:], magic)
	if err != nil {
		t.Fatal(err)
	}
	return h, b[off+recHeaderSize : off+recHeaderSize+int64(h.size)]
}

func TestCompressedRecords(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 40) // odd blocks compress, even ones are random
	var logical int64
	for _, w := range ws {
		logical += int64(len(w.d))
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i, w := range ws[:4] {
		path, off := recordOffset(t, st, w)
		h, p := recordAt(t, path, st.cur.magic, off)
		if compressed := h.flags == flagS2; compressed != (i%2 == 1) || (compressed && len(p) >= len(w.d)/2) {
			t.Fatalf("block %d (%d bytes): record flags %d, payload %d bytes; want odd blocks compressed to under half", i, len(w.d), h.flags, len(p))
		}
	}
	s := st.Stats()
	if s.StoredBytes != logical || s.LogBytes >= logical*3/4 {
		t.Fatalf("stats: %d block bytes (want %d), %d log bytes (want well under %d)", s.StoredBytes, logical, s.LogBytes, logical)
	}
	readAll(t, st, ws)
	if arenaVersionOf(t, filepath.Join(dir, "arena.000000")) != arenaVersion {
		t.Fatal("new arena does not carry the current format version")
	}
	st.Close()
	if s2 := (func() Stats { st := openT(t, dir); defer st.Close(); return st.Stats() })(); s2.StoredBytes != logical {
		t.Fatalf("after reopening: %d block bytes, want %d", s2.StoredBytes, logical)
	}
	rep := checkClean(t, dir)
	if rep.Records != 40 || rep.Compressed != 20 || rep.Bytes != logical || rep.StoredBytes >= logical*3/4 {
		t.Fatalf("check: %d records, %d compressed, %d block bytes, %d stored; want 40, 20, %d, well under that", rep.Records, rep.Compressed, rep.Bytes, rep.StoredBytes, logical)
	}

	// Without the index, the scan rebuilds it with the blocks' sizes.
	if err := os.Remove(filepath.Join(dir, indexName)); err != nil {
		t.Fatal(err)
	}
	for _, verify := range []bool{true, false} {
		st = openT(t, dir, WithReadVerify(verify))
		if s := st.Stats(); s.StoredBytes != logical {
			t.Fatalf("rebuilt index: %d block bytes, want %d", s.StoredBytes, logical)
		}
		readAll(t, st, ws)
		// Rewriting is pure dedup.
		writeN(t, st, 0, 40)
		if st.Stats().Blocks != 40 {
			t.Fatalf("rewrite stored new records: %d blocks", st.Stats().Blocks)
		}
		st.Close()
	}
	checkClean(t, dir)
}

// TestOldFormatStore opens a store written by gridlord before blocks were
// compressed (testdata/oldstore: arena format 1, every record raw, made by
// "venti serve" and "venti write" of that version; the scores file lists
// its blocks): it reads unchanged, with its index and with the index
// rebuilt, and takes compressed records after moving its arena to format 2 (S2).
func TestOldFormatStore(t *testing.T) {
	src := filepath.Join("testdata", "oldstore")
	type old struct {
		s    venti.Score
		data []byte // nil: unknown bytes (random), checked by score only
	}
	var olds []old
	f, err := os.Open(filepath.Join(src, "scores"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, score, _ := strings.Cut(sc.Text(), " ")
		s, err := venti.ParseScore(score)
		if err != nil {
			t.Fatal(err)
		}
		o := old{s: s}
		if n, err := strconv.Atoi(name); err == nil {
			// Written as: yes "old format block N, compressible text" | head -c N*700
			line := fmt.Sprintf("old format block %d, compressible text\n", n)
			o.data = bytes.Repeat([]byte(line), n*700/len(line)+1)[:n*700]
		}
		olds = append(olds, o)
	}
	f.Close()
	if len(olds) != 13 {
		t.Fatalf("%d blocks in the fixture's list", len(olds))
	}
	readOld := func(st *Store) {
		t.Helper()
		for _, o := range olds {
			got, err := st.Read(ctx, o.s, venti.DataType, venti.MaxBlock)
			if err != nil {
				t.Fatalf("old block %v: %v", o.s, err)
			}
			if o.data != nil && !bytes.Equal(got, o.data) || venti.Sum(got) != o.s {
				t.Fatalf("old block %v read back wrong", o.s)
			}
		}
	}
	copyDir := func() string {
		dir := t.TempDir()
		for _, n := range []string{"arena.000000", indexName} {
			b, err := os.ReadFile(filepath.Join(src, n))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	arena0 := func(dir string) string { return filepath.Join(dir, "arena.000000") }
	if v := arenaVersionOf(t, arena0(src)); v != 1 {
		t.Fatalf("fixture arena has version %d, want 1", v)
	}

	dir := copyDir()
	rep := checkClean(t, dir)
	if rep.Records != 13 || rep.Compressed != 0 || len(rep.Notes) != 0 {
		t.Fatalf("check of the old store: %d records, %d compressed, notes %q", rep.Records, rep.Compressed, rep.Notes)
	}
	st := openT(t, dir)
	if r := st.Recovery(); !r.IndexLoaded || r.ScannedBlocks != 0 {
		t.Fatalf("old index not used: %+v", r)
	}
	readOld(st)
	// Reading and re-writing old blocks leaves the arena as it was.
	for _, o := range olds {
		if o.data != nil {
			if _, err := st.Write(ctx, venti.DataType, o.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if v := arenaVersionOf(t, arena0(dir)); v != 1 {
		t.Fatalf("arena moved to version %d without a compressed record", v)
	}
	ws := writeN(t, st, 0, 10)
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if v := arenaVersionOf(t, arena0(dir)); v != versionFor(flagS2) {
		t.Fatalf("arena has version %d after an S2 record went in, want %d", v, versionFor(flagS2))
	}
	st.Close()
	st = openT(t, dir)
	readOld(st)
	readAll(t, st, ws)
	st.Close()
	if rep := checkClean(t, dir); rep.Records != 23 || rep.Compressed != 5 {
		t.Fatalf("check: %d records, %d compressed; want 23, 5", rep.Records, rep.Compressed)
	}

	// The old log alone rebuilds the index.
	dir = copyDir()
	if err := os.Remove(filepath.Join(dir, indexName)); err != nil {
		t.Fatal(err)
	}
	st = openT(t, dir)
	if r := st.Recovery(); r.ScannedBlocks != 13 || r.Corrupt != 0 || r.TornBytes != 0 {
		t.Fatalf("rebuild from the old log: %+v", r)
	}
	readOld(st)
}

// TestCorruptCompressed damages compressed records in two ways: bytes on
// disk (the data checksum catches it) and a payload whose checksum matches
// but which decodes to the wrong block (the block checksum and the score
// catch it, whether or not reads verify SHA-1). Either way the block is
// reported by score, never served, Check names it, and writing it again
// stores a good copy.
func TestCorruptCompressed(t *testing.T) {
	for _, how := range []string{"disk-byte", "bad-decode", "torn-prefix"} {
		for _, verify := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/verify=%v", how, verify), func(t *testing.T) {
				dir := t.TempDir()
				st := openT(t, dir)
				ws := writeN(t, st, 0, 20)
				victim := ws[7]
				path, off := recordOffset(t, st, victim)
				magic := st.cur.magic
				st.Close()
				h, p := recordAt(t, path, magic, off)
				if h.flags != flagS2 {
					t.Fatalf("victim stored with flags %d, want compressed", h.flags)
				}
				switch how {
				case "disk-byte":
					flipByte(t, path, off+recHeaderSize+int64(len(p))/2)
				case "bad-decode", "torn-prefix":
					// A well-formed record whose payload lies: re-encode the
					// header's checksums over the altered payload.
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					rec := b[off : off+recHeaderSize+int64(len(p))]
					pl := rec[recHeaderSize:]
					if how == "bad-decode" {
						binary.BigEndian.PutUint32(pl[2:], binary.BigEndian.Uint32(pl[2:])^1) // block CRC
					} else {
						binary.BigEndian.PutUint16(pl[0:], 0) // block size
					}
					copy(rec, encodeRecord(make([]byte, len(rec)), magic, h.typ, h.score, h.flags, bytes.Clone(pl)))
					if err := os.WriteFile(path, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}

				st = checkDamaged(t, dir, victim, verify)
				others := append(append([]written(nil), ws[:7]...), ws[8:]...)
				readAll(t, st, others)
				if how == "bad-decode" {
					// The record checks out on disk, so a dedup check finds
					// it: the block was stored once and is only unreadable.
					return
				}
				if _, err := st.Write(ctx, victim.t, victim.d); err != nil {
					t.Fatal(err)
				}
				readAll(t, st, ws)
			})
		}
	}
}

// TestTornCompressed appends part of a compressed record, as a crash in
// the middle of a write leaves it: the next open truncates it and keeps
// everything before it.
func TestTornCompressed(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 30)
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	d := block(1001)
	flags, payload := compressBlock(make([]byte, compBufSize), d)
	if flags != flagS2 {
		t.Fatal("test block not compressed")
	}
	wb := make([]byte, len(d))
	wpayload, ok := whackPayload(make([]byte, compBufSize), d, wb[:max(whack.Encode(wb, d), 0)])
	if !ok {
		t.Fatal("test block not whack-compressed")
	}
	for _, enc := range []struct {
		name    string
		flags   byte
		payload []byte
	}{{"s2", flags, payload}, {"whack", flagWhack, wpayload}} {
		rec := encodeRecord(make([]byte, recHeaderSize+len(enc.payload)), st.cur.magic, venti.DataType, venti.Sum(d), enc.flags, enc.payload)
		for _, cut := range []int{recHeaderSize + 2, recHeaderSize + compPrefix, len(rec) - 1} {
			t.Run(enc.name+"/"+strconv.Itoa(cut), func(t *testing.T) {
				img := crashImage(t, dir)
				maxTorn := tearAppend(t, img, st, rec[:cut])
				st2 := openT(t, img)
				if r := st2.Recovery(); r.TornBytes < int64(cut) || r.TornBytes > maxTorn || r.ScannedBlocks != 30 || r.Corrupt != 0 {
					t.Fatalf("recovery %+v: want %d..%d torn bytes and 30 good blocks", r, cut, maxTorn)
				}
				if _, err := st2.Read(ctx, venti.Sum(d), venti.DataType, venti.MaxBlock); !errors.Is(err, venti.ErrNotFound) {
					t.Fatalf("torn block: %v, want not found", err)
				}
				readAll(t, st2, ws)
				st2.Close()
				checkClean(t, img)
			})
		}
	}
}

// checkDamaged checks that the store in dir reports the damaged record of
// victim, by score, in its check and on reads (with verify for SHA-1
// verification of reads), and returns the store opened so.
func checkDamaged(t *testing.T, dir string, victim written, verify bool) *Store {
	t.Helper()
	rep, err := Check(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if text := fmt.Sprint(rep.Problems); rep.OK() || !strings.Contains(text, victim.s.String()) {
		t.Fatalf("check report %q does not name score %v", text, victim.s)
	}
	st := openT(t, dir, WithReadVerify(verify))
	got, err := st.Read(ctx, victim.s, victim.t, venti.MaxBlock)
	if !errors.Is(err, venti.ErrCorrupt) || !strings.Contains(err.Error(), victim.s.String()) || got != nil {
		t.Fatalf("read of damaged block: %d bytes, %v; want ErrCorrupt naming %v", len(got), err, victim.s)
	}
	return st
}
