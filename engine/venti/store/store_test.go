package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/storetest"
)

var ctx = context.Background()

func openT(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	st, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Test(t, func(t *testing.T) venti.Store { return openT(t, t.TempDir()) })
	t.Run("NoReadVerify", func(t *testing.T) {
		storetest.Test(t, func(t *testing.T) venti.Store { return openT(t, t.TempDir(), WithReadVerify(false)) })
	})
}

// block returns a distinct pseudo-random block of about 1..3 KiB: random
// bytes (stored raw) for even i, text the store compresses for odd i.
func block(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	b := make([]byte, 1024+r.IntN(2048))
	for j := range b {
		b[j] = byte(r.Uint32())
		if i%2 == 1 && r.IntN(16) != 0 {
			b[j] = "venti block "[j%12]
		}
	}
	return b
}

type written struct {
	s venti.Score
	t venti.Type
	d []byte
}

func writeN(t *testing.T, st venti.Store, from, n int) []written {
	t.Helper()
	var out []written
	for i := from; i < from+n; i++ {
		d := block(i)
		ty := venti.DataType
		if i%5 == 0 {
			ty = venti.DirType
		}
		s, err := st.Write(ctx, ty, d)
		if err != nil {
			t.Fatalf("write block %d: %v", i, err)
		}
		out = append(out, written{s, ty, d})
	}
	return out
}

func readAll(t *testing.T, st venti.Store, ws []written) {
	t.Helper()
	for i, w := range ws {
		got, err := st.Read(ctx, w.s, w.t, venti.MaxBlock)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if !bytes.Equal(got, w.d) {
			t.Fatalf("block %d %v: wrong bytes", i, w.s)
		}
	}
}

func checkClean(t *testing.T, dir string) *CheckReport {
	t.Helper()
	rep, err := Check(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("check: %v", p)
	}
	return rep
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 300)
	writeN(t, st, 0, 100) // duplicates
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := st.Write(ctx, venti.DataType, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v, want ErrClosed", err)
	}
	if _, err := st.Write(ctx, ws[0].t, ws[0].d); !errors.Is(err, ErrClosed) {
		t.Fatalf("duplicate write after close: %v, want ErrClosed", err)
	}
	if _, err := st.Read(ctx, ws[0].s, ws[0].t, venti.MaxBlock); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
	rep := checkClean(t, dir)
	if rep.Records != 300 || rep.IndexEntries != 300 || len(rep.Notes) != 0 {
		t.Fatalf("check after clean close: %d records, %d index entries, notes %q; want 300, 300, none", rep.Records, rep.IndexEntries, rep.Notes)
	}

	st = openT(t, dir)
	if r := st.Recovery(); !r.IndexLoaded || r.ScannedBlocks != 0 {
		t.Fatalf("reopen after clean close: %+v, want index loaded and nothing scanned", r)
	}
	readAll(t, st, ws)
	s := st.Stats()
	if s.Blocks != 300 || s.ClientWrites != 400 {
		t.Fatalf("stats %+v: want 300 blocks, 400 client writes", s)
	}
	if s.DedupRatio < 1.2 || s.DedupRatio > 1.5 {
		t.Fatalf("dedup ratio %.2f, want about 4/3", s.DedupRatio)
	}
	if s.RAMPerBlock != 16 {
		t.Fatalf("index RAM %.1f bytes/block after a load, want 16", s.RAMPerBlock)
	}
}

// TestCheckpointLeftovers: a temporary index file left by a crash during a
// checkpoint is removed by the next Open, which still loads the index; a
// clean Close leaves no temporary file.
func TestCheckpointLeftovers(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 50)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "."+indexName+".123.tmp")
	if err := os.WriteFile(stale, []byte("torn checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
	st = openT(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale checkpoint file after Open: %v", err)
	}
	if r := st.Recovery(); !r.IndexLoaded {
		t.Errorf("reopen: %+v, want index loaded", r)
	}
	readAll(t, st, ws)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left after Close", e.Name())
		}
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir)
	_, err := Open(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("store %s is in use by another gridlord (pid %d)", dir, os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("second open: %q, want it to say %q", err, want)
	}
	if _, err := Check(ctx, dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("check of an open store: %v, want ErrLocked", err)
	}
}

// crashImage copies a store directory while it is open, as a crash would
// leave it (minus unsynced page-cache data, which copying keeps).
func crashImage(t *testing.T, dir string) string {
	t.Helper()
	img := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == lockName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(img, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// tearAppend writes b at the end of the log of st (all of it written out)
// in arena.000000 of img, a crash image of st, as an append cut short by
// a crash leaves it. It returns the most torn bytes a recovery may report:
// from the log's end to the file's end (the zeros past b that pad a
// direct write are torn too when b's record is not complete; at least
// len(b) are).
func tearAppend(t *testing.T, img string, st *Store, b []byte) int64 {
	t.Helper()
	end := addrOffset(st.tail.Load())
	f, err := os.OpenFile(filepath.Join(img, "arena.000000"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, end); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size() - end
}

func TestIndexRebuild(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir, WithArenaSize(minArena*2))
	ws := writeN(t, st, 0, 200)
	st.Close()
	if err := os.Remove(filepath.Join(dir, indexName)); err != nil {
		t.Fatal(err)
	}
	rep := checkClean(t, dir)
	if rep.Arenas < 3 || len(rep.Notes) != 1 {
		t.Fatalf("check without index: %d arenas, notes %q; want several arenas and a note about the index", rep.Arenas, rep.Notes)
	}
	st = openT(t, dir)
	if r := st.Recovery(); r.IndexLoaded || r.ScannedBlocks != 200 {
		t.Fatalf("recovery %+v: want a full rebuild of 200 blocks", r)
	}
	if ram := st.Stats().RAMPerBlock; ram != 16 {
		t.Fatalf("index RAM after a rebuild: %.1f bytes/block, want 16", ram)
	}
	readAll(t, st, ws)
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, indexName)); err != nil {
		t.Fatalf("rebuilt index not written: %v", err)
	}
	checkClean(t, dir)

	// A damaged index file is rebuilt too.
	ipath := filepath.Join(dir, indexName)
	b, _ := os.ReadFile(ipath)
	b[len(b)-3] ^= 0x40
	os.WriteFile(ipath, b, 0o600)
	if rep, _ := Check(ctx, dir); rep.OK() {
		t.Fatal("check passed a damaged index file")
	}
	st = openT(t, dir)
	if r := st.Recovery(); r.IndexLoaded || r.IndexProblem == "" || r.ScannedBlocks != 200 {
		t.Fatalf("recovery with damaged index %+v: want rebuild", r)
	}
	readAll(t, st, ws)
}

func TestIndexStale(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir, WithArenaSize(minArena*2))
	ws := writeN(t, st, 0, 100)
	st.Close()
	old, err := os.ReadFile(filepath.Join(dir, indexName))
	if err != nil {
		t.Fatal(err)
	}
	st = openT(t, dir)
	ws = append(ws, writeN(t, st, 100, 150)...)
	st.Close()
	// Put the old index back: it is older than the log.
	if err := os.WriteFile(filepath.Join(dir, indexName), old, 0o600); err != nil {
		t.Fatal(err)
	}
	rep := checkClean(t, dir)
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "150 blocks") {
		t.Fatalf("check with stale index: notes %q, want 150 blocks after the checkpoint", rep.Notes)
	}
	st = openT(t, dir)
	if r := st.Recovery(); !r.IndexLoaded || r.ScannedBlocks != 150 {
		t.Fatalf("recovery %+v: want the index loaded and 150 blocks caught up", r)
	}
	readAll(t, st, ws)
	if n := st.Stats().Blocks; n != 250 {
		t.Fatalf("%d blocks, want 250", n)
	}
	st.Close()
	if rep := checkClean(t, dir); len(rep.Notes) != 0 {
		t.Fatalf("notes after catch-up: %q", rep.Notes)
	}

	// An index from the future (the log lost arenas) is thrown away.
	st = openT(t, dir)
	st.Close()
	fut := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(dir, indexName))
	os.WriteFile(filepath.Join(fut, indexName), b, 0o600)
	b, _ = os.ReadFile(filepath.Join(dir, "arena.000000"))
	os.WriteFile(filepath.Join(fut, "arena.000000"), b, 0o600)
	st = openT(t, fut)
	if r := st.Recovery(); r.IndexLoaded || !strings.Contains(r.IndexProblem, "past the end of the log") {
		t.Fatalf("recovery with index newer than the log: %+v", r)
	}
}

func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 50)
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, recHeaderSize - 1, recHeaderSize, recHeaderSize + 100} {
		t.Run(strconv.Itoa(cut), func(t *testing.T) {
			img := crashImage(t, dir)
			// Append a partial record, as a crash in the middle of a write leaves.
			rec := encodeRecord(make([]byte, recHeaderSize+2000), st.cur.magic, venti.DataType, venti.Sum(block(999)), flagRaw, block(999)[:2000])
			maxTorn := tearAppend(t, img, st, rec[:cut])
			rep := checkClean(t, img)
			if len(rep.Notes) != 2 { // no index, torn tail
				t.Fatalf("check notes %q: want no-index and torn-tail notes", rep.Notes)
			}
			st2 := openT(t, img)
			if r := st2.Recovery(); r.TornBytes < int64(cut) || r.TornBytes > maxTorn || r.ScannedBlocks != 50 {
				t.Fatalf("recovery %+v: want %d..%d torn bytes and 50 blocks", r, cut, maxTorn)
			}
			readAll(t, st2, ws)
			more := writeN(t, st2, 1000, 10)
			st2.Close()
			st2 = openT(t, img)
			readAll(t, st2, append(ws, more...))
			st2.Close()
			if rep := checkClean(t, img); len(rep.Notes) != 0 {
				t.Fatalf("notes after recovery: %q", rep.Notes)
			}
		})
	}
}

// recordOffset finds the arena offset of block w's record.
func recordOffset(t *testing.T, st *Store, w written) (string, int64) {
	t.Helper()
	locs := st.idx.lookup(indexKey(w.s, w.t), nil)
	if len(locs) != 1 {
		t.Fatalf("%d index entries for %v", len(locs), w.s)
	}
	a, _ := st.arenaByNum(locArena(locs[0]))
	return a.path, locOffset(locs[0])
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	f.ReadAt(b[:], off)
	b[0] ^= 0x10
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptByte(t *testing.T) {
	for _, where := range []struct {
		name string
		off  int64 // within the record
	}{{"data", recHeaderSize + 700}, {"header-size", 7}, {"header-score", 12}} {
		t.Run(where.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openT(t, dir)
			ws := writeN(t, st, 0, 20)
			victim := ws[7]
			path, off := recordOffset(t, st, victim)
			st.Close()
			flipByte(t, path, off+where.off)

			rep, err := Check(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatal("check found nothing")
			}
			text := fmt.Sprint(rep.Problems)
			if where.name == "data" && !strings.Contains(text, victim.s.String()) {
				t.Fatalf("check report %q does not name score %v", text, victim.s)
			}
			if !strings.Contains(text, fmt.Sprintf("offset %d", off)) {
				t.Fatalf("check report %q does not name offset %d", text, off)
			}

			st = openT(t, dir)
			_, err = st.Read(ctx, victim.s, victim.t, venti.MaxBlock)
			if !errors.Is(err, venti.ErrCorrupt) || !strings.Contains(err.Error(), victim.s.String()) {
				t.Fatalf("read of damaged block: %v, want ErrCorrupt naming %v", err, victim.s)
			}
			others := append(append([]written(nil), ws[:7]...), ws[8:]...)
			readAll(t, st, others)
			// Writing the block again stores a good copy.
			if _, err := st.Write(ctx, victim.t, victim.d); err != nil {
				t.Fatal(err)
			}
			readAll(t, st, ws)
		})
	}
}

// TestCorruptUnindexed damages a record that only the recovery scan sees
// (log written after the last checkpoint): the scan must step over it,
// keep the records after it and make reads of it fail as corrupt.
func TestCorruptUnindexed(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 30)
	st.Sync(ctx)
	path, off := recordOffset(t, st, ws[10])
	img := crashImage(t, dir)
	path = filepath.Join(img, filepath.Base(path))
	flipByte(t, path, off+recHeaderSize+5) // block bytes of ws[10]
	_, off2 := recordOffset(t, st, ws[20])
	flipByte(t, path, off2+2) // header magic of ws[20]
	st.Close()

	st2 := openT(t, img)
	r := st2.Recovery()
	if r.Corrupt != 1 || r.Damaged != 1 || r.TornBytes != 0 || r.ScannedBlocks != 29 {
		t.Fatalf("recovery %+v: want 29 records with 1 corrupt (ws[10]), 1 damaged stretch (ws[20]), nothing torn", r)
	}
	if _, err := st2.Read(ctx, ws[10].s, ws[10].t, venti.MaxBlock); !errors.Is(err, venti.ErrCorrupt) {
		t.Fatalf("read of damaged block: %v", err)
	}
	if _, err := st2.Read(ctx, ws[20].s, ws[20].t, venti.MaxBlock); !errors.Is(err, venti.ErrNotFound) {
		t.Fatalf("read of block with unreadable header: %v, want not found", err)
	}
	readAll(t, st2, ws[21:])
	readAll(t, st2, ws[:10])
}

func TestSyncGroupCommit(t *testing.T) {
	st := openT(t, t.TempDir())
	writeN(t, st, 0, 1)
	before := st.Stats()
	for i := 0; i < 3; i++ {
		if err := st.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s := st.Stats(); s.Syncs-before.Syncs != 3 || s.Fsyncs-before.Fsyncs != 1 {
		t.Fatalf("3 syncs after one write: %d fsyncs, want 1", s.Fsyncs-before.Fsyncs)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := st.Write(ctx, venti.DataType, block(1000*g+i)); err != nil {
					t.Error(err)
				}
				if err := st.Sync(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s := st.Stats()
	t.Logf("%d syncs, %d fsyncs", s.Syncs, s.Fsyncs)
	if s.Fsyncs > s.Syncs {
		t.Fatalf("%d fsyncs for %d syncs", s.Fsyncs, s.Syncs)
	}
}

func TestArenaRollover(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir, WithArenaSize(minArena), WithCheckpointBytes(100_000))
	var ws []written
	for i := 0; i < 400; i++ {
		ws = append(ws, writeN(t, st, i, 1)...)
		if i%50 == 0 {
			st.Sync(ctx)
		}
	}
	readAll(t, st, ws)
	if n := st.Stats().Arenas; n < 5 {
		t.Fatalf("%d arenas, want several", n)
	}
	st.Close()
	checkClean(t, dir)
	st = openT(t, dir)
	readAll(t, st, ws)
}

// A crash while an arena is being created leaves only its temporary file
// (the header is made durable before the rename), which the next open
// removes; the arena is then created afresh.
func TestHalfCreatedArena(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir, WithArenaSize(minArena))
	ws := writeN(t, st, 0, 3)
	st.Sync(ctx)
	n := st.Stats().Arenas
	st.Close()
	half := filepath.Join(dir, fmt.Sprintf(arenaFmt, n)+newArenaSuffix)
	if err := os.WriteFile(half, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st = openT(t, dir, WithArenaSize(minArena))
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Fatalf("half-created arena %s left behind: %v", half, err)
	}
	ws = append(ws, writeN(t, st, 3, 40)...)
	st.Sync(ctx)
	if st.Stats().Arenas <= n {
		t.Fatalf("no arena created after the half-created one was removed")
	}
	readAll(t, st, ws)
	st.Close()
	checkClean(t, dir)
}

func TestBadOptions(t *testing.T) {
	if _, err := Open(t.TempDir(), WithArenaSize(10)); err == nil {
		t.Fatal("tiny arena size accepted")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "arena.000001"), nil, 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "arena.000000 is missing") {
		t.Fatalf("open with a hole in the log: %v", err)
	}
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "arena.000000"), []byte("not an arena, just some text that is long enough to hold a header"), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a gridlord arena") {
		t.Fatalf("open with a foreign file: %v", err)
	}
}

var _ io.ReaderAt = (*os.File)(nil)

// TestDamageWhileOpen changes an arena behind an open store's back: a
// flipped byte must be seen by the next read (reads of written records
// come from a mapping of the file, which must show its current bytes), and
// a file cut short must make reads of the lost records fail cleanly, not
// crash the process with a fault on the mapping.
func TestDamageWhileOpen(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 40)
	if err := st.Sync(ctx); err != nil { // writes the append buffer out
		t.Fatal(err)
	}
	readAll(t, st, ws) // maps the pages in

	path, off := recordOffset(t, st, ws[3])
	flipByte(t, path, off+recHeaderSize+5)
	if _, err := st.Read(ctx, ws[3].s, ws[3].t, venti.MaxBlock); !errors.Is(err, venti.ErrCorrupt) {
		t.Fatalf("read of a block damaged while open: %v, want ErrCorrupt", err)
	}

	_, cut := recordOffset(t, st, ws[20])
	if err := os.Truncate(path, cut); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws[20:] {
		_, err := st.Read(ctx, w.s, w.t, venti.MaxBlock)
		if !errors.Is(err, venti.ErrCorrupt) || !strings.Contains(err.Error(), "past the end of the file") {
			t.Fatalf("read of a block cut off while open: %v, want ErrCorrupt past the end of the file", err)
		}
	}
	others := append(append([]written(nil), ws[:3]...), ws[4:20]...)
	readAll(t, st, others)
}
