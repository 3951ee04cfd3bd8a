package arena

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/qcow2"
	"gridlord/engine/venti"
	"gridlord/testing/testenv"
)

// plan9Disk wraps an arena partition in a raw Plan 9 disk image: an MBR
// with a type 0x39 partition from sector 64 whose second sector holds the
// table "part 9fat 2 66" and "part arenas 66 N", as Plan 9's installer
// makes for fossil+venti. It returns the image and the arenas' offset.
func plan9Disk(arenas []byte) ([]byte, int64) {
	const start = 64
	n := int64(len(arenas)) / 512
	total := start + 66 + n
	d := make([]byte, total*512)
	e := d[446:]
	e[4] = 0x39
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], uint32(total-start))
	d[510], d[511] = 0x55, 0xaa
	copy(d[(start+1)*512:], fmt.Sprintf("part 9fat 2 66\npart arenas 66 %d\n", 66+n))
	off := int64(start+66) * 512
	copy(d[off:], arenas)
	return d, off
}

// importPath imports the arenas found at path into a fresh store and
// checks it holds exactly the real blocks.
func importPath(t *testing.T, path, wantDesc string) {
	t.Helper()
	src, err := OpenSource(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !strings.Contains(src.Desc, wantDesc) {
		t.Errorf("source %q, want it to mention %q", src.Desc, wantDesc)
	}
	p, err := Open(src, src.Size)
	if err != nil {
		t.Fatal(err)
	}
	st := venti.NewMemStore()
	res, err := Import(context.Background(), p, st, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 59 || res.Corrupt != 0 {
		t.Errorf("import from %s: %+v", src.Desc, res)
	}
	checkStore(t, st)
}

// writeSparse writes the non-zero 64 KiB chunks of b in [from, to) to img.
func writeSparse(t *testing.T, img *qcow2.Image, b []byte, from, to int64) {
	t.Helper()
	const chunk = 64 << 10
	for off := from; off < to; off += chunk {
		end := min(off+chunk, to)
		if bytes.Count(b[off:end], []byte{0}) == int(end-off) {
			continue
		}
		if _, err := img.WriteAt(b[off:end], off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSourceDiskImages finds and imports the real arena partition as a
// file, inside a raw Plan 9 disk image, and inside a two-image qcow2 chain
// whose overlay holds the arena's clump log and whose base holds the rest.
func TestSourceDiskImages(t *testing.T) {
	arenas, arenasPath := realArenas(t)
	dir := t.TempDir()
	t.Run("file", func(t *testing.T) { importPath(t, arenasPath, "arenas partition") })

	disk, off := plan9Disk(arenas)
	raw := filepath.Join(dir, "seed.img")
	if err := os.WriteFile(raw, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("raw", func(t *testing.T) { importPath(t, raw, "partition arenas") })

	t.Run("qcow2 chain", func(t *testing.T) {
		base, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2")
		if err := qcow2.Create(base, qcow2.CreateOptions{Size: int64(len(disk))}); err != nil {
			t.Fatal(err)
		}
		// The first arena's log (its first 1 MiB of data) goes only into
		// the overlay, everything else into the base.
		p := openBytes(t, arenas)
		logFrom, logTo := off+p.Arenas[0].PartitionOffset(0), off+p.Arenas[0].PartitionOffset(1<<20)
		img, err := qcow2.Open(base)
		if err != nil {
			t.Fatal(err)
		}
		writeSparse(t, img, disk, 0, logFrom)
		writeSparse(t, img, disk, logTo, int64(len(disk)))
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		if err := qcow2.CreateOverlay(top, base); err != nil {
			t.Fatal(err)
		}
		img, err = qcow2.Open(top)
		if err != nil {
			t.Fatal(err)
		}
		writeSparse(t, img, disk, logFrom, logTo)
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		// The base alone lacks the clumps.
		src, err := OpenSource(base)
		if err != nil {
			t.Fatal(err)
		}
		bp, err := Open(src, src.Size)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Import(context.Background(), bp, venti.NewMemStore(), ImportOptions{})
		src.Close()
		if err != nil || n.Written != 0 || n.Corrupt == 0 {
			t.Errorf("base alone: %+v, %v", n, err)
		}
		importPath(t, top, "qcow2")
	})

	t.Run("qemu-img", func(t *testing.T) {
		qemuImg := testenv.Tool(t, "qemu-img")
		q, top := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "qtop.qcow2")
		for _, args := range [][]string{
			{"convert", "-f", "raw", "-O", "qcow2", raw, q},
			{"create", "-f", "qcow2", "-b", q, "-F", "qcow2", top},
		} {
			if out, err := exec.Command(qemuImg, args...).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
			}
		}
		importPath(t, top, "qcow2")
	})

	t.Run("not arenas", func(t *testing.T) {
		other := filepath.Join(dir, "other.img")
		os.WriteFile(other, make([]byte, 1<<20), 0o644)
		_, err := OpenSource(other)
		if err == nil || !strings.Contains(err.Error(), "neither a venti arenas partition") {
			t.Errorf("zero image: %v", err)
		}
		t.Logf("%v", err)
		noVenti, _ := plan9Disk(make([]byte, 1<<20))
		copy(noVenti[65*512:], "part 9fat 2 66\npart fossil 66 2114\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
		os.WriteFile(other, noVenti, 0o644)
		_, err = OpenSource(other)
		if err == nil || !strings.Contains(err.Error(), `no "arenas" partition`) {
			t.Errorf("disk without arenas: %v", err)
		}
		t.Logf("%v", err)
	})
}
