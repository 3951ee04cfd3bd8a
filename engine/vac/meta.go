package vac

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// Magic numbers and sizes of the metadata formats.
const (
	MetaMagic       = 0x5656fc79 // MetaBlock written by vac: "botched" name order
	MetaMagicFossil = 0x5656fc7a // MetaBlock written by fossil: bytewise order
	DirMagic        = 0x1c4d9072 // start of every packed DirEntry
	dirVersion      = 8          // VacDir version vac writes
	metaHeaderSize  = 12
	metaIndexSize   = 4
	bytesPerEntry   = 100 // vac: maxindex = dsize/100
	fullPercentage  = 80  // vac fills a meta block to 80%
	maxStringLen    = 1024
)

// DirEntry mode bits (vac.h).
const (
	ModePerm      = 0777
	ModeSticky    = 1 << 9
	ModeSetUID    = 1 << 10
	ModeSetGID    = 1 << 11
	ModeAppend    = 1 << 12
	ModeExclusive = 1 << 13
	ModeLink      = 1 << 14
	ModeDir       = 1 << 15
	ModeHidden    = 1 << 16
	ModeSystem    = 1 << 17
	ModeArchive   = 1 << 18
	ModeTemporary = 1 << 19
	ModeSnapshot  = 1 << 20
	ModeDevice    = 1 << 21
	ModeNamedPipe = 1 << 22
)

// DirEntry option types.
const (
	optPlan9    = 1
	optNT       = 2
	optQidSpace = 3
	optGen      = 4
)

// DirEntry is a VacDir: the metadata of one file or directory, stored in
// its parent directory's MetaBlocks. The size is not stored here; it is the
// Size of the file's data Entry.
type DirEntry struct {
	Elem      string // name; "/" for the root of a vac archive
	Entry     uint32 // index of the data (or child-entries) stream in the parent
	Gen       uint32 // generation of Entry (stored only in version 9)
	MEntry    uint32 // index of a directory's meta stream (version 8: Entry+1)
	MGen      uint32 // generation of MEntry (stored only in version 9)
	Qid       uint64 // unique id
	UID       string // owner name
	GID       string // group name
	MID       string // last modifier ("" in vac)
	MTime     uint32 // modification time, seconds since 1970
	MCount    uint32 // modification count
	CTime     uint32 // creation time (vac: time of archiving)
	ATime     uint32 // access time
	Mode      uint32 // permissions and Mode* bits
	Plan9     bool   // the Plan9 option is present (version < 9)
	P9Path    uint64 // Plan9 option: qid path
	P9Version uint32 // Plan9 option: qid version
	QidSpace  bool   // the QidSpace option is present (fossil needs it on the root)
	QidOffset uint64 // QidSpace option: offset
	QidMax    uint64 // QidSpace option: maximum qid
	Version   int    // VacDir version read (7..9); Pack writes 8
}

// IsDir reports whether d describes a directory.
func (d *DirEntry) IsDir() bool { return d.Mode&ModeDir != 0 }

// packedSize is the size of d packed as version 8.
func (d *DirEntry) packedSize() int {
	n := 4 + 2 + 4 + 8 + 5*4
	n += 4*2 + len(d.Elem) + len(d.UID) + len(d.GID) + len(d.MID)
	if d.Plan9 {
		n += 3 + 12
	}
	if d.QidSpace {
		n += 3 + 16
	}
	if d.Gen != 0 {
		n += 3 + 4
	}
	return n
}

// Pack appends d encoded as VacDir version 8 (vac's) to b. Strings longer
// than 1024 bytes are an error.
func (d *DirEntry) Pack(b []byte) ([]byte, error) {
	for _, s := range []string{d.Elem, d.UID, d.GID, d.MID} {
		if len(s) > maxStringLen {
			return nil, fmt.Errorf("pack dir entry %.40q: string of %d bytes is longer than %d", d.Elem, len(s), maxStringLen)
		}
	}
	b = binary.BigEndian.AppendUint32(b, DirMagic)
	b = binary.BigEndian.AppendUint16(b, dirVersion)
	b = appendString(b, d.Elem)
	b = binary.BigEndian.AppendUint32(b, d.Entry)
	b = binary.BigEndian.AppendUint64(b, d.Qid)
	b = appendString(b, d.UID)
	b = appendString(b, d.GID)
	b = appendString(b, d.MID)
	for _, v := range []uint32{d.MTime, d.MCount, d.CTime, d.ATime, d.Mode} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	if d.Plan9 {
		b = append(b, optPlan9, 0, 12)
		b = binary.BigEndian.AppendUint64(b, d.P9Path)
		b = binary.BigEndian.AppendUint32(b, d.P9Version)
	}
	if d.QidSpace {
		b = append(b, optQidSpace, 0, 16)
		b = binary.BigEndian.AppendUint64(b, d.QidOffset)
		b = binary.BigEndian.AppendUint64(b, d.QidMax)
	}
	if d.Gen != 0 {
		b = append(b, optGen, 0, 4)
		b = binary.BigEndian.AppendUint32(b, d.Gen)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// dirDecoder reads fields from a packed DirEntry, remembering the first
// shortage.
type dirDecoder struct {
	p   []byte
	bad bool
}

func (r *dirDecoder) take(n int) []byte {
	if r.bad || len(r.p) < n {
		r.bad = true
		return make([]byte, n)
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b
}
func (r *dirDecoder) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *dirDecoder) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *dirDecoder) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }
func (r *dirDecoder) str() string {
	n := int(r.u16())
	return string(r.take(n))
}

// UnpackDirEntry decodes a packed VacDir of version 7, 8 or 9 that fills b
// exactly, as vac's vdunpack does.
func UnpackDirEntry(b []byte) (DirEntry, error) {
	var d DirEntry
	r := &dirDecoder{p: b}
	if r.u32() != DirMagic || r.bad {
		return d, formatErr("dir entry: bad magic")
	}
	d.Version = int(r.u16())
	if d.Version < 7 || d.Version > 9 {
		return d, formatErr("dir entry: version %d, want 7..9", d.Version)
	}
	d.Elem = r.str()
	d.Entry = r.u32()
	if d.Version < 9 {
		d.MEntry = d.Entry + 1
	} else {
		d.Gen, d.MEntry, d.MGen = r.u32(), r.u32(), r.u32()
	}
	d.Qid = r.u64()
	if d.Version == 7 {
		r.take(20)
	}
	d.UID, d.GID, d.MID = r.str(), r.str(), r.str()
	d.MTime, d.MCount, d.CTime, d.ATime, d.Mode = r.u32(), r.u32(), r.u32(), r.u32(), r.u32()
	if r.bad {
		return DirEntry{}, formatErr("dir entry %.40q: truncated", d.Elem)
	}
	for len(r.p) > 0 {
		t := r.take(1)[0]
		n := int(r.u16())
		opt := r.take(n)
		if r.bad {
			return DirEntry{}, formatErr("dir entry %.40q: truncated option", d.Elem)
		}
		switch t {
		case optPlan9:
			if d.Version >= 9 {
				break
			}
			if d.Plan9 || n != 12 {
				return DirEntry{}, formatErr("dir entry %.40q: bad plan9 option", d.Elem)
			}
			d.Plan9 = true
			d.P9Path = binary.BigEndian.Uint64(opt)
			d.P9Version = binary.BigEndian.Uint32(opt[8:])
			if d.MCount == 0 {
				d.MCount = d.P9Version
			}
		case optQidSpace:
			if d.QidSpace || n != 16 {
				return DirEntry{}, formatErr("dir entry %.40q: bad qidspace option", d.Elem)
			}
			d.QidSpace = true
			d.QidOffset = binary.BigEndian.Uint64(opt)
			d.QidMax = binary.BigEndian.Uint64(opt[8:])
		case optGen:
			if d.Version < 9 && n == 4 {
				d.Gen = binary.BigEndian.Uint32(opt)
			}
		}
	}
	return d, nil
}

// nameLess orders names in a MetaBlock. With botched (magic 0x5656fc79,
// what vac writes) the order is bytewise except that when one name is a
// proper prefix of the other the longer name comes first; otherwise
// (fossil's 0x5656fc7a) it is plain bytewise.
func nameLess(a, b string, botched bool) bool {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c < 0
	}
	if botched {
		return len(a) > len(b)
	}
	return len(a) < len(b)
}

// MetaBlock is a decoded meta block: the DirEntries of (part of) a
// directory, in index order.
type MetaBlock struct {
	Magic   uint32     // MetaMagic or MetaMagicFossil
	Entries []DirEntry // in index (name) order
}

// packMetaBlock lays out entries (already packed) as one meta block of
// dsize bytes with vac's magic and botched order. The returned block is not
// zero-truncated.
func packMetaBlock(packed [][]byte, names []string, dsize int) ([]byte, error) {
	maxIndex := dsize / bytesPerEntry
	if len(packed) > maxIndex {
		return nil, fmt.Errorf("pack meta block: %d entries, at most %d fit", len(packed), maxIndex)
	}
	order := make([]int, len(packed))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return nameLess(names[order[i]], names[order[j]], true) })
	b := make([]byte, dsize)
	off := metaHeaderSize + maxIndex*metaIndexSize
	for k, i := range order {
		p := packed[i]
		if off+len(p) > dsize || len(p) > 0xffff {
			return nil, fmt.Errorf("pack meta block: entries need more than %d bytes", dsize)
		}
		copy(b[off:], p)
		ix := b[metaHeaderSize+k*metaIndexSize:]
		binary.BigEndian.PutUint16(ix, uint16(off))
		binary.BigEndian.PutUint16(ix[2:], uint16(len(p)))
		off += len(p)
	}
	binary.BigEndian.PutUint32(b, MetaMagic)
	binary.BigEndian.PutUint16(b[4:], uint16(off))
	binary.BigEndian.PutUint16(b[6:], 0)
	binary.BigEndian.PutUint16(b[8:], uint16(maxIndex))
	binary.BigEndian.PutUint16(b[10:], uint16(len(packed)))
	return b, nil
}

// UnpackMetaBlock decodes a meta block (zero-extended to the stream's
// dsize). An all-zero block is an empty block. It checks every index slot
// as vac's meunpack does and decodes every entry.
func UnpackMetaBlock(b []byte) (MetaBlock, error) {
	var mb MetaBlock
	if len(b) < metaHeaderSize {
		if allZero(b) {
			return mb, nil
		}
		return mb, formatErr("meta block of %d bytes is shorter than its header", len(b))
	}
	mb.Magic = binary.BigEndian.Uint32(b)
	if mb.Magic == 0 && allZero(b) {
		return mb, nil
	}
	if mb.Magic != MetaMagic && mb.Magic != MetaMagicFossil {
		return mb, formatErr("bad meta block magic %#x", mb.Magic)
	}
	size := int(binary.BigEndian.Uint16(b[4:]))
	maxIndex := int(binary.BigEndian.Uint16(b[8:]))
	nIndex := int(binary.BigEndian.Uint16(b[10:]))
	if size > len(b) {
		return mb, formatErr("meta block size %d is larger than the block (%d)", size, len(b))
	}
	table := metaHeaderSize + maxIndex*metaIndexSize
	if table > len(b) || nIndex > maxIndex {
		return mb, formatErr("meta block index of %d/%d slots does not fit", nIndex, maxIndex)
	}
	mb.Entries = make([]DirEntry, 0, nIndex)
	for i := 0; i < nIndex; i++ {
		ix := b[metaHeaderSize+i*metaIndexSize:]
		eo := int(binary.BigEndian.Uint16(ix))
		en := int(binary.BigEndian.Uint16(ix[2:]))
		if eo < table || eo+en > size {
			return mb, formatErr("meta block entry %d at %d+%d outside %d..%d", i, eo, en, table, size)
		}
		d, err := UnpackDirEntry(b[eo : eo+en])
		if err != nil {
			return mb, fmt.Errorf("meta block entry %d: %w", i, err)
		}
		mb.Entries = append(mb.Entries, d)
	}
	return mb, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
