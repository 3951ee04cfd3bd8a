package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gridlord/engine/venti"
)

// drain reads records from it until ErrCaughtUp, checking that each starts
// where the previous one ended (or at the start of the next arena).
func drain(t *testing.T, it *Iter) []Record {
	t.Helper()
	var out []Record
	for {
		prev := it.Pos()
		r, err := it.Next(ctx)
		if errors.Is(err, ErrCaughtUp) {
			return out
		}
		if err != nil {
			t.Fatalf("next at %v: %v", prev, err)
		}
		if r.Pos != prev && !(r.Pos.Arena == prev.Arena+1 && r.Pos.Offset == arenaHeaderSize) {
			t.Fatalf("record at %v, but the iterator was at %v", r.Pos, prev)
		}
		if r.Next.Compare(r.Pos) <= 0 || it.Pos() != r.Next || int64(r.Stored) != r.Next.Offset-r.Pos.Offset {
			t.Fatalf("record %v..%v (%d bytes), iterator now at %v", r.Pos, r.Next, r.Stored, it.Pos())
		}
		r.Data = bytes.Clone(r.Data)
		out = append(out, r)
	}
}

// sameBlocks checks that recs are exactly the blocks ws, in that order.
func sameBlocks(t *testing.T, recs []Record, ws []written) {
	t.Helper()
	if len(recs) != len(ws) {
		t.Fatalf("%d records, want %d", len(recs), len(ws))
	}
	for i, r := range recs {
		if r.Score != ws[i].s || r.Type != ws[i].t || !bytes.Equal(r.Data, ws[i].d) {
			t.Fatalf("record %d is %v/%v (%d bytes), want %v/%v (%d bytes)", i, r.Score, r.Type, len(r.Data), ws[i].s, ws[i].t, len(ws[i].d))
		}
	}
}

// TestRecordsOrder reads back raw and compressed records across several
// arenas in the order they were written, and only once they are durable.
func TestRecordsOrder(t *testing.T) {
	st := openT(t, t.TempDir(), WithArenaSize(minArena))
	ws := writeN(t, st, 0, 150)
	it, err := st.Records(StartPos())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Next(ctx); !errors.Is(err, ErrCaughtUp) {
		t.Fatalf("before Sync: %v, want ErrCaughtUp (nothing is durable)", err)
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	recs := drain(t, it)
	sameBlocks(t, recs, ws)
	if recs[len(recs)-1].Pos.Arena < 2 {
		t.Fatalf("the records span arenas 0..%d; want several", recs[len(recs)-1].Pos.Arena)
	}
	if it.Pos() != st.Durable() {
		t.Fatalf("caught up at %v, durable end %v", it.Pos(), st.Durable())
	}
	var compressed int
	for _, r := range recs {
		if r.Stored < recHeaderSize+len(r.Data) {
			compressed++
		}
	}
	if compressed == 0 || compressed == len(recs) {
		t.Fatalf("%d of %d records compressed; the test wants both kinds", compressed, len(recs))
	}
	// Rewriting stored blocks appends nothing.
	writeN(t, st, 0, 10)
	st.Sync(ctx)
	if _, err := it.Next(ctx); !errors.Is(err, ErrCaughtUp) {
		t.Fatalf("after duplicate writes: %v, want ErrCaughtUp", err)
	}
}

// TestRecordsResume stops half way, reopens the store and resumes from
// the saved position: exactly the rest of the records follow.
func TestRecordsResume(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir, WithArenaSize(minArena))
	ws := writeN(t, st, 0, 120)
	st.Sync(ctx)
	it, _ := st.Records(StartPos())
	var pos Pos
	for range 70 {
		r, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pos = r.Next
	}
	id := st.ID()
	st.Close()
	if _, err := it.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("next on a closed store: %v, want ErrClosed", err)
	}

	st = openT(t, dir)
	if st.ID() != id {
		t.Fatalf("store ID %s after reopen, was %s", st.ID(), id)
	}
	ws = append(ws, writeN(t, st, 1000, 30)...)
	st.Sync(ctx)
	it, err := st.Records(pos)
	if err != nil {
		t.Fatal(err)
	}
	sameBlocks(t, drain(t, it), ws[70:])
	if other := openT(t, t.TempDir()); other.ID() == id {
		t.Fatalf("two stores share ID %s", id)
	}
}

// TestRecordsBadPos refuses positions that are not record boundaries.
func TestRecordsBadPos(t *testing.T) {
	st := openT(t, t.TempDir())
	writeN(t, st, 0, 5)
	st.Sync(ctx)
	it, _ := st.Records(StartPos())
	r, _ := it.Next(ctx)
	for _, p := range []Pos{
		{0, r.Pos.Offset + 1}, // inside the first record
		{0, 10},               // inside the arena header
		{1, arenaHeaderSize},  // no such arena
		{-1, arenaHeaderSize},
		{0, st.Durable().Offset + recHeaderSize}, // past the durable end
	} {
		if _, err := st.Records(p); !errors.Is(err, ErrBadPos) {
			t.Errorf("Records(%v): %v, want ErrBadPos", p, err)
		}
	}
	for _, p := range []Pos{StartPos(), r.Next, st.Durable()} {
		if _, err := st.Records(p); err != nil {
			t.Errorf("Records(%v): %v", p, err)
		}
	}
}

// TestRecordsConcurrent follows the log while several writers append and
// sync: the follower sees every block exactly once, in log order, and
// Wait wakes it for each new durable stretch.
func TestRecordsConcurrent(t *testing.T) {
	st := openT(t, t.TempDir(), WithArenaSize(minArena))
	const writers, each = 4, 150
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := st.Write(ctx, venti.DataType, block(w*each+i)); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					if err := st.Sync(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}
			st.Sync(ctx)
		}()
	}
	it, _ := st.Records(StartPos())
	seen := map[venti.Score]bool{}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last Pos
	for len(seen) < writers*each {
		r, err := it.Next(wctx)
		if errors.Is(err, ErrCaughtUp) {
			if err := it.Wait(wctx); err != nil {
				t.Fatalf("wait with %d of %d blocks seen: %v", len(seen), writers*each, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Pos.Compare(last) < 0 || seen[r.Score] || venti.Sum(r.Data) != r.Score {
			t.Fatalf("record %v at %v after %v (seen before: %v)", r.Score, r.Pos, last, seen[r.Score])
		}
		seen[r.Score], last = true, r.Pos
	}
	wg.Wait()
	if _, err := it.Next(ctx); !errors.Is(err, ErrCaughtUp) {
		t.Fatalf("after every block: %v", err)
	}
	// Wait gives up with its context, and returns when the store closes.
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if err := it.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with nothing to come: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- it.Wait(ctx) }()
	time.Sleep(10 * time.Millisecond)
	st.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("wait across Close: %v, want ErrClosed", err)
	}
}

// TestRecordsCorrupt damages a record's block and another's header: Next
// reports each as corrupt, naming the score it can, and reads on.
func TestRecordsCorrupt(t *testing.T) {
	dir := t.TempDir()
	st := openT(t, dir)
	ws := writeN(t, st, 0, 20)
	p1, off1 := recordOffset(t, st, ws[5])
	p2, off2 := recordOffset(t, st, ws[12])
	st.Close()
	flipByte(t, p1, off1+recHeaderSize+100)
	flipByte(t, p2, off2+12) // the score: the header checksum fails

	st = openT(t, dir)
	it, _ := st.Records(StartPos())
	var got []written
	var bad []error
	for {
		r, err := it.Next(ctx)
		if errors.Is(err, ErrCaughtUp) {
			break
		}
		if err != nil {
			if !errors.Is(err, venti.ErrCorrupt) {
				t.Fatalf("next: %v, want ErrCorrupt", err)
			}
			if len(bad) == 0 && r.Score != ws[5].s {
				t.Fatalf("damaged block reported as %v, want %v: %v", r.Score, ws[5].s, err)
			}
			bad = append(bad, err)
			continue
		}
		got = append(got, written{r.Score, r.Type, bytes.Clone(r.Data)})
	}
	if len(bad) != 2 {
		t.Fatalf("%d damage reports, want 2: %v", len(bad), bad)
	}
	want := append(append(append([]written(nil), ws[:5]...), ws[6:12]...), ws[13:]...)
	if len(got) != len(want) {
		t.Fatalf("%d good records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].s != want[i].s || !bytes.Equal(got[i].d, want[i].d) {
			t.Fatalf("good record %d is %v, want %v", i, got[i].s, want[i].s)
		}
	}
	t.Logf("reports: %v", bad)
}

// FuzzRecords reads arbitrary bytes as the one arena of a store whose
// whole file is durable: Next must not panic, must always move forward
// (so a caller that reads on past damage ends), and must hand out only
// records that lie where it says. (It checks CRC32C, not SHA-1: a forged
// record with a good CRC passes, as it does Read with WithReadVerify
// false; the mirror's client recomputes the SHA-1.)
func FuzzRecords(f *testing.F) {
	good := fuzzArena(4, false)
	f.Add(good)
	f.Add(fuzzArena(3, true))
	bad := append([]byte(nil), good...)
	bad[arenaHeaderSize+recHeaderSize+3] ^= 1 // damaged block
	f.Add(bad)
	bad2 := append([]byte(nil), good...)
	bad2[arenaHeaderSize+1] ^= 1 // damaged header
	f.Add(bad2)
	f.Add(good[:len(good)-5])
	// One file per worker, rewritten for each input: no directory work
	// per input keeps the fuzzer fast.
	path := filepath.Join(f.TempDir(), "arena.000000")
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		f.Fatal(err)
	}
	defer fh.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := fh.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		checkRecords(t, fh, b)
	})
}

// checkRecords is FuzzRecords for one input b, held by the file fh.
func checkRecords(t *testing.T, fh *os.File, b []byte) {
	path := fh.Name()
	a := &arena{num: 0, magic: fuzzMagic, path: path, f: fh}
	a.limit.Store(int64(len(b)))
	st := &Store{dir: filepath.Dir(path)}
	as := []*arena{a}
	st.arenas.Store(&as)
	st.durable.Store(makeAddr(0, max(int64(len(b)), arenaHeaderSize)))
	it, err := st.Records(StartPos())
	if err != nil {
		t.Fatal(err)
	}
	for range len(b) + 2 {
		before := it.Pos()
		r, err := it.Next(ctx)
		if errors.Is(err, ErrCaughtUp) {
			return
		}
		if it.Pos().Compare(before) <= 0 {
			t.Fatalf("Next at %v stayed there (%v)", before, err)
		}
		if err == nil && (r.Pos != before || r.Next != it.Pos() || r.Next.Offset > int64(len(b)) || len(r.Data) != r.Size) {
			t.Fatalf("record %v..%v of %d bytes (size %d) read at %v from a %d-byte arena", r.Pos, r.Next, len(r.Data), r.Size, before, len(b))
		}
	}
	t.Fatalf("Next did not reach the end of a %d-byte arena", len(b))
}
