package seedbuild

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/fat"
	"gridlord/engine/plan9disk/nvram"
)

// BootDisk describes a small boot disk made from a distribution's own boot
// programs: an MBR with 386/mbr's code and one active Plan 9 partition at
// sector 63, whose partition table (sector 1) holds a 9fat and a one-sector
// nvram; the 9fat has 386/pbslba's boot code (its volume ID the root
// directory's sector, as pbslba needs) and holds 9load, the kernel and
// plan9.ini.
type BootDisk struct {
	// Ini is the text of plan9.ini (see InstallerIni).
	Ini string
	// Kernel is the distribution's kernel to put in the 9fat (default
	// the Distribution's cpu kernel); plan9.ini's bootfile names it by
	// its base name.
	Kernel string
	// Nvram, if set, is written to the nvram partition.
	Nvram *nvram.Record
	// SizeMiB is the disk's size (default 32).
	SizeMiB int
}

// mbrStart is the plan9 partition's first sector, as Plan 9's fdisk puts it.
const mbrStart = 63

// InstallerIni returns the plan9.ini of a machine that boots the cpu
// kernel (a path like "386/9pccpuf") from sdC0's 9fat and mounts its root
// over tcp from the file server fsAddr (the auth server authAddr), with
// the console on the first serial port.
func InstallerIni(kernel, sysname, fsAddr, authAddr string) string {
	return iniText("bootfile=sdC0!9fat!"+path.Base(kernel), "nobootprompt=tcp", "fs="+fsAddr, "auth="+authAddr, "sysname="+sysname)
}

// iniText is plan9.ini with the lines given and those every machine the
// engine boots has: the installer's cautious settings and the console on
// the first serial port.
func iniText(lines ...string) string {
	return strings.Join(append(lines, "*nomp=1", "*nobiosload=1", "partition=new", "dmamode=yes", "console=0", "baud=9600", ""), "\n")
}

// WriteBootDisk writes the raw boot disk image b describes at name (a new
// file; on error nothing is left there).
func (d *Distribution) WriteBootDisk(name string, b BootDisk) (err error) {
	if b.SizeMiB == 0 {
		b.SizeMiB = 32
	}
	if b.SizeMiB < 8 || b.SizeMiB > 2048 {
		return fmt.Errorf("boot disk of %d MiB: want 8 to 2048", b.SizeMiB)
	}
	if b.Kernel == "" {
		b.Kernel = d.Kernel
	}
	read := func(p string, max int64) ([]byte, error) {
		data, err := fs.ReadFile(d.FS, p)
		if err != nil {
			return nil, fmt.Errorf("boot disk: %w", err)
		}
		if int64(len(data)) > max {
			return nil, fmt.Errorf("boot disk: %s is %d bytes, more than the %d it may be", p, len(data), max)
		}
		return data, nil
	}
	mbrCode, err := read("386/mbr", 512)
	if err != nil {
		return err
	}
	pbs, err := read("386/pbslba", 510)
	if err != nil {
		return err
	}
	if len(pbs) <= 0x3E {
		return fmt.Errorf("boot disk: 386/pbslba is %d bytes, too small to hold boot code", len(pbs))
	}
	loader, err := read("386/9load", 4<<20)
	if err != nil {
		return err
	}
	kernel, err := read(b.Kernel, 64<<20)
	if err != nil {
		return err
	}

	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("boot disk: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("boot disk: %w", cerr)
		}
		if err != nil {
			os.Remove(name)
		}
	}()
	sectors := int64(b.SizeMiB) << 11
	if err := f.Truncate(sectors * 512); err != nil {
		return fmt.Errorf("boot disk: %w", err)
	}
	plan9Sectors := sectors - mbrStart
	parts := []plan9disk.Partition{
		{Name: "9fat", Start: 0, End: plan9Sectors - 1},
		{Name: "nvram", Start: plan9Sectors - 1, End: plan9Sectors},
	}

	if err := writePartitions(f, mbrCode, plan9Sectors, parts); err != nil {
		return fmt.Errorf("boot disk: %w", err)
	}

	disk := osDisk{f, sectors * 512}
	vol := plan9disk.NewSection(disk, "9fat", mbrStart*512, parts[0].Sectors()*512)
	if err := fat.Format(vol, fat.FormatOptions{TotalSectors: parts[0].Sectors(), HiddenSectors: mbrStart}); err != nil {
		return fmt.Errorf("boot disk: %w", err)
	}
	// disk/format -b: the boot code goes after the BIOS parameter block.
	boot := make([]byte, 512)
	if _, err := vol.ReadAt(boot, 0); err != nil {
		return fmt.Errorf("boot disk: %w", err)
	}
	copy(boot[0x3E:510], pbs[0x3E:])
	if _, err := vol.WriteAt(boot, 0); err != nil {
		return fmt.Errorf("boot disk: %w", err)
	}
	fsys, err := fat.Open(vol, vol.Size())
	if err != nil {
		return fmt.Errorf("boot disk: %w", err)
	}
	// 9load first, so that it is contiguous right after the root.
	for _, file := range []struct {
		name string
		data []byte
	}{{"9load", loader}, {path.Base(b.Kernel), kernel}, {"plan9.ini", []byte(b.Ini)}} {
		if err := fsys.WriteFile(file.name, file.data); err != nil {
			return fmt.Errorf("boot disk: write %s to the 9fat: %w", file.name, err)
		}
	}
	if b.Nvram != nil {
		rec, err := b.Nvram.Encode()
		if err != nil {
			return fmt.Errorf("boot disk: nvram: %w", err)
		}
		if _, err := f.WriteAt(rec, (mbrStart+parts[1].Start)*512); err != nil {
			return fmt.Errorf("boot disk: %w", err)
		}
	}
	return f.Sync()
}

// putPartEntry writes an active MBR entry of type 0x39 for sectors from
// start, with CHS values for 255 heads and 63 sectors a track (saturated
// beyond cylinder 1023, as fdisk does).
func putPartEntry(e []byte, start, n int64) {
	e[0] = 0x80
	copy(e[1:4], chs(start))
	e[4] = plan9disk.MBRTypePlan9
	copy(e[5:8], chs(start+n-1))
	binary.LittleEndian.PutUint32(e[8:], uint32(start))
	binary.LittleEndian.PutUint32(e[12:], uint32(n))
}

func chs(lba int64) []byte {
	c, h, s := lba/(255*63), (lba/63)%255, lba%63+1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

// osDisk is a plan9disk.Disk over an open file.
type osDisk struct {
	*os.File
	size int64
}

func (d osDisk) Size() int64 { return d.size }

var _ plan9disk.Disk = osDisk{}
