package plan9disk

import (
	"fmt"
	"time"

	"gridlord/engine/plan9disk/fat"
	"gridlord/engine/plan9disk/ini"
	"gridlord/engine/plan9disk/nvram"
)

// Image is a Plan 9 disk with its partition table read.
type Image struct {
	Disk  Disk
	Table *Table
	now   func() time.Time
}

// Open reads the partition table of d. It writes nothing.
func Open(d Disk) (*Image, error) {
	t, err := ReadTable(d, d.Size())
	if err != nil {
		return nil, err
	}
	return &Image{Disk: d, Table: t, now: time.Now}, nil
}

// Plan9IniName is the file 9load and 9boot read from the root of 9fat.
const Plan9IniName = "plan9.ini"

// NvrFileName is the 9fat file readnvram uses when there is no nvram partition.
const NvrFileName = "plan9.nvr"

// FAT opens the 9fat partition's file system.
func (im *Image) FAT() (*fat.FS, error) {
	s, err := im.Table.Section(im.Disk, "9fat")
	if err != nil {
		return nil, err
	}
	fs, err := fat.Open(s, s.Size(), fat.WithClock(im.now))
	if err != nil {
		return nil, fmt.Errorf("9fat: %w", err)
	}
	return fs, nil
}

// ReadPlan9Ini reads and parses plan9.ini from 9fat.
func (im *Image) ReadPlan9Ini() (*ini.File, error) {
	fs, err := im.FAT()
	if err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(Plan9IniName)
	if err != nil {
		return nil, err
	}
	return ini.Parse(b)
}

// WritePlan9Ini replaces (or creates) plan9.ini in 9fat.
func (im *Image) WritePlan9Ini(f *ini.File) error {
	fs, err := im.FAT()
	if err != nil {
		return err
	}
	return fs.WriteFile(Plan9IniName, f.Bytes())
}

// EditPlan9Ini reads plan9.ini, applies edit and writes it back if edit
// succeeds. Nothing is written when any step before the write fails.
func (im *Image) EditPlan9Ini(edit func(*ini.File) error) error {
	fs, err := im.FAT()
	if err != nil {
		return err
	}
	b, err := fs.ReadFile(Plan9IniName)
	if err != nil {
		return err
	}
	f, err := ini.Parse(b)
	if err != nil {
		return err
	}
	if err := edit(f); err != nil {
		return err
	}
	return fs.WriteFile(Plan9IniName, f.Bytes())
}

// NvramLocation says where the nvram record was found or will be written:
// "partition nvram" or "9fat plan9.nvr".
type NvramLocation string

// ReadNvram reads the nvram record from the nvram partition, or from
// plan9.nvr in 9fat when there is no nvram partition (readnvram's order).
func (im *Image) ReadNvram() (*nvram.Record, NvramLocation, error) {
	if s, err := im.Table.Section(im.Disk, "nvram"); err == nil {
		buf := make([]byte, min(s.Size(), SectorSize))
		if _, err := s.ReadAt(buf, 0); err != nil {
			return nil, "", fmt.Errorf("read nvram partition: %w", err)
		}
		r, err := nvram.Decode(buf)
		return r, "partition nvram", err
	}
	fs, err := im.FAT()
	if err != nil {
		return nil, "", fmt.Errorf("no nvram partition, and %w", err)
	}
	b, err := fs.ReadFile(NvrFileName)
	if err != nil {
		return nil, "", fmt.Errorf("no nvram partition, and 9fat has no %s: %w", NvrFileName, err)
	}
	r, err := nvram.Decode(b)
	return r, "9fat " + NvrFileName, err
}

// WriteNvram writes r to the nvram partition, or as plan9.nvr (one
// sector) in 9fat when the disk has no nvram partition. A Labs record also
// clears the bytes where a 9front AES key would be, so no stale key stays.
func (im *Image) WriteNvram(r *nvram.Record) (NvramLocation, error) {
	b, err := r.Encode()
	if err != nil {
		return "", err
	}
	rec := make([]byte, nvram.NineFrontSize)
	copy(rec, b)
	if s, err := im.Table.Section(im.Disk, "nvram"); err == nil {
		if s.Size() < int64(len(rec)) {
			return "", fmt.Errorf("nvram partition of %d bytes is too small for the record", s.Size())
		}
		if _, err := s.WriteAt(rec, 0); err != nil {
			return "", fmt.Errorf("write nvram partition: %w", err)
		}
		if err := s.Sync(); err != nil {
			return "", fmt.Errorf("write nvram partition: %w", err)
		}
		return "partition nvram", nil
	}
	fs, err := im.FAT()
	if err != nil {
		return "", fmt.Errorf("no nvram partition, and %w", err)
	}
	sec := make([]byte, SectorSize)
	copy(sec, rec)
	if err := fs.WriteFile(NvrFileName, sec); err != nil {
		return "", err
	}
	return "9fat " + NvrFileName, nil
}

// ReadConfig returns the body of a config block (FossilConfig or VentiConfig).
func (im *Image) ReadConfig(b ConfigBlock) (string, error) {
	s, err := im.Table.Section(im.Disk, b.Partition)
	if err != nil {
		return "", err
	}
	return ReadConfig(s, b)
}

// WriteConfig replaces the body of a config block.
func (im *Image) WriteConfig(b ConfigBlock, body string) error {
	s, err := im.Table.Section(im.Disk, b.Partition)
	if err != nil {
		return err
	}
	if s.Size() < b.Offset+b.Max {
		return fmt.Errorf("%s partition of %d bytes is too small for a config block at %d KiB", b.Partition, s.Size(), b.Offset>>10)
	}
	return WriteConfig(s, b, body)
}
