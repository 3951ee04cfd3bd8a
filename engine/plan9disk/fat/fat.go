// Package fat reads and writes FAT12, FAT16 and FAT32 file systems, enough
// to edit the small 9fat partition of a Plan 9 disk offline: list
// directories, read files, and create, replace or remove files and
// directories in the root and in subdirectories.
//
// Locking rule: an FS is not safe for concurrent use; callers serialise.
//
// Crash behaviour: a write allocates and fills new clusters, writes every FAT
// copy, then points the directory entry at the new chain and only then frees
// the old chain. An interruption leaves at worst lost clusters (which
// fsck.fat reclaims), never a directory entry that points at unwritten data.
// Everything that could make a write fail (bad names, a full volume, a full
// root directory, a damaged chain) is checked before the first byte is
// written, so a refused write leaves the device byte-identical.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Device is the storage a file system lives on: a partition of a raw disk
// image, a qcow2 image, or a plain file.
type Device interface {
	io.ReaderAt
	io.WriterAt
}

// ErrNotExist is returned (wrapped) when a path names no file or directory.
var ErrNotExist = errors.New("file does not exist")

// Attribute bits of a directory entry.
const (
	AttrReadOnly  = 0x01
	AttrHidden    = 0x02
	AttrSystem    = 0x04
	AttrVolumeID  = 0x08
	AttrDirectory = 0x10
	AttrArchive   = 0x20
	attrLFN       = 0x0F
)

// FS is an open FAT file system on a Device.
type FS struct {
	dev        Device
	typ        int   // 12, 16 or 32
	bps        int64 // bytes per sector
	spc        int64 // sectors per cluster
	reserved   int64 // reserved sectors before the first FAT
	nfats      int64
	fatSecs    int64 // sectors per FAT
	rootEnts   int64 // root entries (FAT12/16)
	totalSecs  int64
	rootSec    int64 // first sector of the fixed root directory (FAT12/16)
	rootClus   uint32
	dataSec    int64  // first sector of cluster 2
	nclus      uint32 // number of data clusters; valid clusters are 2..nclus+1
	fsinfoSec  int64  // FAT32 FSInfo sector, 0 when absent
	fat        []byte // the first FAT, in memory
	dirty      map[int64]bool
	clusterLen int64
	now        func() time.Time
}

// Option configures Open.
type Option func(*FS)

// WithClock sets the clock used for directory entry timestamps (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(fs *FS) { fs.now = now } }

// Type reports the FAT width: 12, 16 or 32.
func (fs *FS) Type() int { return fs.typ }

// ClusterSize reports the cluster size in bytes.
func (fs *FS) ClusterSize() int64 { return fs.clusterLen }

// Open checks the boot sector of the file system on dev, which must hold at
// least size bytes, and loads its first FAT. It writes nothing.
func Open(dev Device, size int64, opts ...Option) (*FS, error) {
	bs := make([]byte, 512)
	if _, err := dev.ReadAt(bs, 0); err != nil {
		return nil, fmt.Errorf("fat: read boot sector: %w", err)
	}
	fs := &FS{dev: dev, dirty: map[int64]bool{}, now: time.Now}
	for _, o := range opts {
		o(fs)
	}
	if err := fs.parseBoot(bs, size); err != nil {
		return nil, fmt.Errorf("fat: not a usable FAT file system: %w", err)
	}
	// One byte of padding lets a FAT12 entry that ends the FAT be read as
	// two bytes; it is never written back.
	fs.fat = make([]byte, fs.fatSecs*fs.bps+1)
	if _, err := dev.ReadAt(fs.fat[:fs.fatSecs*fs.bps], fs.reserved*fs.bps); err != nil {
		return nil, fmt.Errorf("fat: read FAT: %w", err)
	}
	return fs, nil
}

func le16(b []byte) int64 { return int64(binary.LittleEndian.Uint16(b)) }
func le32(b []byte) int64 { return int64(binary.LittleEndian.Uint32(b)) }

func (fs *FS) parseBoot(bs []byte, size int64) error {
	fs.bps = le16(bs[11:])
	switch fs.bps {
	case 512, 1024, 2048, 4096:
	default:
		return fmt.Errorf("bytes per sector %d is not 512, 1024, 2048 or 4096", fs.bps)
	}
	fs.spc = int64(bs[13])
	if fs.spc == 0 || fs.spc&(fs.spc-1) != 0 {
		return fmt.Errorf("sectors per cluster %d is not a power of two", fs.spc)
	}
	fs.clusterLen = fs.spc * fs.bps
	fs.reserved = le16(bs[14:])
	if fs.reserved == 0 {
		return errors.New("no reserved sectors")
	}
	fs.nfats = int64(bs[16])
	if fs.nfats == 0 || fs.nfats > 4 {
		return fmt.Errorf("%d FATs (want 1 to 4)", fs.nfats)
	}
	fs.rootEnts = le16(bs[17:])
	fs.totalSecs = le16(bs[19:])
	if fs.totalSecs == 0 {
		fs.totalSecs = le32(bs[32:])
	}
	fs.fatSecs = le16(bs[22:])
	fat32 := false
	if fs.fatSecs == 0 {
		fs.fatSecs = le32(bs[36:])
		fat32 = true
	}
	if fs.fatSecs == 0 || fs.totalSecs == 0 {
		return errors.New("zero FAT size or volume size")
	}
	if fs.totalSecs*fs.bps > size {
		return fmt.Errorf("volume of %d sectors is larger than its %d-byte partition", fs.totalSecs, size)
	}
	rootSecs := (fs.rootEnts*32 + fs.bps - 1) / fs.bps
	fs.rootSec = fs.reserved + fs.nfats*fs.fatSecs
	fs.dataSec = fs.rootSec + rootSecs
	if fs.dataSec >= fs.totalSecs {
		return errors.New("no room for data clusters")
	}
	n := (fs.totalSecs - fs.dataSec) / fs.spc
	if n < 1 || n > 0x0FFFFFF5 {
		return fmt.Errorf("%d data clusters", n)
	}
	fs.nclus = uint32(n)
	switch {
	case n < 4085:
		fs.typ = 12
	case n < 65525:
		fs.typ = 16
	default:
		fs.typ = 32
	}
	if fat32 != (fs.typ == 32) {
		return fmt.Errorf("the BPB says FAT32 %v but %d clusters make FAT%d", fat32, n, fs.typ)
	}
	if fs.typ == 32 {
		if fs.rootEnts != 0 {
			return errors.New("FAT32 with a fixed root directory")
		}
		fs.rootClus = uint32(le32(bs[44:]))
		if fs.rootClus < 2 || fs.rootClus > fs.nclus+1 {
			return fmt.Errorf("FAT32 root cluster %d out of range", fs.rootClus)
		}
		fi := le16(bs[48:])
		if fi > 0 && fi < fs.reserved && fi != 0xFFFF {
			fs.fsinfoSec = fi
		}
	} else if fs.rootEnts == 0 {
		return errors.New("FAT12/16 without root directory entries")
	}
	need := ((int64(fs.nclus)+2)*int64(fs.typ) + 7) / 8
	if fs.fatSecs*fs.bps < need {
		return fmt.Errorf("FAT of %d sectors too small for %d clusters", fs.fatSecs, fs.nclus)
	}
	return nil
}

// entry returns FAT entry c.
func (fs *FS) entry(c uint32) uint32 {
	switch fs.typ {
	case 12:
		off := c + c/2
		v := uint32(binary.LittleEndian.Uint16(fs.fat[off:]))
		if c&1 != 0 {
			return v >> 4
		}
		return v & 0xFFF
	case 16:
		return uint32(binary.LittleEndian.Uint16(fs.fat[2*c:]))
	default:
		return binary.LittleEndian.Uint32(fs.fat[4*c:]) & 0x0FFFFFFF
	}
}

// setEntry sets FAT entry c in memory and marks its sector(s) dirty.
func (fs *FS) setEntry(c, v uint32) {
	var off, n int64
	switch fs.typ {
	case 12:
		off, n = int64(c+c/2), 2
		old := binary.LittleEndian.Uint16(fs.fat[off:])
		if c&1 != 0 {
			old = old&0x000F | uint16(v&0xFFF)<<4
		} else {
			old = old&0xF000 | uint16(v&0xFFF)
		}
		binary.LittleEndian.PutUint16(fs.fat[off:], old)
	case 16:
		off, n = int64(2*c), 2
		binary.LittleEndian.PutUint16(fs.fat[off:], uint16(v))
	default:
		off, n = int64(4*c), 4
		old := binary.LittleEndian.Uint32(fs.fat[off:])
		binary.LittleEndian.PutUint32(fs.fat[off:], old&0xF0000000|v&0x0FFFFFFF)
	}
	fs.dirty[off/fs.bps] = true
	fs.dirty[(off+n-1)/fs.bps] = true
}

// eoc is the end-of-chain mark written for this FAT width.
func (fs *FS) eoc() uint32 {
	switch fs.typ {
	case 12:
		return 0xFFF
	case 16:
		return 0xFFFF
	}
	return 0x0FFFFFFF
}

func (fs *FS) isEOC(v uint32) bool {
	switch fs.typ {
	case 12:
		return v >= 0xFF8
	case 16:
		return v >= 0xFFF8
	}
	return v >= 0x0FFFFFF8
}

// chain returns the clusters of the chain starting at start.
func (fs *FS) chain(start uint32) ([]uint32, error) {
	if start == 0 {
		return nil, nil
	}
	var out []uint32
	c := start
	for {
		if c < 2 || c > fs.nclus+1 {
			return nil, fmt.Errorf("cluster chain from %d reaches invalid cluster %d: run fsck.fat", start, c)
		}
		if uint32(len(out)) > fs.nclus {
			return nil, fmt.Errorf("cluster chain from %d loops: run fsck.fat", start)
		}
		out = append(out, c)
		next := fs.entry(c)
		if fs.isEOC(next) {
			return out, nil
		}
		c = next
	}
}

func (fs *FS) clusterOff(c uint32) int64 {
	return (fs.dataSec + int64(c-2)*fs.spc) * fs.bps
}

// freeClusters returns up to n free clusters in ascending order.
func (fs *FS) freeClusters(n int) []uint32 {
	var out []uint32
	for c := uint32(2); c <= fs.nclus+1 && len(out) < n; c++ {
		if fs.entry(c) == 0 {
			out = append(out, c)
		}
	}
	return out
}

// FreeBytes reports the free space in bytes.
func (fs *FS) FreeBytes() int64 {
	var n int64
	for c := uint32(2); c <= fs.nclus+1; c++ {
		if fs.entry(c) == 0 {
			n++
		}
	}
	return n * fs.clusterLen
}

// syncer is implemented by devices that can flush writes to stable storage
// (*os.File, plan9disk.File and Section, qcow2.Image).
type syncer interface{ Sync() error }

// barrier makes every write so far durable before any later one, when the
// device can sync: the order of a file update (data and FAT, then the
// directory entry, then freeing the old chain) must survive a power loss,
// not only a crash of this process.
func (fs *FS) barrier() error {
	if s, ok := fs.dev.(syncer); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("fat: sync: %w", err)
		}
	}
	return nil
}

// flushFAT writes the dirty FAT sectors to every FAT copy.
func (fs *FS) flushFAT() error {
	for s := range fs.dirty {
		if s >= fs.fatSecs {
			continue // the padding byte
		}
		buf := fs.fat[s*fs.bps : (s+1)*fs.bps]
		for i := int64(0); i < fs.nfats; i++ {
			off := (fs.reserved + i*fs.fatSecs + s) * fs.bps
			if _, err := fs.dev.WriteAt(buf, off); err != nil {
				return fmt.Errorf("fat: write FAT %d sector %d: %w", i, s, err)
			}
		}
	}
	clear(fs.dirty)
	return fs.updateFSInfo()
}

// updateFSInfo refreshes the FAT32 FSInfo free count and next-free hint.
func (fs *FS) updateFSInfo() error {
	if fs.typ != 32 || fs.fsinfoSec == 0 {
		return nil
	}
	buf := make([]byte, 512)
	off := fs.fsinfoSec * fs.bps
	if _, err := fs.dev.ReadAt(buf, off); err != nil {
		return fmt.Errorf("fat: read FSInfo: %w", err)
	}
	if string(buf[0:4]) != "RRaA" || string(buf[484:488]) != "rrAa" {
		return nil // not a valid FSInfo; leave it alone
	}
	free := uint32(fs.FreeBytes() / fs.clusterLen)
	next := uint32(0xFFFFFFFF)
	if f := fs.freeClusters(1); len(f) == 1 {
		next = f[0]
	}
	binary.LittleEndian.PutUint32(buf[488:], free)
	binary.LittleEndian.PutUint32(buf[492:], next)
	if _, err := fs.dev.WriteAt(buf[:512], off); err != nil {
		return fmt.Errorf("fat: write FSInfo: %w", err)
	}
	return nil
}

// readChain reads size bytes from the chain clusters.
func (fs *FS) readChain(clus []uint32, size int64) ([]byte, error) {
	if size > int64(len(clus))*fs.clusterLen {
		return nil, fmt.Errorf("file size %d exceeds its %d clusters: run fsck.fat", size, len(clus))
	}
	out := make([]byte, size)
	for i, c := range clus {
		lo := int64(i) * fs.clusterLen
		if lo >= size {
			break
		}
		hi := min(lo+fs.clusterLen, size)
		if _, err := fs.dev.ReadAt(out[lo:hi], fs.clusterOff(c)); err != nil {
			return nil, fmt.Errorf("fat: read cluster %d: %w", c, err)
		}
	}
	return out, nil
}

// writeChain writes data over clus, zero-padding the last cluster.
func (fs *FS) writeChain(clus []uint32, data []byte) error {
	buf := make([]byte, fs.clusterLen)
	for i, c := range clus {
		clear(buf)
		lo := int64(i) * fs.clusterLen
		if lo < int64(len(data)) {
			copy(buf, data[lo:])
		}
		if _, err := fs.dev.WriteAt(buf, fs.clusterOff(c)); err != nil {
			return fmt.Errorf("fat: write cluster %d: %w", c, err)
		}
	}
	return nil
}

// linkChain marks clus as one chain in the in-memory FAT.
func (fs *FS) linkChain(clus []uint32) {
	for i, c := range clus {
		if i+1 < len(clus) {
			fs.setEntry(c, clus[i+1])
		} else {
			fs.setEntry(c, fs.eoc())
		}
	}
}

func (fs *FS) freeChain(clus []uint32) {
	for _, c := range clus {
		fs.setEntry(c, 0)
	}
}
