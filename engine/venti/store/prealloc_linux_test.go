package store

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"gridlord/engine/venti"
)

// diskBytes is what a file takes on disk (st_blocks).
func diskBytes(t *testing.T, path string) (disk, size int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512, st.Size
}

// The current arena's blocks are reserved ahead of the appends while the
// store is open, and given back when an arena is sealed, when the store
// is closed, and when a store a process left open without closing it is
// opened again: a closed store takes no more disk than its records.
func TestPreallocationGivenBack(t *testing.T) {
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	if f, err := os.Create(probe); err == nil {
		err = preallocate(f, 0, 1<<20)
		f.Close()
		os.Remove(probe)
		if err != nil {
			t.Skipf("no preallocation on this file system: %v", err)
		}
	}
	const arenaSize = 24 << 20
	st, err := Open(dir, WithArenaSize(arenaSize))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{5})
	b := make([]byte, 8192)
	write := func(n int) {
		for i := 0; i < n; i++ {
			rng.Read(b)
			if _, err := st.Write(ctx, venti.DataType, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	slack := func(disk, size int64) int64 { return disk - (size+4095)&^4095 }
	write(200) // 1.6 MiB: preallocation runs ahead of it
	arena0 := filepath.Join(dir, "arena.000000")
	if disk, size := diskBytes(t, arena0); slack(disk, size) < preallocStep/2 {
		t.Errorf("open store: arena of %d bytes takes %d on disk, want about %d more (preallocated)", size, disk, preallocStep)
	}
	write(4000) // 32 MiB: arena 0 is sealed
	if disk, size := diskBytes(t, arena0); slack(disk, size) > 64<<10 {
		t.Errorf("sealed arena of %d bytes takes %d on disk", size, disk)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	arena1 := filepath.Join(dir, "arena.000001")
	if disk, size := diskBytes(t, arena1); slack(disk, size) > 64<<10 {
		t.Errorf("closed store: arena of %d bytes takes %d on disk", size, disk)
	}
	// As a process that died would leave it: space reserved past the end.
	f, err := os.OpenFile(arena1, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, size := diskBytes(t, arena1)
	if err := preallocate(f, size, preallocStep); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st2 := openT(t, dir, WithArenaSize(arenaSize))
	if disk, size := diskBytes(t, arena1); slack(disk, size) > 64<<10 {
		t.Errorf("reopened store: arena of %d bytes takes %d on disk", size, disk)
	}
	if n := st2.Stats().Blocks; n != 4200 {
		t.Errorf("reopened store has %d blocks, want 4200", n)
	}
}
