package fat

import (
	"encoding/binary"
	"fmt"
)

// FormatOptions describes a new FAT file system. Zero fields take the
// defaults of Plan 9's disk/format as used by the 4e installer
// ("disk/format -r 2 -d -b pbs 9fat").
type FormatOptions struct {
	TotalSectors      int64  // size of the volume in sectors; required
	BytesPerSector    int    // default 512
	SectorsPerCluster int    // default 4
	ReservedSectors   int    // default 2 (FAT12/16) or 32 (FAT32)
	RootEntries       int    // FAT12/16 root directory entries; default 512
	NumFATs           int    // default 2
	HiddenSectors     int64  // sectors before the volume on the disk (the partition's LBA)
	OEMName           string // default "Plan9.00"
	Label             string // default "CYLINDRICAL"
	Bits              int    // 12, 16 or 32; 0 picks FAT12 or FAT16 by cluster count
	Media             byte   // default 0xF8 (hard disk)
	// VolumeID is the serial number. Zero means Plan 9's convention: the LBA
	// of the root directory, which Plan 9's pbslba boot sector relies on.
	VolumeID uint32
}

// Format writes a new, empty FAT file system to dev. It writes the boot
// sector (and for FAT32 the FSInfo and backup boot sectors), the FATs and
// the root directory; other reserved sectors are left untouched, so a Plan 9
// partition table in sector 1 survives.
func Format(dev Device, o FormatOptions) error {
	if o.BytesPerSector == 0 {
		o.BytesPerSector = 512
	}
	if o.SectorsPerCluster == 0 {
		o.SectorsPerCluster = 4
	}
	if o.NumFATs == 0 {
		o.NumFATs = 2
	}
	if o.OEMName == "" {
		o.OEMName = "Plan9.00"
	}
	if o.Label == "" {
		o.Label = "CYLINDRICAL"
	}
	if o.Media == 0 {
		o.Media = 0xF8
	}
	if o.ReservedSectors == 0 {
		o.ReservedSectors = 2
		if o.Bits == 32 {
			o.ReservedSectors = 32
		}
	}
	if o.RootEntries == 0 && o.Bits != 32 {
		o.RootEntries = 512
	}
	if o.Bits == 32 {
		o.RootEntries = 0
		if o.ReservedSectors < 8 {
			return fmt.Errorf("fat: format: FAT32 needs at least 8 reserved sectors (FSInfo and backup boot sector)")
		}
	}
	bps, spc := int64(o.BytesPerSector), int64(o.SectorsPerCluster)
	switch {
	case bps != 512 && bps != 1024 && bps != 2048 && bps != 4096:
		return fmt.Errorf("fat: format: bytes per sector %d", bps)
	case spc < 1 || spc > 128 || spc&(spc-1) != 0:
		return fmt.Errorf("fat: format: sectors per cluster %d is not a power of two up to 128", spc)
	case o.Bits != 0 && o.Bits != 12 && o.Bits != 16 && o.Bits != 32:
		return fmt.Errorf("fat: format: FAT width %d", o.Bits)
	}
	rootSecs := (int64(o.RootEntries)*32 + bps - 1) / bps
	fixed := int64(o.ReservedSectors) + rootSecs
	bits := o.Bits
	if bits == 0 {
		bits = 12
	}
	var fatSecs, nclus int64
	for try := 0; try < 3; try++ {
		fatSecs = 1
		for {
			data := o.TotalSectors - fixed - int64(o.NumFATs)*fatSecs
			if data < spc {
				return fmt.Errorf("fat: format: %d sectors is too small", o.TotalSectors)
			}
			nclus = data / spc
			need := ((nclus+2)*int64(bits)/8 + 1 + bps - 1) / bps
			if need <= fatSecs {
				break
			}
			fatSecs = need
		}
		want := 12
		switch {
		case nclus >= 65525:
			want = 32
		case nclus >= 4085:
			want = 16
		}
		if want == bits {
			break
		}
		if o.Bits != 0 || want == 32 {
			return fmt.Errorf("fat: format: %d clusters of %d sectors make FAT%d, not FAT%d: change the cluster size", nclus, spc, want, max(bits, o.Bits))
		}
		bits = want
	}
	if nclus > 0x0FFFFFF5 {
		return fmt.Errorf("fat: format: volume too large")
	}
	rootSec := int64(o.ReservedSectors) + int64(o.NumFATs)*fatSecs
	dataSec := rootSec + rootSecs
	volid := o.VolumeID
	if volid == 0 {
		volid = uint32(o.HiddenSectors + dataSec)
		if bits != 32 {
			volid = uint32(o.HiddenSectors + rootSec)
		}
	}

	bs := make([]byte, bps)
	if bits == 32 {
		copy(bs, []byte{0xEB, 0x58, 0x90})
	} else {
		copy(bs, []byte{0xEB, 0x3C, 0x90})
	}
	copy(bs[3:11], fmt.Sprintf("%-8.8s", o.OEMName))
	binary.LittleEndian.PutUint16(bs[11:], uint16(bps))
	bs[13] = byte(spc)
	binary.LittleEndian.PutUint16(bs[14:], uint16(o.ReservedSectors))
	bs[16] = byte(o.NumFATs)
	binary.LittleEndian.PutUint16(bs[17:], uint16(o.RootEntries))
	if o.TotalSectors < 0x10000 && bits != 32 {
		binary.LittleEndian.PutUint16(bs[19:], uint16(o.TotalSectors))
	} else {
		binary.LittleEndian.PutUint32(bs[32:], uint32(o.TotalSectors))
	}
	bs[21] = o.Media
	binary.LittleEndian.PutUint16(bs[24:], 63)  // sectors per track
	binary.LittleEndian.PutUint16(bs[26:], 255) // heads
	binary.LittleEndian.PutUint32(bs[28:], uint32(o.HiddenSectors))
	ext := 36
	fstype := fmt.Sprintf("FAT%-5d", bits)
	if bits == 32 {
		binary.LittleEndian.PutUint32(bs[36:], uint32(fatSecs))
		binary.LittleEndian.PutUint32(bs[44:], 2) // root cluster
		binary.LittleEndian.PutUint16(bs[48:], 1) // FSInfo sector
		binary.LittleEndian.PutUint16(bs[50:], 6) // backup boot sector
		ext = 64
	} else {
		binary.LittleEndian.PutUint16(bs[22:], uint16(fatSecs))
	}
	bs[ext] = 0x80   // drive number
	bs[ext+2] = 0x29 // extended boot signature
	binary.LittleEndian.PutUint32(bs[ext+3:], volid)
	copy(bs[ext+7:ext+18], fmt.Sprintf("%-11.11s", o.Label))
	copy(bs[ext+18:ext+26], fstype)
	// Boot code: "int 18h" (no bootable OS), then halt forever.
	code := ext + 26
	copy(bs[code:], []byte{0xCD, 0x18, 0xF4, 0xEB, 0xFD})
	bs[510], bs[511] = 0x55, 0xAA

	// FATs: entries 0 and 1 reserved, FAT32 root cluster 2 is a one-cluster chain.
	fat := make([]byte, fatSecs*bps)
	switch bits {
	case 12:
		fat[0], fat[1], fat[2] = o.Media, 0xFF, 0xFF
	case 16:
		binary.LittleEndian.PutUint16(fat[0:], 0xFF00|uint16(o.Media))
		binary.LittleEndian.PutUint16(fat[2:], 0xFFFF)
	case 32:
		binary.LittleEndian.PutUint32(fat[0:], 0x0FFFFF00|uint32(o.Media))
		binary.LittleEndian.PutUint32(fat[4:], 0x0FFFFFFF)
		binary.LittleEndian.PutUint32(fat[8:], 0x0FFFFFFF)
	}
	for i := 0; i < o.NumFATs; i++ {
		if _, err := dev.WriteAt(fat, (int64(o.ReservedSectors)+int64(i)*fatSecs)*bps); err != nil {
			return fmt.Errorf("fat: format: write FAT %d: %w", i, err)
		}
	}
	root := make([]byte, rootSecs*bps)
	if bits == 32 {
		root = make([]byte, spc*bps)
	}
	// A volume label entry matching the boot sector's, as fsck.fat expects.
	copy(root[0:11], fmt.Sprintf("%-11.11s", o.Label))
	root[11] = AttrVolumeID
	if bits == 32 {
		if _, err := dev.WriteAt(root, dataSec*bps); err != nil {
			return fmt.Errorf("fat: format: write root directory: %w", err)
		}
	} else if _, err := dev.WriteAt(root, rootSec*bps); err != nil {
		return fmt.Errorf("fat: format: write root directory: %w", err)
	}
	if bits == 32 {
		fi := make([]byte, bps)
		copy(fi[0:], "RRaA")
		copy(fi[484:], "rrAa")
		binary.LittleEndian.PutUint32(fi[488:], uint32(nclus-1))
		binary.LittleEndian.PutUint32(fi[492:], 3)
		fi[510], fi[511] = 0x55, 0xAA
		for _, w := range []struct {
			b   []byte
			sec int64
		}{{fi, 1}, {bs, 6}, {fi, 7}} {
			if _, err := dev.WriteAt(w.b, w.sec*bps); err != nil {
				return fmt.Errorf("fat: format: write sector %d: %w", w.sec, err)
			}
		}
	}
	// The boot sector last: until it is written the volume is not a FAT.
	if _, err := dev.WriteAt(bs, 0); err != nil {
		return fmt.Errorf("fat: format: write boot sector: %w", err)
	}
	return nil
}
