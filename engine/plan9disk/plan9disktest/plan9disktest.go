// Package plan9disktest builds raw disk images laid out exactly like the
// Plan 9 4e fossil+venti installation recorded in
// /work/shared/docs/plan9-disk-layout.md, for other packages' tests.
//
// Build uses the standard tools (mkfs.fat, mcopy, mmd) and is for
// integration tests; BuildNative writes the same layout with Gridlord's own
// FAT code and needs no tools, for the plain test tier and benchmarks.
package plan9disktest

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/fat"
	"gridlord/testing/testenv"
)

// The observed layout, in sectors.
const (
	DiskSectors  = 2097152 // 1 GiB
	Plan9Start   = 63      // MBR partition 0, type 0x39
	Plan9Sectors = 2096577 // as observed: it ends on fdisk's cylinder boundary (sector 2096640), not at the disk's end
	FatSectors   = 204800
	FatVolumeID  = 0x1D1 // LBA of the 9fat root directory: 63 + 2 + 2*200
)

// Parts is the plan9 partition table of the installed disk (relative sectors).
func Parts() []plan9disk.Partition {
	return []plan9disk.Partition{
		{Name: "9fat", Start: 0, End: 204800},
		{Name: "nvram", Start: 204800, End: 204801},
		{Name: "fossil", Start: 204801, End: 1004801},
		{Name: "arenas", Start: 1004801, End: 1954801},
		{Name: "isect", Start: 1954801, End: 2005001},
	}
}

// Plan9Ini is the installer's plan9.ini.
const Plan9Ini = `bootfile=sdC0!9fat!9pcf
bootargs=local!#S/sdC0/fossil
bootdisk=local!#S/sdC0/fossil
venti=#S/sdC0/arenas
*nobiosload=1
*nomp=1
baud=9600
console=0
dmamode=yes
installmode=text
partition=new
mouseport=ps2
monitor=xga
vgasize=1024x768x16
`

// FossilConfig and VentiConfig are the config block bodies (after the
// header line) read from the installed disk.
const (
	FossilConfig = "fsys main config /dev/sdC0/fossil\nfsys main open  -c 3000\nfsys main snaptime -s 60 -a 0500 -t 2880\n"
	VentiConfig  = "index main\nisect /dev/sdC0/isect\narenas /dev/sdC0/arenas\n"
)

// Kernel is the stand-in content of 9pcf (a real kernel is 3.6 MB; this is
// enough to span many clusters).
func Kernel() []byte {
	b := make([]byte, 300<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// Build writes a Plan 9-layout raw image into a temp dir with mkfs.fat and
// mtools and returns its path. It needs the integration tier.
func Build(t testing.TB) string {
	t.Helper()
	mkfs := testenv.Tool(t, "mkfs.fat")
	mcopy := testenv.Tool(t, "mcopy")
	mmd := testenv.Tool(t, "mmd")
	dir := t.TempDir()
	img := filepath.Join(dir, "plan9.img")
	f := create(t, img, DiskSectors)
	defer f.Close()
	writeMBR(t, f, Plan9Sectors)
	// 9fat exactly as minfo showed it on the installed disk.
	runTool(t, mkfs, "-a", "-F", "16", "-s", "4", "-R", "2", "-r", "512", "-f", "2", "-S", "512",
		"-h", strconv.Itoa(Plan9Start), "-M", "0xF8", "-n", "CYLINDRICAL", "-i", "000001D1", "-D", "0x80",
		"--offset", strconv.Itoa(Plan9Start), img, strconv.Itoa(FatSectors/2))
	// mkfs.fat says "mkfs.fat" and (with --offset) one sector too many; Plan 9's format says
	// "Plan9.00" and the volume is exactly the partition.
	writeAt(t, f, []byte("Plan9.00"), Plan9Start*512+3)
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], FatSectors)
	writeAt(t, f, n[:], Plan9Start*512+32)
	writeTables(t, f, Parts())
	at := img + "@@" + strconv.Itoa(Plan9Start*512)
	files := map[string][]byte{"plan9.ini": []byte(Plan9Ini), "9pcf": Kernel()}
	for name, data := range files {
		src := filepath.Join(dir, name)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, mcopy, "-i", at, src, "::"+name)
	}
	runTool(t, mmd, "-i", at, "::4e")
	return img
}

// BuildNative writes the same layout with Gridlord's own FAT code (no
// external tools) and returns the image path.
func BuildNative(t testing.TB) string {
	t.Helper()
	return buildNative(t, DiskSectors, Plan9Sectors, Parts())
}

// SmallParts is a scaled-down table (12 MiB disk, FAT16 9fat of 10 MiB)
// with the same partitions and config block offsets, for tests that copy
// or hash whole images.
func SmallParts() []plan9disk.Partition {
	return []plan9disk.Partition{
		{Name: "9fat", Start: 0, End: 20480},
		{Name: "nvram", Start: 20480, End: 20481},
		{Name: "fossil", Start: 20481, End: 22529},
		{Name: "arenas", Start: 22529, End: 23553},
		{Name: "isect", Start: 23553, End: 23653},
	}
}

// SmallDiskSectors is the size of the BuildNativeSmall image.
const SmallDiskSectors = Plan9Start + 23653

// BuildNativeSmall is BuildNative with SmallParts.
func BuildNativeSmall(t testing.TB) string {
	t.Helper()
	return buildNative(t, SmallDiskSectors, SmallDiskSectors-Plan9Start, SmallParts())
}

func buildNative(t testing.TB, diskSectors, plan9Sectors int64, parts []plan9disk.Partition) string {
	img := filepath.Join(t.TempDir(), "plan9.img")
	f := create(t, img, diskSectors)
	defer f.Close()
	writeMBR(t, f, plan9Sectors)
	fatSectors := parts[0].End
	vol := plan9disk.NewSection(fileDisk{f}, "9fat", Plan9Start*512, fatSectors*512)
	if err := fat.Format(vol, fat.FormatOptions{TotalSectors: fatSectors, HiddenSectors: Plan9Start}); err != nil {
		t.Fatal(err)
	}
	writeTables(t, f, parts)
	fs, err := fat.Open(vol, vol.Size())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"plan9.ini": []byte(Plan9Ini), "9pcf": Kernel()} {
		if err := fs.WriteFile(name, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Mkdir("4e"); err != nil {
		t.Fatal(err)
	}
	return img
}

type fileDisk struct{ *os.File }

func (f fileDisk) Size() int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

func create(t testing.TB, path string, sectors int64) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sectors * 512); err != nil { // sparse
		t.Fatal(err)
	}
	return f
}

func writeAt(t testing.TB, f *os.File, b []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// writeMBR writes the installed disk's MBR partition entry
// (80 01 01 00 39 3f bf 07, LBA 63, 2096577 sectors) and the signature.
func writeMBR(t testing.TB, f *os.File, plan9Sectors int64) {
	t.Helper()
	mbr := make([]byte, 512)
	e := mbr[446:]
	copy(e, []byte{0x80, 0x01, 0x01, 0x00, 0x39, 0x3f, 0xbf, 0x07})
	binary.LittleEndian.PutUint32(e[8:], Plan9Start)
	binary.LittleEndian.PutUint32(e[12:], uint32(plan9Sectors))
	mbr[510], mbr[511] = 0x55, 0xAA
	writeAt(t, f, mbr, 0)
}

// writeTables writes the partition table text and the config blocks.
func writeTables(t testing.TB, f *os.File, p []plan9disk.Partition) {
	t.Helper()
	writeAt(t, f, []byte(plan9disk.FormatPartText(p)), (Plan9Start+1)*512)
	fossil := (Plan9Start + p[2].Start) * 512
	arenas := (Plan9Start + p[3].Start) * 512
	writeAt(t, f, []byte("fossil config\n"+FossilConfig), fossil+127*1024)
	writeAt(t, f, []byte("venti config\n"+VentiConfig), arenas+248*1024)
}

func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
