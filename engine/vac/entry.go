// Package vac writes and reads vac archives: trees of files and directories
// stored as venti blocks, in the format of Plan 9's vac(1) and unvac, and
// readable by fossil's flfmt -v.
//
// An archive is named by the score of its VtRoot block and is usually kept
// in a small text file holding "vac:<score>". Create stores files and
// directories from the local file system; Open reads an archive back, file
// by file, with random access (FileReader is an io.ReaderAt) or as a
// pipelined stream; Restore recreates a tree on disk.
//
// Everything is written against venti.Store, so the same code runs against
// the embedded venti, a remote one over the protocol, or memory. Block
// layouts follow /work/shared/docs/venti-vac-spec.md sections 2 and 3.
package vac

import (
	"encoding/binary"
	"errors"
	"fmt"

	"gridlord/engine/venti"
)

// Sizes of the fixed records.
const (
	EntrySize = 40  // size of a packed VtEntry
	RootSize  = 300 // size of a packed VtRoot
)

// Defaults matching plan9port vac.
const (
	DefaultBlockSize   = 8192 // data and directory block size (dsize)
	DefaultPointerSize = 8180 // pointer block size (psize), bsize/20*20 as p9p
	rootVersion        = 2
	minBlockSize       = 256
)

// VtEntry flag bits.
const (
	entryActive = 1 << 0
	entryDir    = 1 << 1
	entryDepth  = 7 << 2 // depth field, bits 2-4
	entryLocal  = 1 << 5 // fossil local block; ignored when reading
	entryBig    = 1 << 6 // p9p: psize/dsize use the "float" encoding
)

// ErrFormat is wrapped by every error about bytes that do not decode.
var ErrFormat = errors.New("malformed vac data")

func formatErr(what string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(what, args...))
}

// Entry is a VtEntry: the description of one stream of blocks (a file's
// data, a directory's child entries or its metadata).
//
// When packed, only the Active, Dir and depth flag bits are written: bits
// 5-7 (fossil's Local, NoArchive, p9p's Big) are always left clear so that
// fossil can format itself from our archives.
type Entry struct {
	Gen    uint32      // generation; 0 in vac archives
	PSize  int         // pointer block size
	DSize  int         // data (or directory) block size
	Active bool        // the entry is in use
	Dir    bool        // the stream holds VtEntries, not data
	Depth  int         // pointer levels above the leaves (0..7)
	Size   uint64      // bytes in the stream (at most 2^48-1)
	Score  venti.Score // score of the top block; venti.ZeroScore if empty
}

// MaxStreamSize is the largest stream size a VtEntry can record.
const MaxStreamSize = 1<<48 - 1

// Pack appends the 40-byte encoding of e to b.
func (e Entry) Pack(b []byte) []byte {
	var p [EntrySize]byte
	binary.BigEndian.PutUint32(p[0:], e.Gen)
	binary.BigEndian.PutUint16(p[4:], uint16(e.PSize))
	binary.BigEndian.PutUint16(p[6:], uint16(e.DSize))
	var fl byte
	if e.Active {
		fl |= entryActive
	}
	if e.Dir {
		fl |= entryDir
	}
	fl |= byte(e.Depth<<2) & entryDepth
	p[8] = fl
	putU48(p[14:], e.Size)
	copy(p[20:], e.Score[:])
	return append(b, p[:]...)
}

// UnpackEntry decodes a 40-byte VtEntry. As libventi does, it accepts
// inactive entries as they are, turns the psize/dsize of 0 that old vac
// wrote for empty entries into 4096, decodes p9p's big-size encoding, and
// ignores the fossil Local bit. Active entries must have block sizes
// between 256 and venti.MaxBlock bytes.
func UnpackEntry(b []byte) (Entry, error) {
	if len(b) < EntrySize {
		return Entry{}, formatErr("entry is %d bytes, want %d", len(b), EntrySize)
	}
	var e Entry
	e.Gen = binary.BigEndian.Uint32(b[0:])
	ps := int(binary.BigEndian.Uint16(b[4:]))
	ds := int(binary.BigEndian.Uint16(b[6:]))
	fl := b[8]
	if fl&entryBig != 0 {
		ps = (ps >> 5) << (ps & 31)
		ds = (ds >> 5) << (ds & 31)
	}
	e.PSize, e.DSize = ps, ds
	e.Active = fl&entryActive != 0
	e.Dir = fl&entryDir != 0
	e.Depth = int(fl&entryDepth) >> 2
	e.Size = getU48(b[14:])
	copy(e.Score[:], b[20:40])
	if !e.Active {
		return e, nil
	}
	if e.PSize == 0 && e.DSize == 0 && e.Score == venti.ZeroScore {
		e.PSize, e.DSize = 4096, 4096
	}
	if e.PSize < minBlockSize || e.DSize < minBlockSize || e.PSize > venti.MaxBlock || e.DSize > venti.MaxBlock {
		return Entry{}, formatErr("entry block sizes psize %d dsize %d outside %d..%d", e.PSize, e.DSize, minBlockSize, venti.MaxBlock)
	}
	return e, nil
}

// leafType is the block type of the stream's leaves.
func (e Entry) leafType() venti.Type {
	if e.Dir {
		return venti.DirType
	}
	return venti.DataType
}

// blocks is the number of leaf blocks the stream's size covers.
func (e Entry) blocks() uint64 {
	return (e.Size + uint64(e.DSize) - 1) / uint64(e.DSize)
}

// entries is the number of VtEntries in a directory stream.
func (e Entry) entries() uint64 {
	epb := uint64(e.DSize / EntrySize)
	return e.Size/uint64(e.DSize)*epb + e.Size%uint64(e.DSize)/EntrySize
}

// dirStreamSize is the Size of a directory stream holding n entries.
func dirStreamSize(n uint64, dsize int) uint64 {
	epb := uint64(dsize / EntrySize)
	return uint64(dsize)*(n/epb) + EntrySize*(n%epb)
}

// depthFor returns the depth of a tree with nb leaves and ppb scores per
// pointer block (libventi's sizetodepth).
func depthFor(nb uint64, ppb int) int {
	d := 0
	for nb > 1 {
		nb = (nb + uint64(ppb) - 1) / uint64(ppb)
		d++
	}
	return d
}

// Root is a VtRoot: the block an archive's score names.
type Root struct {
	Name      string      // "" for vac, "fossil" for fossil archives
	Type      string      // "vac"
	Score     venti.Score // score of the DirType block holding the top entries
	BlockSize int         // block size of the archive
	Prev      venti.Score // previous archive's root score, or all zero bytes
}

// Pack returns the 300-byte encoding of r. Name and Type longer than 127
// bytes are an error.
func (r Root) Pack() ([]byte, error) {
	if len(r.Name) > 127 || len(r.Type) > 127 {
		return nil, fmt.Errorf("pack root: name %q or type %q longer than 127 bytes", r.Name, r.Type)
	}
	if r.BlockSize < minBlockSize || r.BlockSize > 0xffff {
		return nil, fmt.Errorf("pack root: block size %d outside %d..65535", r.BlockSize, minBlockSize)
	}
	b := make([]byte, RootSize)
	binary.BigEndian.PutUint16(b[0:], rootVersion)
	copy(b[2:130], r.Name)
	copy(b[130:258], r.Type)
	copy(b[258:278], r.Score[:])
	binary.BigEndian.PutUint16(b[278:], uint16(r.BlockSize))
	copy(b[280:300], r.Prev[:])
	return b, nil
}

// UnpackRoot decodes a VtRoot. The block must be exactly 300 bytes, version
// 2 (p9p's big-blocksize flag 0x8000 is understood) and have a block size
// of at least 256.
func UnpackRoot(b []byte) (Root, error) {
	if len(b) != RootSize {
		return Root{}, formatErr("root block is %d bytes, want %d", len(b), RootSize)
	}
	v := binary.BigEndian.Uint16(b[0:])
	bs := int(binary.BigEndian.Uint16(b[278:]))
	if v&0x8000 != 0 {
		bs = (bs >> 5) << (bs & 31)
		v &^= 0x8000
	}
	if v != rootVersion {
		return Root{}, formatErr("root version %d, want %d", v, rootVersion)
	}
	if bs < minBlockSize || bs > venti.MaxBlock {
		return Root{}, formatErr("root block size %d outside %d..%d", bs, minBlockSize, venti.MaxBlock)
	}
	r := Root{Name: cstring(b[2:130]), Type: cstring(b[130:258]), BlockSize: bs}
	copy(r.Score[:], b[258:278])
	copy(r.Prev[:], b[280:300])
	return r, nil
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func putU48(b []byte, v uint64) {
	binary.BigEndian.PutUint16(b, uint16(v>>32))
	binary.BigEndian.PutUint32(b[2:], uint32(v))
}

func getU48(b []byte) uint64 {
	return uint64(binary.BigEndian.Uint16(b))<<32 | uint64(binary.BigEndian.Uint32(b[2:]))
}
