package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/storetest"
)

// TestConformanceDirect runs the store's conformance suite with the log
// written with direct writes (where the test directory's file system has
// them; TestConformance covers the default, through the page cache).
func TestConformanceDirect(t *testing.T) {
	storetest.Test(t, func(t *testing.T) venti.Store { return openT(t, t.TempDir(), WithDirectWrites(true)) })
}

// TestDirectWrites writes a log over several arenas with direct writes and
// without, and checks what is on disk: with direct writes, the open arena
// ends in zeros up to a whole block and a crash image of it recovers with
// no torn bytes; after Close every arena file ends where its log ends; a
// reopened store appends into the block it left half full.
func TestDirectWrites(t *testing.T) {
	for _, direct := range []bool{true, false} {
		name := map[bool]string{true: "direct", false: "buffered"}[direct]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if direct {
				probe := filepath.Join(dir, "probe")
				os.WriteFile(probe, nil, 0o600)
				f, err := openDirect(probe)
				if err != nil {
					t.Skipf("no direct writes in %s: %v", dir, err)
				}
				f.Close()
				os.Remove(probe)
			}
			opts := []Option{WithArenaSize(minArena), WithDirectWrites(direct)}
			st := openT(t, dir, opts...)
			ws := writeN(t, st, 0, 90) // several arenas
			if err := st.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if st.Stats().Arenas < 3 {
				t.Fatalf("%d arenas, want at least 3", st.Stats().Arenas)
			}
			if (st.cur.dio != nil) != direct {
				t.Fatalf("direct-write file %v, want direct writes %v", st.cur.dio, direct)
			}
			end := addrOffset(st.tail.Load())
			fi, err := os.Stat(st.cur.path)
			if err != nil {
				t.Fatal(err)
			}
			if direct && (fi.Size() != alignUp(end) || fi.Size() == end) {
				t.Fatalf("open arena: %d bytes with a log of %d; want it padded to %d", fi.Size(), end, alignUp(end))
			}
			if !direct && fi.Size() != end {
				t.Fatalf("open arena: %d bytes with a log of %d", fi.Size(), end)
			}

			img := crashImage(t, dir)
			rep := checkClean(t, img)
			for _, n := range rep.Notes {
				if strings.Contains(n, "torn") {
					t.Errorf("check of the crash image: %s", n)
				}
			}
			st2 := openT(t, img, opts...)
			if r := st2.Recovery(); r.TornBytes != 0 || r.Corrupt != 0 || r.Damaged != 0 {
				t.Fatalf("recovery of the crash image: %+v", r)
			}
			readAll(t, st2, ws)
			more := writeN(t, st2, 1000, 7)
			st2.Close()

			st.Close()
			for _, d := range []string{dir, img} {
				if rep := checkClean(t, d); len(rep.Notes) != 0 {
					t.Errorf("check of %s after Close: %q", d, rep.Notes)
				}
			}
			st3 := openT(t, img, opts...)
			readAll(t, st3, append(ws, more...))
		})
	}
}

// TestFailedAppend makes the write of the append buffer fail (the arena
// file it goes to is read-only underneath the store), with direct writes
// and without: the Sync that waits for it reports the failure, later
// writes are refused, and the store reopened holds every block synced
// before, with nothing of the failed write in its log.
func TestFailedAppend(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(map[bool]string{true: "direct", false: "buffered"}[direct], func(t *testing.T) {
			dir := t.TempDir()
			st := openT(t, dir, WithDirectWrites(direct))
			ws := writeN(t, st, 0, 10)
			if err := st.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			ro, err := os.Open(st.cur.path)
			if err != nil {
				t.Fatal(err)
			}
			st.mu.Lock()
			a := st.cur
			good := a.f
			if a.dio != nil {
				good, a.dio = a.dio, ro
			} else {
				a.f = ro
			}
			st.mu.Unlock()
			writeN(t, st, 100, 5)
			if err := st.Sync(ctx); err == nil || !strings.Contains(err.Error(), "append to") {
				t.Fatalf("sync after a failed append: %v", err)
			}
			if _, err := st.Write(ctx, venti.DataType, block(200)); err == nil || !strings.Contains(err.Error(), "failed earlier") {
				t.Fatalf("write after a failed append: %v", err)
			}
			st.mu.Lock()
			if a.f == ro {
				a.f = good
			} else {
				a.dio = good
			}
			st.mu.Unlock()
			ro.Close()
			st.Close()
			st2 := openT(t, dir, WithDirectWrites(direct))
			readAll(t, st2, ws)
			if n := st2.Stats().Blocks; n != 10 {
				t.Fatalf("reopened store holds %d blocks, want the 10 synced", n)
			}
			st2.Close()
			checkClean(t, dir)
		})
	}
}
