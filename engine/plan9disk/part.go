package plan9disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MBRTypePlan9 is the MBR partition type of a Plan 9 partition (fdisk.c Type9).
const MBRTypePlan9 = 0x39

// gptPlan9 is the GPT type GUID 9front's edisk gives a Plan 9 partition,
// C91818F9-8025-47AF-89D2-F030D7000C2C, in on-disk (mixed-endian) order.
var gptPlan9 = [16]byte{0xF9, 0x18, 0x18, 0xC9, 0x25, 0x80, 0xAF, 0x47, 0x89, 0xD2, 0xF0, 0x30, 0xD7, 0x00, 0x0C, 0x2C}

// Partition is a named run of sectors, [Start, End) in absolute sectors
// from the start of the disk.
type Partition struct {
	Name       string
	Start, End int64
}

// Sectors is the partition length in sectors.
func (p Partition) Sectors() int64 { return p.End - p.Start }

// Table is the Plan 9 view of a disk.
type Table struct {
	// Scheme is how the plan9 partition was found: "mbr" (type 0x39),
	// "gpt" (9front edisk) or "bare" (the image is the plan9 partition
	// itself, e.g. a copy of /dev/sdC0/plan9).
	Scheme string
	Plan9  Partition   // the outer plan9 partition
	Parts  []Partition // its subpartitions in table order: 9fat, nvram, fossil, ...
}

// Find returns the subpartition called name.
func (t *Table) Find(name string) (Partition, bool) {
	for _, p := range t.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// Section returns the subpartition called name as a Disk on d.
func (t *Table) Section(d Disk, name string) (*Section, error) {
	p, ok := t.Find(name)
	if !ok {
		return nil, fmt.Errorf("no %q partition on this disk (it has %s)", name, t.names())
	}
	return NewSection(d, name, p.Start*SectorSize, p.Sectors()*SectorSize), nil
}

func (t *Table) names() string {
	var n []string
	for _, p := range t.Parts {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

// ReadTable finds the plan9 partition on d and reads its partition table.
func ReadTable(d io.ReaderAt, size int64) (*Table, error) {
	if size < 2*SectorSize {
		return nil, fmt.Errorf("disk image of %d bytes is too small to hold a Plan 9 partition table", size)
	}
	mbr := make([]byte, 2*SectorSize)
	if _, err := d.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read MBR: %w", err)
	}
	t := &Table{}
	disk := size / SectorSize
	if mbr[510] == 0x55 && mbr[511] == 0xAA {
		for i := range 4 {
			e := mbr[446+16*i : 446+16*(i+1)]
			typ := e[4]
			start := int64(binary.LittleEndian.Uint32(e[8:]))
			n := int64(binary.LittleEndian.Uint32(e[12:]))
			switch typ {
			case 0xEE:
				p, err := readGPT(d, disk)
				if err != nil {
					return nil, err
				}
				t.Scheme, t.Plan9 = "gpt", p
			case MBRTypePlan9:
				if start == 0 || n == 0 || start+n > disk {
					return nil, fmt.Errorf("MBR entry %d: plan9 partition at sector %d, %d sectors, does not fit the %d-sector disk", i, start, n, disk)
				}
				t.Scheme, t.Plan9 = "mbr", Partition{Name: "plan9", Start: start, End: start + n}
			}
			if t.Scheme != "" {
				break
			}
		}
	}
	if t.Scheme == "" {
		if !bytes.HasPrefix(mbr[SectorSize:], []byte("part ")) {
			return nil, fmt.Errorf("no Plan 9 partition found: no MBR entry of type 0x39, no GPT plan9 partition, and no partition table text in sector 1")
		}
		t.Scheme, t.Plan9 = "bare", Partition{Name: "plan9", Start: 0, End: disk}
	}
	sec := make([]byte, SectorSize)
	if _, err := d.ReadAt(sec, (t.Plan9.Start+1)*SectorSize); err != nil {
		return nil, fmt.Errorf("read plan9 partition table: %w", err)
	}
	parts, err := ParsePartText(sec, t.Plan9.Sectors())
	if err != nil {
		return nil, err
	}
	for i := range parts {
		parts[i].Start += t.Plan9.Start
		parts[i].End += t.Plan9.Start
	}
	t.Parts = parts
	return t, nil
}

func readGPT(d io.ReaderAt, disk int64) (Partition, error) {
	h := make([]byte, SectorSize)
	if _, err := d.ReadAt(h, SectorSize); err != nil {
		return Partition{}, fmt.Errorf("read GPT header: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return Partition{}, fmt.Errorf("protective MBR but no GPT header in sector 1")
	}
	tab := int64(binary.LittleEndian.Uint64(h[72:]))
	count := int64(binary.LittleEndian.Uint32(h[80:]))
	esz := int64(binary.LittleEndian.Uint32(h[84:]))
	if esz < 128 || esz > 4096 || count > 4096 || tab < 2 || tab >= disk {
		return Partition{}, fmt.Errorf("GPT header: implausible table (lba %d, %d entries of %d bytes)", tab, count, esz)
	}
	buf := make([]byte, count*esz)
	if _, err := d.ReadAt(buf, tab*SectorSize); err != nil {
		return Partition{}, fmt.Errorf("read GPT entries: %w", err)
	}
	for i := range count {
		e := buf[i*esz : (i+1)*esz]
		if !bytes.Equal(e[:16], gptPlan9[:]) {
			continue
		}
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		last := int64(binary.LittleEndian.Uint64(e[40:]))
		if first < 2 || last < first || last >= disk {
			return Partition{}, fmt.Errorf("GPT entry %d: plan9 partition %d-%d does not fit the %d-sector disk", i, first, last, disk)
		}
		return Partition{Name: "plan9", Start: first, End: last + 1}, nil
	}
	return Partition{}, fmt.Errorf("GPT has no Plan 9 partition (type C91818F9-8025-47AF-89D2-F030D7000C2C)")
}

// ParsePartText parses the plan9 partition table text (prep(8)): lines
// "part NAME START END" in sectors relative to the plan9 partition, END
// exclusive, up to the first NUL. Other lines are ignored, as the kernel
// does. limit is the plan9 partition size in sectors.
func ParsePartText(b []byte, limit int64) ([]Partition, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	var parts []Partition
	seen := map[string]bool{}
	for n, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "part" {
			continue
		}
		bad := func(why string) error {
			return fmt.Errorf("plan9 partition table line %d %q: %s", n+1, line, why)
		}
		if len(f) != 4 {
			return nil, bad("want \"part NAME START END\"")
		}
		start, err1 := strconv.ParseInt(f[2], 10, 64)
		end, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || start < 0 || end <= start {
			return nil, bad("bad sector numbers")
		}
		if end > limit {
			return nil, bad(fmt.Sprintf("ends past the plan9 partition (%d sectors)", limit))
		}
		if len(f[1]) > 27 || seen[f[1]] {
			return nil, bad("name too long or repeated")
		}
		seen[f[1]] = true
		parts = append(parts, Partition{Name: f[1], Start: start, End: end})
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("plan9 partition has no partition table (no \"part\" lines in its second sector)")
	}
	return parts, nil
}

// FormatPartText renders parts (relative sectors) as prep writes them.
func FormatPartText(parts []Partition) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "part %s %d %d\n", p.Name, p.Start, p.End)
	}
	return b.String()
}
