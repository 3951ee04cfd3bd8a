package plan9disk_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/ini"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/plan9disk/plan9disktest"
	"gridlord/engine/qcow2"
	"gridlord/testing/testenv"
)

func openImage(t testing.TB, path string) (*plan9disk.File, *plan9disk.Image) {
	t.Helper()
	f, err := plan9disk.OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	im, err := plan9disk.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	return f, im
}

func TestTableOfInstalledLayout(t *testing.T) {
	_, im := openImage(t, plan9disktest.BuildNative(t))
	if im.Table.Scheme != "mbr" || im.Table.Plan9.Start != 63 || im.Table.Plan9.End != 2096640 {
		t.Fatalf("plan9 partition %+v via %s", im.Table.Plan9, im.Table.Scheme)
	}
	// Absolute sectors as the kernel's ctl file shows them.
	want := "9fat 63 204863, nvram 204863 204864, fossil 204864 1004864, arenas 1004864 1954864, isect 1954864 2005064"
	var got []string
	for _, p := range im.Table.Parts {
		got = append(got, fmt.Sprintf("%s %d %d", p.Name, p.Start, p.End))
	}
	if strings.Join(got, ", ") != want {
		t.Fatalf("parts %s\nwant  %s", strings.Join(got, ", "), want)
	}
	fs, err := im.FAT()
	if err != nil {
		t.Fatal(err)
	}
	if fs.Type() != 16 || fs.ClusterSize() != 2048 {
		t.Fatalf("9fat is FAT%d with %d-byte clusters", fs.Type(), fs.ClusterSize())
	}
	f, err := im.ReadPlan9Ini()
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Bytes()) != plan9disktest.Plan9Ini {
		t.Fatalf("plan9.ini = %q", f.Bytes())
	}
}

func TestBareAndGPT(t *testing.T) {
	text := plan9disk.FormatPartText([]plan9disk.Partition{{Name: "9fat", Start: 0, End: 10}, {Name: "nvram", Start: 10, End: 11}})
	// bare: the image is the plan9 partition itself
	bare := make([]byte, 64*512)
	copy(bare[512:], text)
	tab, err := plan9disk.ReadTable(bytes.NewReader(bare), int64(len(bare)))
	if err != nil || tab.Scheme != "bare" || len(tab.Parts) != 2 || tab.Parts[1].Start != 10 {
		t.Fatalf("bare: %+v, %v", tab, err)
	}
	// GPT: protective MBR, header at LBA 1, entries at LBA 2, plan9 at 34..99
	gpt := make([]byte, 200*512)
	gpt[446+4] = 0xEE
	gpt[510], gpt[511] = 0x55, 0xAA
	h := gpt[512:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	e := gpt[2*512+128:] // entry 1
	copy(e, []byte{0xF9, 0x18, 0x18, 0xC9, 0x25, 0x80, 0xAF, 0x47, 0x89, 0xD2, 0xF0, 0x30, 0xD7, 0x00, 0x0C, 0x2C})
	binary.LittleEndian.PutUint64(e[32:], 34)
	binary.LittleEndian.PutUint64(e[40:], 99)
	copy(gpt[35*512:], text)
	tab, err = plan9disk.ReadTable(bytes.NewReader(gpt), int64(len(gpt)))
	if err != nil || tab.Scheme != "gpt" || tab.Plan9.Start != 34 || tab.Plan9.End != 100 || tab.Parts[1].Start != 44 {
		t.Fatalf("gpt: %+v, %v", tab, err)
	}
}

func TestConfigBlocks(t *testing.T) {
	f, im := openImage(t, plan9disktest.BuildNative(t))
	body, err := im.ReadConfig(plan9disk.FossilConfig())
	if err != nil || body != plan9disktest.FossilConfig {
		t.Fatalf("fossil config %q, %v", body, err)
	}
	vbody, err := im.ReadConfig(plan9disk.VentiConfig())
	if err != nil || vbody != plan9disktest.VentiConfig {
		t.Fatalf("venti config %q, %v", vbody, err)
	}
	nb := plan9disk.SetFossilVenti(body, "main", "tcp!10.0.2.20!17034")
	want := "fsys main config /dev/sdC0/fossil\nfsys main venti tcp!10.0.2.20!17034\nfsys main open  -c 3000\nfsys main snaptime -s 60 -a 0500 -t 2880\n"
	if nb != want {
		t.Fatalf("SetFossilVenti:\n%s", nb)
	}
	if again := plan9disk.SetFossilVenti(nb, "main", "tcp!venti!17034"); strings.Count(again, "fsys main venti") != 1 || !strings.Contains(again, "tcp!venti!17034") {
		t.Fatalf("replace:\n%s", again)
	}
	if err := im.WriteConfig(plan9disk.FossilConfig(), nb); err != nil {
		t.Fatal(err)
	}
	// Raw check at the documented offset: header, text, then NULs to 1 KiB.
	raw := make([]byte, 1024)
	f.ReadAt(raw, (63+204801)*512+127*1024)
	text := "fossil config\n" + want
	if string(raw[:len(text)]) != text || !bytes.Equal(raw[len(text):], make([]byte, 1024-len(text))) {
		t.Fatalf("raw block %q", raw)
	}
	if err := im.WriteConfig(plan9disk.VentiConfig(), strings.Repeat("x", 9000)); err == nil {
		t.Fatal("oversized venti config accepted")
	}
}

func TestNvramPartitionRoundTrip(t *testing.T) {
	f, im := openImage(t, plan9disktest.BuildNative(t))
	if _, _, err := im.ReadNvram(); !errors.Is(err, nvram.ErrBlank) {
		t.Fatalf("fresh nvram: %v", err)
	}
	for _, l := range []nvram.Layout{nvram.NineFront, nvram.Labs} {
		r := &nvram.Record{Layout: l, AuthID: "bootes", AuthDom: "grid"}
		if err := r.SetPassword("password"); err != nil {
			t.Fatal(err)
		}
		where, err := im.WriteNvram(r)
		if err != nil || where != "partition nvram" {
			t.Fatalf("write: %s, %v", where, err)
		}
		got, _, err := im.ReadNvram()
		if err != nil || *got != *r {
			t.Fatalf("%v: read %+v, %v", l, got, err)
		}
		// The bytes the 4e kernel reads: partition offset (63+204800)*512.
		raw := make([]byte, 126)
		f.ReadAt(raw, (63+204800)*512)
		if string(raw[31:37]) != "bootes" || raw[59] != nvram.Checksum(raw[31:59]) {
			t.Fatalf("raw record % x", raw)
		}
		if l == nvram.Labs && !bytes.Equal(raw[109:], make([]byte, 17)) {
			t.Fatal("labs record left a stale AES key")
		}
	}
}

// withoutNvramPartition rewrites the partition table without "nvram", so
// the record goes to plan9.nvr in 9fat.
func withoutNvramPartition(t *testing.T, path string) {
	var parts []plan9disk.Partition
	for _, p := range plan9disktest.Parts() {
		if p.Name != "nvram" {
			parts = append(parts, p)
		}
	}
	sec := make([]byte, 512)
	copy(sec, plan9disk.FormatPartText(parts))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteAt(sec, 64*512)
}

func TestNvramInFat(t *testing.T) {
	path := plan9disktest.BuildNative(t)
	withoutNvramPartition(t, path)
	_, im := openImage(t, path)
	r := &nvram.Record{Layout: nvram.Labs, AuthID: "bootes", AuthDom: "grid"}
	r.SetPassword("secret password")
	where, err := im.WriteNvram(r)
	if err != nil || where != "9fat plan9.nvr" {
		t.Fatalf("write: %s, %v", where, err)
	}
	got, where, err := im.ReadNvram()
	if err != nil || *got != *r || where != "9fat plan9.nvr" {
		t.Fatalf("read %+v from %s: %v", got, where, err)
	}
}

func sum(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// TestBadImagesFailUnchanged damages a fixture in several ways; every edit
// must fail with an error and leave the file byte-identical.
func TestBadImagesFailUnchanged(t *testing.T) {
	base := plan9disktest.BuildNativeSmall(t)
	orig, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	damage := []struct {
		name string
		off  int64
		data []byte
	}{
		{"no partition", 446 + 4, []byte{0x83}},
		{"table past disk", 64 * 512, []byte("part 9fat 0 99999999\n")},
		{"9fat past table", 64 * 512, []byte("part 9fat 0 23654\n")},
		{"no table", 64 * 512, make([]byte, 512)},
		{"fat boot sector", 63*512 + 11, []byte{0, 0, 0}},
		{"fat chain loop", (63 + 2) * 512, bytes.Repeat([]byte{3, 0}, 256)}, // first FAT: every entry -> 3
		{"fat too big", 63*512 + 19, []byte{0xFF, 0xFF}},                    // more sectors than the partition
		{"venti header", (63+22529)*512 + 248*1024, []byte("xxxxx config")}, // only breaks venti
	}
	edits := map[string]func(im *plan9disk.Image) error{
		"plan9.ini": func(im *plan9disk.Image) error {
			return im.EditPlan9Ini(func(f *ini.File) error { return f.Set("venti", "tcp!10.0.2.20!17034") })
		},
		"venti": func(im *plan9disk.Image) error {
			body, err := im.ReadConfig(plan9disk.VentiConfig())
			if err != nil {
				return err
			}
			return im.WriteConfig(plan9disk.VentiConfig(), body+"addr tcp!*!17034\n")
		},
	}
	dir := t.TempDir()
	for _, d := range damage {
		path := filepath.Join(dir, "bad.img")
		b := append([]byte(nil), orig...)
		copy(b[d.off:], d.data)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		failed := 0
		for name, edit := range edits {
			before := sum(t, path)
			f, err := plan9disk.OpenFile(path, true)
			if err != nil {
				t.Fatal(err)
			}
			im, err := plan9disk.Open(f)
			if err == nil {
				err = edit(im)
			}
			f.Close()
			if err != nil {
				failed++
				t.Logf("%s / %s: %v", d.name, name, err)
				if sum(t, path) != before {
					t.Fatalf("%s / %s: failed edit changed the image", d.name, name)
				}
			}
		}
		if failed == 0 {
			t.Errorf("%s: every edit succeeded on a damaged image", d.name)
		}
	}
	// A truncated image.
	path := filepath.Join(dir, "short.img")
	os.WriteFile(path, orig[:700], 0o644)
	f, _ := plan9disk.OpenFile(path, true)
	defer f.Close()
	if _, err := plan9disk.Open(f); err == nil {
		t.Error("truncated image opened")
	}
}

// FuzzReadTable: the partition table reader never panics on any first 64
// sectors, and what it accepts stays inside the disk.
func FuzzReadTable(f *testing.F) {
	mbr := make([]byte, 4*512)
	mbr[446+4] = 0x39
	binary.LittleEndian.PutUint32(mbr[446+8:], 1)
	binary.LittleEndian.PutUint32(mbr[446+12:], 3)
	mbr[510], mbr[511] = 0x55, 0xAA
	copy(mbr[2*512:], "part 9fat 0 1\npart nvram 1 2\n")
	f.Add(mbr)
	bare := make([]byte, 4*512)
	copy(bare[512:], "part 9fat 0 3\n")
	f.Add(bare)
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := plan9disk.ReadTable(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		n := int64(len(b)) / 512
		for _, p := range tab.Parts {
			if p.Start < tab.Plan9.Start || p.End > tab.Plan9.End || tab.Plan9.End > n || p.Start >= p.End {
				t.Fatalf("partition %+v outside plan9 %+v / disk %d", p, tab.Plan9, n)
			}
		}
	})
}

// TestEditPlan9IniWithTools is issue 5's check: plan9.ini edited inside a
// fixture built by mkfs.fat/mtools reads back with mtype, the other files
// are unchanged, fsck.fat -n is clean, and the rest of the disk is untouched.
func TestEditPlan9IniWithTools(t *testing.T) {
	mtype := testenv.Tool(t, "mtype")
	fsck := testenv.Tool(t, "fsck.fat")
	dd := testenv.Tool(t, "dd")
	path := plan9disktest.Build(t)
	outside := func() []byte { // MBR, table, nvram sector, config blocks
		f, _ := os.Open(path)
		defer f.Close()
		var b []byte
		for _, r := range [][2]int64{{0, 1024}, {(63 + 204800) * 512, 512}, {(63+204801)*512 + 127*1024, 1024}, {(63+1004801)*512 + 248*1024, 8192}} {
			buf := make([]byte, r[1])
			f.ReadAt(buf, r[0])
			b = append(b, buf...)
		}
		return b
	}
	before := outside()
	_, im := openImage(t, path)
	err := im.EditPlan9Ini(func(f *ini.File) error {
		f.Set("bootfile", "sdC0!9fat!9pccpuf")
		f.Set("venti", "tcp!10.0.2.20!17034")
		f.Set("nobootprompt", "local!#S/sdC0/fossil")
		f.Delete("installmode")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	at := path + "@@" + fmt.Sprint(63*512)
	mt := func(name string) string {
		out, err := exec.Command(mtype, "-i", at, "::"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("mtype %s: %v\n%s", name, err, out)
		}
		return string(out)
	}
	got := mt("plan9.ini")
	want := strings.Replace(strings.Replace(strings.Replace(plan9disktest.Plan9Ini,
		"9pcf\n", "9pccpuf\n", 1), "venti=#S/sdC0/arenas", "venti=tcp!10.0.2.20!17034", 1), "installmode=text\n", "", 1) +
		"nobootprompt=local!#S/sdC0/fossil\n"
	if got != want {
		t.Fatalf("mtype plan9.ini:\n%s\nwant\n%s", got, want)
	}
	if mt("9pcf") != string(plan9disktest.Kernel()) {
		t.Fatal("9pcf changed")
	}
	if !bytes.Equal(before, outside()) {
		t.Fatal("bytes outside 9fat changed")
	}
	vol := filepath.Join(t.TempDir(), "9fat.img")
	if out, err := exec.Command(dd, "if="+path, "of="+vol, "bs=512", "skip=63", "count=204800", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, out)
	}
	if out, err := exec.Command(fsck, "-n", vol).CombinedOutput(); err != nil || strings.Contains(string(out), "unchanged") {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
}

// BenchmarkRewritePlan9Ini measures one offline plan9.ini edit on a raw
// 1 GiB Plan 9-layout image: open the image, read the partition table, open
// 9fat, read, edit and rewrite plan9.ini, fsync and close.
func BenchmarkRewritePlan9Ini(b *testing.B) {
	path := plan9disktest.BuildNative(b)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		f, err := plan9disk.OpenFile(path, true)
		if err != nil {
			b.Fatal(err)
		}
		im, err := plan9disk.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := im.EditPlan9Ini(func(f *ini.File) error { return f.Set("sysname", fmt.Sprint("cpu", i)) }); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewritePlan9IniOverlay is the node-configuration case: a fresh
// qcow2 linked clone of a Plan 9-layout seed, opened, plan9.ini rewritten
// (copy-on-write of the touched clusters), closed. Creating the overlay is
// not timed (BenchmarkClone10G in engine/qcow2 measures it).
func BenchmarkRewritePlan9IniOverlay(b *testing.B) {
	seed := plan9disktest.BuildNative(b)
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		top := filepath.Join(dir, fmt.Sprintf("node%d.qcow2", i))
		if err := qcow2.CreateOverlay(top, seed); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		img, err := qcow2.Open(top)
		if err != nil {
			b.Fatal(err)
		}
		im, err := plan9disk.Open(img)
		if err != nil {
			b.Fatal(err)
		}
		if err := im.EditPlan9Ini(func(f *ini.File) error { return f.Set("sysname", fmt.Sprint("cpu", i)) }); err != nil {
			b.Fatal(err)
		}
		if err := img.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineWriteFileSync is the baseline for the ones above: write
// a plan9.ini-sized file to the host file system and fsync it.
func BenchmarkBaselineWriteFileSync(b *testing.B) {
	path := filepath.Join(b.TempDir(), "plan9.ini")
	data := []byte(plan9disktest.Plan9Ini)
	for b.Loop() {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Write(data)
		f.Sync()
		f.Close()
	}
}

// checkInstalledLayout compares an image's MBR and 9fat boot sector with
// the installed 4e disk (plan9-disk-layout.md, plan9-boot-facts.md 1.1-1.3).
func checkInstalledLayout(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 512*2)
	f.ReadAt(b, 0)
	if got := fmt.Sprintf("% x", b[446:458]); got != "80 01 01 00 39 3f bf 07 3f 00 00 00" ||
		binary.LittleEndian.Uint32(b[458:]) != 2096577 || b[510] != 0x55 || b[511] != 0xAA {
		t.Errorf("MBR entry % x", b[446:462])
	}
	bs := make([]byte, 512)
	f.ReadAt(bs, 63*512)
	le16 := func(o int) int { return int(binary.LittleEndian.Uint16(bs[o:])) }
	le32 := func(o int) int { return int(binary.LittleEndian.Uint32(bs[o:])) }
	got := fmt.Sprintf("oem=%s bps=%d spc=%d res=%d fats=%d root=%d media=%#x fatsz=%d hidden=%d total=%d drive=%#x volid=%#x label=%s",
		bs[3:11], le16(11), bs[13], le16(14), bs[16], le16(17), bs[21], le16(22), le32(28), max(le16(19), le32(32)), bs[36], le32(39), bs[43:54])
	want := "oem=Plan9.00 bps=512 spc=4 res=2 fats=2 root=512 media=0xf8 fatsz=200 hidden=63 total=204800 drive=0x80 volid=0x1d1 label=CYLINDRICAL"
	if got != want {
		t.Errorf("9fat boot sector\n got %s\nwant %s", got, want)
	}
	sec := make([]byte, 512)
	f.ReadAt(sec, 64*512)
	if !strings.HasPrefix(string(sec), "part 9fat 0 204800\npart nvram 204800 204801\npart fossil 204801 1004801\npart arenas 1004801 1954801\npart isect 1954801 2005001\n\x00") {
		t.Errorf("partition table %q", sec[:140])
	}
}

func TestNativeFixtureMatchesInstalledDisk(t *testing.T) {
	checkInstalledLayout(t, plan9disktest.BuildNative(t))
}

func TestToolFixtureMatchesInstalledDisk(t *testing.T) {
	checkInstalledLayout(t, plan9disktest.Build(t))
}

// TestNvramFileWithTools writes the record as plan9.nvr into a mkfs.fat
// 9fat (no nvram partition) and reads it back with mtype; fsck.fat stays clean.
func TestNvramFileWithTools(t *testing.T) {
	mtype := testenv.Tool(t, "mtype")
	mdir := testenv.Tool(t, "mdir")
	path := plan9disktest.Build(t)
	withoutNvramPartition(t, path)
	_, im := openImage(t, path)
	r := &nvram.Record{Layout: nvram.Labs, AuthID: "bootes", AuthDom: "grid"}
	r.SetPassword("password")
	if _, err := im.WriteNvram(r); err != nil {
		t.Fatal(err)
	}
	at := path + "@@" + fmt.Sprint(63*512)
	out, err := exec.Command(mtype, "-i", at, "::plan9.nvr").Output()
	if err != nil || len(out) != 512 {
		t.Fatalf("mtype plan9.nvr: %d bytes, %v", len(out), err)
	}
	got, err := nvram.Decode(out)
	if err != nil || *got != *r {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// Plan 9's finddosfile matches the 8.3 name PLAN9   NVR in the root.
	listing, _ := exec.Command(mdir, "-i", at, "::").CombinedOutput()
	if !strings.Contains(strings.ToUpper(string(listing)), "PLAN9    NVR") {
		t.Fatalf("mdir:\n%s", listing)
	}
}
