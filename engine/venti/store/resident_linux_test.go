package store

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// resident follows the page cache: pages of a file the kernel has dropped
// are not resident, and reading them makes them so.
func TestResident(t *testing.T) {
	ps := os.Getpagesize()
	f, err := os.CreateTemp(t.TempDir(), "resident")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 8*ps)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 8*ps, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	if !resident(m, int64(ps)+10, int64(3*ps)) {
		t.Fatal("pages just written are not resident")
	}
	if resident(m, 10, 10) || resident(m, -1, 10) || resident(m, 0, int64(9*ps)) {
		t.Fatal("an empty or out-of-range span is resident")
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type == unix.TMPFS_MAGIC {
		t.Log("the temporary directory is a tmpfs, whose pages cannot be dropped: not tested")
		return
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if resident(m, int64(ps)+10, int64(3*ps)) {
		t.Fatal("pages the kernel was told to drop are still resident")
	}
	b := make([]byte, 2*ps)
	if _, err := f.ReadAt(b, int64(ps)); err != nil {
		t.Fatal(err)
	}
	if !resident(m, int64(ps)+10, int64(3*ps)) {
		t.Fatal("pages just read are not resident")
	}
}
