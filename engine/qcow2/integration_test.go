package qcow2

// Integration tests: qemu-img and qemu-io (Debian's qemu-utils, tested with
// QEMU 7.2) are the judges of what we read and write.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/testing/testenv"
)

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// qemuRaw converts an image to raw with qemu-img and returns the bytes.
func qemuRaw(t testing.TB, qemuImg, img string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "raw")
	run(t, qemuImg, "convert", "-O", "raw", img, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// qemuCheck fails t unless "qemu-img check" finds no errors and no leaks.
func qemuCheck(t testing.TB, qemuImg, img string) {
	t.Helper()
	out, err := exec.Command(qemuImg, "check", img).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img check %s: %v\n%s", img, err, out)
	}
}

// readAll reads the whole virtual disk with our reader.
func readAll(t testing.TB, path string) []byte {
	t.Helper()
	im, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	b := make([]byte, im.Size())
	if _, err := im.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustEqual(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s: differs at byte %d (len %d vs %d)", what, i, len(got), len(want))
	}
}

type seedSpec struct {
	name     string
	create   string // -o options for qemu-img create
	compress string // if set, "qemu-img convert -c" with these -o options
	raw      bool
	ours     bool // made by Create and WriteAt instead of qemu-img
}

var seedSpecs = []seedSpec{
	{name: "v2-64k", create: "compat=0.10,cluster_size=65536"},
	{name: "v3-64k", create: "compat=1.1,cluster_size=65536"},
	{name: "v3-512", create: "compat=1.1,cluster_size=512"},
	{name: "v3-2M", create: "compat=1.1,cluster_size=2M"},
	{name: "v3-lazy-refcount1", create: "compat=1.1,lazy_refcounts=on,refcount_bits=1,cluster_size=4096"},
	{name: "v3-refcount4", create: "compat=1.1,refcount_bits=4,cluster_size=4096"},
	{name: "v3-refcount64", create: "compat=1.1,refcount_bits=64,cluster_size=1024"},
	{name: "v3-compressed", create: "compat=1.1", compress: "compat=1.1"},
	{name: "v2-compressed-4k", create: "compat=0.10", compress: "compat=0.10,cluster_size=4096"},
	{name: "raw", raw: true},
	{name: "gridlord", ours: true},
}

const seedSize = 6 << 20

// makeSeed builds a seed image with qemu-img and qemu-io: patterned data,
// a zeroed range and holes.
func makeSeed(t testing.TB, qemuImg, qemuIO, dir string, s seedSpec) string {
	t.Helper()
	p := filepath.Join(dir, s.name+".qcow2")
	src := p
	if s.compress != "" {
		src = filepath.Join(dir, s.name+".src.qcow2")
	}
	if s.ours {
		mustCreate(t, p, CreateOptions{Size: seedSize})
		im := mustOpen(t, p)
		for _, w := range []struct {
			b   byte
			off int64
			n   int
		}{{0xab, 0, 1 << 20}, {0x5c, 1500 << 10, 300 << 10}, {0x11, 3 << 20, 1 << 20}, {0, 3200 << 10, 128 << 10}, {0x77, 6000 << 10, 100 << 10}} {
			if _, err := im.WriteAt(bytes.Repeat([]byte{w.b}, w.n), w.off); err != nil {
				t.Fatal(err)
			}
		}
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
		qemuCheck(t, qemuImg, p)
		return p
	}
	if s.raw {
		p = filepath.Join(dir, s.name+".img")
		src = p
		run(t, qemuImg, "create", "-f", "raw", src, fmt.Sprint(seedSize))
	} else {
		run(t, qemuImg, "create", "-f", "qcow2", "-o", s.create, src, fmt.Sprint(seedSize))
	}
	fmtName := "qcow2"
	if s.raw {
		fmtName = "raw"
	}
	run(t, qemuIO, "-f", fmtName,
		"-c", "write -P 0xab 0 1M",
		"-c", "write -P 0x5c 1500k 300k",
		"-c", "write -P 0x11 3M 1M",
		"-c", "write -z 3200k 128k",
		"-c", "write -P 0x77 6000k 100k",
		src)
	if s.compress != "" {
		run(t, qemuImg, "convert", "-c", "-O", "qcow2", "-o", s.compress, src, p)
	}
	return p
}

// randomWrites applies writes to an image and a model of its contents.
func randomWrites(t testing.TB, im *Image, m model, seed uint64, count int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range count {
		n := 1 + r.IntN(200<<10)
		if i%3 == 0 {
			n = 1 + r.IntN(5000)
		}
		off := r.Int64N(int64(len(m)) - int64(n))
		m.write(t, im, pattern(n, byte(i+1)), off)
	}
	// Into the seeds' zeroed range (QEMU may keep those clusters allocated
	// with the zero flag).
	m.write(t, im, pattern(300, 6), 3200<<10+5)
	// A fixed pattern for qemu-io to verify.
	m.write(t, im, bytes.Repeat([]byte{0xc3}, 8192), 2<<20+1000)
}

func TestQemuSeedsAndOverlays(t *testing.T) {
	qemuImg := testenv.Tool(t, "qemu-img")
	qemuIO := testenv.Tool(t, "qemu-io")
	for _, s := range seedSpecs {
		t.Run(s.name, func(t *testing.T) {
			dir := t.TempDir()
			seed := makeSeed(t, qemuImg, qemuIO, dir, s)
			want := qemuRaw(t, qemuImg, seed)
			mustEqual(t, "our read of the seed vs qemu-img convert", readAll(t, seed), want)
			seedHash := fileHash(t, seed)

			// Linked clone, relative backing path, in a subdirectory.
			os.Mkdir(filepath.Join(dir, "vm"), 0o755)
			ov := filepath.Join(dir, "vm", "disk.qcow2")
			if err := CreateOverlay(ov, filepath.Join("..", filepath.Base(seed))); err != nil {
				t.Fatal(err)
			}
			qemuCheck(t, qemuImg, ov)
			info := string(run(t, qemuImg, "info", "--output=json", "--backing-chain", ov))
			if !strings.Contains(info, `"backing-filename-format": "`+map[bool]string{true: "raw", false: "qcow2"}[s.raw]) {
				t.Fatalf("qemu-img info does not show the backing format:\n%s", info)
			}
			run(t, qemuImg, "compare", ov, seed)

			// Write into the overlay; QEMU must agree with our model.
			im := mustOpen(t, ov)
			m := model(bytes.Clone(want))
			randomWrites(t, im, m, 1, 30)
			m.verify(t, im)
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			qemuCheck(t, qemuImg, ov)
			mustEqual(t, "qemu-img convert of our overlay vs model", qemuRaw(t, qemuImg, ov), m)
			mustEqual(t, "our read of our overlay vs model", readAll(t, ov), m)
			run(t, qemuIO, "-r", "-f", "qcow2", "-c", "read -P 0xc3 2098152 8192", ov)
			if fileHash(t, seed) != seedHash {
				t.Fatal("writing the overlay changed the seed")
			}

			// QEMU writes into our overlay, and we read what it wrote.
			run(t, qemuIO, "-f", "qcow2", "-c", "write -P 0x24 200k 5k", "-c", "write -z 5000k 64k", ov)
			copy(m[200<<10:], bytes.Repeat([]byte{0x24}, 5<<10))
			clear(m[5000<<10 : 5064<<10])
			qemuCheck(t, qemuImg, ov)
			mustEqual(t, "our read of our overlay after QEMU wrote to it", readAll(t, ov), m)
			// Our write over QEMU's zero cluster.
			im = mustOpen(t, ov)
			m.write(t, im, pattern(100, 8), 5000<<10+10)
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			qemuCheck(t, qemuImg, ov)
			mustEqual(t, "qemu-img convert after our write over a zero cluster", qemuRaw(t, qemuImg, ov), m)

			// QEMU stacks its own overlay on ours and writes through it.
			top := filepath.Join(dir, "top.qcow2")
			run(t, qemuImg, "create", "-f", "qcow2", "-b", ov, "-F", "qcow2", top)
			run(t, qemuIO, "-f", "qcow2", "-c", "write -P 0x42 100k 10k", top)
			copy(m[100<<10:], bytes.Repeat([]byte{0x42}, 10<<10))
			mustEqual(t, "our read of QEMU's overlay over ours", readAll(t, top), m)

			// Flatten: a standalone copy with the same contents.
			flat := filepath.Join(dir, "flat.qcow2")
			if err := Flatten(context.Background(), top, flat, nil); err != nil {
				t.Fatal(err)
			}
			qemuCheck(t, qemuImg, flat)
			run(t, qemuImg, "compare", flat, top)
			if strings.Contains(string(run(t, qemuImg, "info", flat)), "backing file") {
				t.Fatal("flattened image has a backing file")
			}

			// Write straight into the qemu-made seed (compressed clusters
			// are copied out, v2 images keep working).
			if !s.raw {
				sm := model(bytes.Clone(want))
				sim := mustOpen(t, seed)
				randomWrites(t, sim, sm, 2, 20)
				if err := sim.Close(); err != nil {
					t.Fatal(err)
				}
				qemuCheck(t, qemuImg, seed)
				mustEqual(t, "qemu-img convert of the seed after our writes", qemuRaw(t, qemuImg, seed), sm)
			}
		})
	}
}

// TestQemuRefcountGrowth has qemu-img judge an image whose refcount blocks
// and table we grew.
func TestQemuRefcountGrowth(t *testing.T) {
	qemuImg := testenv.Tool(t, "qemu-img")
	p := filepath.Join(t.TempDir(), "g.qcow2")
	const size = 12 << 20
	mustCreate(t, p, CreateOptions{Size: size, ClusterSize: 512})
	im := mustOpen(t, p)
	m := make(model, size)
	randomWrites(t, im, m, 3, 80)
	for off := int64(0); off < size; off += 3 << 20 {
		m.write(t, im, pattern(2<<20, byte(off>>20)), off)
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	qemuCheck(t, qemuImg, p)
	mustEqual(t, "qemu-img convert vs model", qemuRaw(t, qemuImg, p), m)
}

// TestQemuEmptyImage checks that QEMU opens our empty images of odd sizes
// and cluster sizes and reads zeros.
func TestQemuEmptyImage(t *testing.T) {
	qemuImg := testenv.Tool(t, "qemu-img")
	for _, cs := range []int64{512, 65536, 2 << 20} {
		p := filepath.Join(t.TempDir(), "e.qcow2")
		mustCreate(t, p, CreateOptions{Size: 10<<30 + 512, ClusterSize: cs})
		qemuCheck(t, qemuImg, p)
		info := string(run(t, qemuImg, "info", p))
		if !strings.Contains(info, "virtual size: 10 GiB (10737418752 bytes)") || !strings.Contains(info, "compat: 1.1") {
			t.Fatalf("qemu-img info:\n%s", info)
		}
	}
}

// TestCheckersDetectCorruption shows that the judges can fail: an image
// whose data cluster lost its refcount is an error for our checker and for
// qemu-img check, and a refcount on an unused cluster is a leak.
func TestCheckersDetectCorruption(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.qcow2")
	mustCreate(t, p, CreateOptions{Size: 1 << 20, ClusterSize: 4096})
	im := mustOpen(t, p)
	im.WriteAt([]byte("data"), 0)
	l2 := int64(im.l1[0] & offsetMask)
	tbl, _ := im.l2Table(uint64(l2))
	host := int64(tbl[0] & offsetMask)
	rb := int64(im.alloc.table[0] & offsetMask)
	im.Close()
	mustCheckClean(t, p)
	b, _ := os.ReadFile(p)
	for _, c := range []struct {
		name    string
		cluster int64
		val     uint16
		errors  bool
		code    int
	}{{"lost refcount", host / 4096, 0, true, 2}, {"leaked cluster", host/4096 + 1, 1, false, 3}} {
		bb := bytes.Clone(b)
		if end := (c.cluster + 1) * 4096; end > int64(len(bb)) {
			bb = append(bb, make([]byte, end-int64(len(bb)))...)
		}
		bb[rb+c.cluster*2], bb[rb+c.cluster*2+1] = byte(c.val>>8), byte(c.val)
		os.WriteFile(p, bb, 0o644)
		r := checkImage(t, p)
		if (len(r.errors) > 0) != c.errors || (!c.errors && r.leaks == 0) {
			t.Fatalf("%s: our checker found %v, %d leaks", c.name, r.errors, r.leaks)
		}
		if testenv.Enabled() {
			qemuImg := testenv.Tool(t, "qemu-img")
			err := exec.Command(qemuImg, "check", p).Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != c.code {
				t.Fatalf("%s: qemu-img check: %v, want exit %d", c.name, err, c.code)
			}
		}
	}
}

// TestQemuMadeChain reads and writes a three-deep chain made by qemu-img:
// a v2 overlay (512-byte clusters) over a v3 overlay over a raw base, with
// absolute and relative backing paths.
func TestQemuMadeChain(t *testing.T) {
	qemuImg := testenv.Tool(t, "qemu-img")
	qemuIO := testenv.Tool(t, "qemu-io")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	mid := filepath.Join(dir, "mid.qcow2")
	top := filepath.Join(dir, "top.qcow2")
	run(t, qemuImg, "create", "-f", "raw", base, "3M")
	run(t, qemuIO, "-f", "raw", "-c", "write -P 0x01 0 3M", base)
	run(t, qemuImg, "create", "-f", "qcow2", "-o", "compat=1.1", "-b", base, "-F", "raw", mid, "4M")
	run(t, qemuIO, "-f", "qcow2", "-c", "write -P 0x02 1M 100k", "-c", "write -z 2M 64k", mid)
	run(t, qemuImg, "create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=512", "-b", "mid.qcow2", "-F", "qcow2", top)
	run(t, qemuIO, "-f", "qcow2", "-c", "write -P 0x03 1050k 3k", top)
	want := qemuRaw(t, qemuImg, top)
	mustEqual(t, "our read of the qemu-made chain", readAll(t, top), want)

	im := mustOpen(t, top)
	info := im.Info()
	if n := len(info.Chain()); n != 3 {
		t.Fatalf("chain of %d images, want 3", n)
	}
	m := model(want)
	randomWrites(t, im, m, 4, 20)
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	qemuCheck(t, qemuImg, top)
	mustEqual(t, "qemu-img convert of the chain after our writes", qemuRaw(t, qemuImg, top), m)
}
