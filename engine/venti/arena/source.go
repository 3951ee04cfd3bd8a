package arena

import (
	"errors"
	"fmt"
	"io"

	"gridlord/engine/plan9disk"
	"gridlord/engine/qcow2"
)

// PartitionName is the name Plan 9's installer gives the venti arena
// partition inside the plan9 partition of a disk.
const PartitionName = "arenas"

// Source is an arena partition found in a file: the file itself (a copy of
// an arenas partition, like the old distributions' ventidata/arenas) or
// the "arenas" partition of a Plan 9 disk image, raw or qcow2 with its
// backing chain.
type Source struct {
	io.ReaderAt
	Size int64 // bytes in the arena partition
	// Offset is the partition's first byte in the disk it was found in (0
	// when the file is the partition itself).
	Offset int64
	Desc   string // what was found, for messages
	img    *qcow2.Image
}

// OpenSource opens path read-only and locates its arena partition.
func OpenSource(path string) (*Source, error) {
	img, err := qcow2.OpenReadOnly(path)
	if err != nil {
		return nil, fmt.Errorf("open arenas source: %w", err)
	}
	src, err := FindPartition(img, img.Size())
	if err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	src.img = img
	kind := "raw"
	if img.Format() == qcow2.FormatQcow2 {
		kind = "qcow2"
	}
	src.Desc = fmt.Sprintf("%s (%s %s)", path, kind, src.Desc)
	return src, nil
}

// FindPartition returns the arena partition in r, a disk or partition of
// size bytes: r itself when it starts like an arena partition, else the
// "arenas" partition of its Plan 9 partition table.
func FindPartition(r io.ReaderAt, size int64) (*Source, error) {
	h := make([]byte, partHeaderSize)
	if size >= PartBlank+partHeaderSize {
		if _, err := r.ReadAt(h, PartBlank); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read: %w", err)
		}
		if be.Uint32(h) == partMagic {
			return &Source{ReaderAt: r, Size: size, Desc: "arenas partition"}, nil
		}
	}
	t, err := plan9disk.ReadTable(r, size)
	if err != nil {
		return nil, fmt.Errorf("neither a venti arenas partition (no arena partition magic at offset %d) nor a Plan 9 disk: %w", PartBlank, err)
	}
	p, ok := t.Find(PartitionName)
	if !ok {
		var names []string
		for _, p := range t.Parts {
			names = append(names, p.Name)
		}
		return nil, fmt.Errorf("the Plan 9 disk has no %q partition (it has %v): it was not installed with venti", PartitionName, names)
	}
	off, n := p.Start*plan9disk.SectorSize, p.Sectors()*plan9disk.SectorSize
	return &Source{
		ReaderAt: io.NewSectionReader(r, off, n),
		Size:     n,
		Offset:   off,
		Desc:     fmt.Sprintf("disk image, partition %s at byte %d", PartitionName, off),
	}, nil
}

// Close closes the file behind the source, if OpenSource opened one.
func (s *Source) Close() error {
	if s.img == nil {
		return nil
	}
	return s.img.Close()
}
