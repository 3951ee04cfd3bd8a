package seedbuild

import (
	"fmt"
	"io/fs"
	"os"

	"gridlord/engine/plan9disk"
	"gridlord/engine/qcow2"
)

// The 4e installer's fossil+venti layout of a 1 GiB disk
// (plan9-disk-layout.md), in sectors: the shares of fossil, arenas and
// isect are kept when a disk of another size is laid out.
const (
	fatSectors    = 204800 // 100 MiB
	fossilShare   = 800000
	arenasShare   = 950000
	isectShare    = 50200
	sharesTotal   = fossilShare + arenasShare + isectShare
	minFatSectors = 20480 // 10 MiB: 9load, three kernels and plan9.ini
)

// MinTargetSize is the smallest target disk a profile's seed fits: the
// grid selection (67 MB) fits the 1 GiB layout's 390 MiB fossil with room
// to spare at half of it; the full tree (282 MB) does not fit that fossil
// and needs 2 GiB.
func MinTargetSize(p Profile) int64 {
	if p == ProfileFull {
		return 2 << 30
	}
	return 512 << 20
}

// TargetLayout returns the plan9 partition table (sectors relative to the
// plan9 partition, which starts at sector 63 and runs to the end) of a
// target disk of size bytes: 9fat, nvram, fossil, arenas and isect, in
// the installer's order and proportions.
func TargetLayout(size int64) ([]plan9disk.Partition, error) {
	if size < 64<<20 || size%512 != 0 {
		return nil, fmt.Errorf("target disk of %d bytes: want a multiple of 512 of at least 64 MiB", size)
	}
	n := size/512 - mbrStart
	fat := int64(fatSectors)
	if n < 8*fat { // small disks: a smaller 9fat, still FAT16
		fat = max(minFatSectors, n/8)
	}
	rest := n - fat - 1
	fossil := rest * fossilShare / sharesTotal
	arenas := rest * arenasShare / sharesTotal
	isect := rest - fossil - arenas
	parts := []plan9disk.Partition{{Name: "9fat", Start: 0, End: fat}}
	at := fat
	for _, p := range []struct {
		name string
		n    int64
	}{{"nvram", 1}, {"fossil", fossil}, {"arenas", arenas}, {"isect", isect}} {
		parts = append(parts, plan9disk.Partition{Name: p.name, Start: at, End: at + p.n})
		at += p.n
	}
	return parts, nil
}

// WriteTargetDisk creates the qcow2 target disk of size bytes at name: an
// MBR with the distribution's 386/mbr code and one active Plan 9
// partition, and the plan9 partition table of TargetLayout in its sector
// 1. The partitions themselves are left for the installer's programs
// (disk/format, fossil/flfmt, venti/fmtarenas) to make. On error nothing
// is left at name.
func (d *Distribution) WriteTargetDisk(name string, size int64) (err error) {
	parts, err := TargetLayout(size)
	if err != nil {
		return err
	}
	mbrCode, err := fs.ReadFile(d.FS, "386/mbr")
	if err != nil {
		return fmt.Errorf("target disk: %w", err)
	}
	if err := qcow2.Create(name, qcow2.CreateOptions{Size: size}); err != nil {
		return fmt.Errorf("target disk: %w", err)
	}
	im, err := qcow2.Open(name)
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("target disk: %w", err)
	}
	defer func() {
		if cerr := im.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("target disk: %w", cerr)
		}
		if err != nil {
			os.Remove(name)
		}
	}()
	if err := writePartitions(im, mbrCode, size/512-mbrStart, parts); err != nil {
		return fmt.Errorf("target disk: %w", err)
	}
	return im.Sync()
}

// writePartitions writes the MBR (code, one active 0x39 entry from sector
// 63 for plan9Sectors, signature) and the plan9 partition table text.
func writePartitions(w interface {
	WriteAt([]byte, int64) (int, error)
}, mbrCode []byte, plan9Sectors int64, parts []plan9disk.Partition) error {
	if len(mbrCode) > 512 {
		return fmt.Errorf("386/mbr is %d bytes, more than a sector", len(mbrCode))
	}
	mbr := make([]byte, 512)
	copy(mbr, mbrCode[:min(len(mbrCode), 446)])
	putPartEntry(mbr[446:], mbrStart, plan9Sectors)
	mbr[510], mbr[511] = 0x55, 0xAA
	if _, err := w.WriteAt(mbr, 0); err != nil {
		return err
	}
	_, err := w.WriteAt([]byte(plan9disk.FormatPartText(parts)), (mbrStart+1)*512)
	return err
}
