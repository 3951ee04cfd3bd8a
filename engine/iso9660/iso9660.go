// Package iso9660 reads ISO 9660 (ECMA-119) CD images, with the Rock Ridge
// (SUSP/RRIP: names, POSIX modes, owners, times, symbolic links, relocated
// directories) and Joliet (UCS-2 names) extensions, as a read-only io/fs.FS.
//
// Names come from Rock Ridge when the image has it, else from the Joliet
// tree, else from the plain ISO names (";1" versions and trailing dots
// removed, lower-cased). Every file's FileInfo.Sys() is a *Stat with the
// metadata a Plan 9 file server needs.
//
// Nothing in an image is trusted: every extent and record is checked
// against the image's size and structure, and a damaged image gives an
// error naming what is wrong, never a panic.
package iso9660

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
)

// SectorSize is the size of an ISO 9660 logical sector.
const SectorSize = 2048

const (
	descStart  = 16 // first volume descriptor sector
	maxDescs   = 64 // volume descriptors looked at before giving up
	maxDepth   = 64 // directory nesting refused beyond this (loops, relocation cycles)
	maxEntries = 1 << 20
	maxCE      = 32 // continuation areas followed per record
)

// ErrNotISO is wrapped by the error Open returns for data that is not an
// ISO 9660 image at all.
var ErrNotISO = errors.New("not an ISO 9660 image")

// Stat is the metadata of one file of the image, returned by
// fs.FileInfo.Sys().
type Stat struct {
	// ID identifies the file within the image (the byte offset of its
	// directory record), stable across opens of the same image.
	ID uint64
	// Mode is the Rock Ridge POSIX mode (type and permission bits), or a
	// default (0555 directories, 0444 files) without Rock Ridge.
	Mode uint32
	// HasOwner says UID and GID come from a Rock Ridge PX entry.
	HasOwner bool
	UID, GID uint32
	// Nlink is the Rock Ridge link count (0 if unknown).
	Nlink uint32
	// Mtime and Atime are the Rock Ridge modification and access times,
	// else the recording time of the directory record.
	Mtime, Atime time.Time
	// Link is the target of a symbolic link.
	Link string
	// Size is the file's length in bytes.
	Size int64
}

// POSIX file type bits of Stat.Mode.
const (
	modeType = 0o170000
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeLink = 0o120000
)

// Extensions says which extensions an image's reader uses.
type Extensions struct {
	RockRidge bool
	Joliet    bool
}

// FS is an opened ISO 9660 image. It is safe for concurrent use.
type FS struct {
	r      io.ReaderAt
	size   int64
	closer io.Closer
	ext    Extensions
	susp   int  // SUSP bytes to skip in each record's system use area
	rr     bool // names and metadata from Rock Ridge
	jol    bool // names from the Joliet tree
	root   *node
	label  string

	mu      sync.Mutex
	entries int
	dirs    map[uint32]string // directory extents in use, against loops
}

// node is one file or directory.
type node struct {
	name    string // the name in its directory ("." for the root)
	path    string // the path from the root, for messages ("/" for the root)
	stat    Stat
	extents []extent
	dir     bool

	mu       sync.Mutex
	loaded   bool
	children []*node
	loadErr  error
	depth    int
}

type extent struct {
	lba  uint32
	size uint32
}

// Open reads the image of size bytes from r.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	f := &FS{r: r, size: size, dirs: map[uint32]string{}}
	if err := f.init(); err != nil {
		return nil, err
	}
	return f, nil
}

// OpenFile opens the image file at name; Close closes it.
func OpenFile(name string) (*FS, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open ISO image: %w", err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("open ISO image: %w", err)
	}
	f, err := Open(file, st.Size())
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f.closer = file
	return f, nil
}

// Close closes the file OpenFile opened (a no-op for Open).
func (f *FS) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Extensions reports the extensions the image carries.
func (f *FS) Extensions() Extensions { return f.ext }

// Label returns the volume identifier of the primary volume descriptor.
func (f *FS) Label() string { return f.label }

// readAt reads exactly len(b) bytes at off, or explains why not.
func (f *FS) readAt(b []byte, off int64, what string) error {
	if off < 0 || off+int64(len(b)) > f.size {
		return fmt.Errorf("%s at byte %d (+%d) lies beyond the end of the image (%d bytes): the image is truncated", what, off, len(b), f.size)
	}
	n, err := f.r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %s at byte %d: %w", what, off, err)
}

func (f *FS) init() error {
	if f.size < (descStart+1)*SectorSize {
		return fmt.Errorf("%w: %d bytes is smaller than the %d bytes before the first volume descriptor", ErrNotISO, f.size, (descStart+1)*SectorSize)
	}
	var pvd, svd []byte
	sec := make([]byte, SectorSize)
	terminated := false
	for i := 0; i < maxDescs; i++ {
		off := int64(descStart+i) * SectorSize
		if off+SectorSize > f.size {
			break
		}
		if err := f.readAt(sec, off, "volume descriptor"); err != nil {
			return err
		}
		if string(sec[1:6]) != "CD001" {
			if i == 0 {
				return fmt.Errorf("%w: no CD001 volume descriptor at sector %d", ErrNotISO, descStart)
			}
			return fmt.Errorf("volume descriptor %d (sector %d) has no CD001 signature and the set has no terminator", i, descStart+i)
		}
		switch sec[0] {
		case 1:
			if pvd == nil {
				pvd = bytes.Clone(sec)
			}
		case 2:
			esc := sec[88:91]
			if svd == nil && esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E') {
				svd = bytes.Clone(sec)
			}
		case 255:
			terminated = true
		}
		if terminated {
			break
		}
	}
	if pvd == nil {
		return fmt.Errorf("%w: no primary volume descriptor", ErrNotISO)
	}
	if bs := binary.LittleEndian.Uint16(pvd[128:]); bs != SectorSize {
		return fmt.Errorf("logical block size %d is not supported (only %d)", bs, SectorSize)
	}
	if blocks := int64(binary.LittleEndian.Uint32(pvd[80:])); blocks*SectorSize > f.size {
		return fmt.Errorf("the volume is %d bytes but the image only %d: the image is truncated", blocks*SectorSize, f.size)
	}
	f.label = strings.TrimRight(string(pvd[40:72]), " ")
	root, err := f.rootNode(pvd[156:190], descStart*SectorSize+156)
	if err != nil {
		return fmt.Errorf("primary volume root: %w", err)
	}
	// Rock Ridge: the root's "." record starts with SUSP's SP entry.
	if err := f.detectRockRidge(root); err != nil {
		return err
	}
	f.ext.Joliet = svd != nil
	switch {
	case f.ext.RockRidge:
		f.rr = true
	case svd != nil:
		jroot, err := f.rootNode(svd[156:190], -1)
		if err != nil {
			return fmt.Errorf("Joliet volume root: %w", err)
		}
		root = jroot
		f.jol = true
	}
	f.root = root
	f.dirs[root.extents[0].lba] = "/"
	if _, err := f.load(root); err != nil {
		return err
	}
	return nil
}

// rootNode makes the node of a volume descriptor's root directory record;
// id is its Stat.ID, or -1 for the sector of its extent.
func (f *FS) rootNode(rec []byte, id int64) (*node, error) {
	r, err := parseRecord(rec)
	if err != nil {
		return nil, err
	}
	if !r.dir {
		return nil, errors.New("the root directory record is not a directory")
	}
	n := &node{name: ".", path: "/", dir: true, extents: []extent{{r.lba, r.size}}}
	n.stat = Stat{ID: uint64(id), Mode: modeDir | 0o555, Mtime: r.time, Atime: r.time, Size: int64(r.size)}
	if id < 0 {
		n.stat.ID = uint64(r.lba) * SectorSize
	}
	if err := f.checkExtent(n.extents[0], "root directory"); err != nil {
		return nil, err
	}
	return n, nil
}

func (f *FS) checkExtent(e extent, what string) error {
	end := int64(e.lba)*SectorSize + int64(e.size)
	if end > f.size {
		return fmt.Errorf("%s: its data (sector %d, %d bytes) lies beyond the end of the image (%d bytes): the image is truncated", what, e.lba, e.size, f.size)
	}
	return nil
}

// detectRockRidge looks for SUSP's SP entry in the root's "." record.
func (f *FS) detectRockRidge(root *node) error {
	sec := make([]byte, SectorSize)
	if err := f.readAt(sec, int64(root.extents[0].lba)*SectorSize, "root directory"); err != nil {
		return err
	}
	r, err := parseRecord(sec)
	if err != nil {
		return fmt.Errorf("root directory's first record: %w", err)
	}
	su := r.su
	if len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[3] == 1 && su[4] == 0xBE && su[5] == 0xEF {
		f.susp = int(su[6])
		// RRIP 1.10 has an RR entry in each record, 1.12 an ER entry in
		// the root; look for either or for any RRIP entry.
		var found bool
		f.walkSUSP(su, func(sig string, _ []byte) bool {
			switch sig {
			case "RR", "ER", "PX", "NM", "TF", "SL":
				found = true
				return false
			}
			return true
		}, "root directory")
		f.ext.RockRidge = found
	}
	return nil
}

// record is one parsed directory record.
type record struct {
	length int
	lba    uint32
	size   uint32
	time   time.Time
	dir    bool
	multi  bool
	name   []byte
	su     []byte
}

func parseRecord(b []byte) (record, error) {
	if len(b) < 34 {
		return record{}, fmt.Errorf("directory record is %d bytes, less than the minimum 34", len(b))
	}
	l := int(b[0])
	if l < 34 || l > len(b) {
		return record{}, fmt.Errorf("directory record length %d is invalid", l)
	}
	nl := int(b[32])
	if 33+nl > l {
		return record{}, fmt.Errorf("directory record name (%d bytes) overruns the record (%d bytes)", nl, l)
	}
	r := record{
		length: l,
		lba:    binary.LittleEndian.Uint32(b[2:]),
		size:   binary.LittleEndian.Uint32(b[10:]),
		time:   recordTime(b[18:25]),
		dir:    b[25]&2 != 0,
		multi:  b[25]&0x80 != 0,
		name:   b[33 : 33+nl],
	}
	su := 33 + nl
	if nl%2 == 0 {
		su++
	}
	if su < l {
		r.su = b[su:l]
	}
	return r, nil
}

// recordTime decodes the 7-byte directory record time.
func recordTime(b []byte) time.Time {
	if b[0] == 0 && b[1] == 0 && b[2] == 0 {
		return time.Time{}
	}
	off := int(int8(b[6])) * 15 * 60
	return time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, time.FixedZone("", off)).UTC()
}

// longTime decodes the 17-byte "YYYYMMDDHHMMSScc"+offset form.
func longTime(b []byte) time.Time {
	digits := func(s []byte) int {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, d := digits(b[0:4]), digits(b[4:6]), digits(b[6:8])
	h, mi, s, cs := digits(b[8:10]), digits(b[10:12]), digits(b[12:14]), digits(b[14:16])
	if y <= 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0 || cs < 0 {
		return time.Time{}
	}
	off := int(int8(b[16])) * 15 * 60
	return time.Date(y, time.Month(mo), d, h, mi, s, cs*10_000_000, time.FixedZone("", off)).UTC()
}

// walkSUSP calls fn for each SUSP entry of a system use area, following
// CE continuation areas; fn returns false to stop.
func (f *FS) walkSUSP(su []byte, fn func(sig string, data []byte) bool, what string) error {
	for hops := 0; ; hops++ {
		var next *extent
		var nextOff uint32
		for len(su) >= 4 {
			l := int(su[2])
			if l < 4 || l > len(su) {
				break // padding or damage: the rest of the area is unusable
			}
			sig, data := string(su[0:2]), su[4:l]
			su = su[l:]
			switch sig {
			case "ST":
				return nil
			case "CE":
				if len(data) >= 24 {
					next = &extent{lba: binary.LittleEndian.Uint32(data[0:]), size: binary.LittleEndian.Uint32(data[16:])}
					nextOff = binary.LittleEndian.Uint32(data[8:])
				}
				continue
			}
			if !fn(sig, data) {
				return nil
			}
		}
		if next == nil {
			return nil
		}
		if hops >= maxCE {
			return fmt.Errorf("%s: more than %d SUSP continuation areas", what, maxCE)
		}
		if next.size > SectorSize || nextOff >= SectorSize || nextOff+next.size > SectorSize {
			return fmt.Errorf("%s: SUSP continuation area (sector %d, offset %d, %d bytes) does not fit a sector", what, next.lba, nextOff, next.size)
		}
		buf := make([]byte, next.size)
		if err := f.readAt(buf, int64(next.lba)*SectorSize+int64(nextOff), what+": SUSP continuation area"); err != nil {
			return err
		}
		su = buf
	}
}

// load reads a directory's entries once.
func (f *FS) load(n *node) ([]*node, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.loaded {
		return n.children, n.loadErr
	}
	n.loaded = true
	n.children, n.loadErr = f.readDir(n)
	return n.children, n.loadErr
}

func (f *FS) readDir(n *node) ([]*node, error) {
	if n.depth > maxDepth {
		return nil, fmt.Errorf("directory %s: nested more than %d levels deep (a loop in the image?)", n.path, maxDepth)
	}
	e := n.extents[0]
	if err := f.checkExtent(e, "directory "+n.path); err != nil {
		return nil, err
	}
	data := make([]byte, e.size)
	if err := f.readAt(data, int64(e.lba)*SectorSize, "directory "+n.path); err != nil {
		return nil, err
	}
	var out []*node
	seen := map[string]int{}
	var pending *node // the first records of a multi-extent file
	for pos := 0; pos < len(data); {
		l := int(data[pos])
		if l == 0 { // records never cross a sector: skip to the next one
			pos = (pos/SectorSize + 1) * SectorSize
			continue
		}
		if pos%SectorSize+l > SectorSize {
			return nil, fmt.Errorf("directory %s: record at byte %d crosses a sector boundary", n.path, pos)
		}
		rec, err := parseRecord(data[pos:])
		if err != nil {
			return nil, fmt.Errorf("directory %s: record at byte %d: %w", n.path, pos, err)
		}
		id := uint64(e.lba)*SectorSize + uint64(pos)
		pos += l
		if len(rec.name) == 1 && (rec.name[0] == 0 || rec.name[0] == 1) {
			continue // "." and ".."
		}
		c, skip, err := f.entry(n, rec, id)
		if err != nil {
			return nil, err
		}
		if skip {
			continue
		}
		if pending != nil {
			if pending.name != c.name || c.dir {
				return nil, fmt.Errorf("directory %s: multi-extent file %s is not continued by its next record", n.path, pending.name)
			}
			pending.extents = append(pending.extents, c.extents...)
			pending.stat.Size += c.stat.Size
			if !rec.multi {
				pending = nil
			}
			continue
		}
		if rec.multi {
			pending = c
		}
		if i, dup := seen[c.name]; dup {
			return nil, fmt.Errorf("directory %s: two entries named %q (records %d and %d)", n.path, c.name, i, len(out))
		}
		seen[c.name] = len(out)
		out = append(out, c)
	}
	if pending != nil {
		return nil, fmt.Errorf("directory %s: multi-extent file %s has no final record", n.path, pending.name)
	}
	f.mu.Lock()
	f.entries += len(out)
	tooMany := f.entries > maxEntries
	f.mu.Unlock()
	if tooMany {
		return nil, fmt.Errorf("the image has more than %d entries", maxEntries)
	}
	return out, nil
}

// entry makes the node of one record of directory parent; skip is set for
// records to be hidden (relocated directories' originals).
func (f *FS) entry(parent *node, rec record, id uint64) (*node, bool, error) {
	c := &node{dir: rec.dir, depth: parent.depth + 1, extents: []extent{{rec.lba, rec.size}}}
	c.stat = Stat{ID: id, Mtime: rec.time, Atime: rec.time, Size: int64(rec.size)}
	switch {
	case f.jol:
		c.name = jolietName(rec.name)
	default:
		c.name = isoName(rec.name)
	}
	if f.rr {
		skip, err := f.rockRidge(c, rec)
		if err != nil {
			return nil, false, fmt.Errorf("directory %s: entry %s: %w", parent.path, c.name, err)
		}
		if skip {
			return nil, true, nil
		}
	}
	if c.stat.Mode == 0 {
		c.stat.Mode = modeReg | 0o444
		if c.dir {
			c.stat.Mode = modeDir | 0o555
		}
	}
	if c.dir {
		c.stat.Size = 0
	}
	c.path = path.Join(parent.path, c.name)
	if c.name == "" || c.name == "." || c.name == ".." || strings.ContainsRune(c.name, '/') || strings.ContainsRune(c.name, 0) {
		return nil, false, fmt.Errorf("directory %s: entry with the invalid name %q", parent.path, c.name)
	}
	if c.dir {
		if err := f.claimDir(c); err != nil {
			return nil, false, err
		}
	} else if c.stat.Mode&modeType != modeLink {
		if err := f.checkExtent(c.extents[0], "file "+c.path); err != nil {
			return nil, false, err
		}
	}
	return c, false, nil
}

// claimDir records a directory's extent; a second directory with the same
// extent would make the tree a graph (or an endless loop).
func (f *FS) claimDir(c *node) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	lba := c.extents[0].lba
	if other, ok := f.dirs[lba]; ok {
		return fmt.Errorf("directories %s and %s share sector %d: the image's directory tree is damaged", other, c.path, lba)
	}
	f.dirs[lba] = c.path
	return nil
}

// rockRidge applies a record's RRIP entries to c.
func (f *FS) rockRidge(c *node, rec record) (skip bool, err error) {
	su := rec.su
	if f.susp > len(su) {
		return false, nil
	}
	su = su[f.susp:]
	var name, link strings.Builder
	var hasName, linkDone bool
	var relocated *extent
	var werr error
	err = f.walkSUSP(su, func(sig string, d []byte) bool {
		switch sig {
		case "PX":
			if len(d) >= 32 {
				c.stat.Mode = binary.LittleEndian.Uint32(d[0:])
				c.stat.Nlink = binary.LittleEndian.Uint32(d[8:])
				c.stat.UID = binary.LittleEndian.Uint32(d[16:])
				c.stat.GID = binary.LittleEndian.Uint32(d[24:])
				c.stat.HasOwner = true
			}
		case "RE":
			skip = true
			return false
		case "CL":
			if len(d) >= 8 {
				relocated = &extent{lba: binary.LittleEndian.Uint32(d[0:])}
			}
		case "TF":
			applyTF(&c.stat, d)
		}
		switch sig {
		case "NM":
			if len(d) < 1 {
				return true
			}
			flags := d[0]
			switch {
			case flags&2 != 0:
				name.WriteString(".")
			case flags&4 != 0:
				name.WriteString("..")
			default:
				name.Write(d[1:])
			}
			hasName = true
		case "SL":
			if len(d) < 1 || linkDone {
				return true
			}
			if err := appendSL(&link, d[1:]); err != nil {
				werr = err
				return false
			}
			linkDone = d[0]&1 == 0
		}
		return true
	}, "entry "+c.name)
	if err != nil {
		return false, err
	}
	if werr != nil {
		return false, werr
	}
	if skip {
		return true, nil
	}
	if hasName {
		c.name = name.String()
	}
	if c.stat.Mode&modeType == modeLink {
		c.stat.Link = link.String()
		c.dir = false
		c.stat.Size = int64(len(c.stat.Link))
		c.extents = nil
	}
	if relocated != nil {
		// The real directory lives elsewhere: read its "." record.
		sec := make([]byte, SectorSize)
		if err := f.readAt(sec, int64(relocated.lba)*SectorSize, "relocated directory "+c.name); err != nil {
			return false, err
		}
		dot, err := parseRecord(sec)
		if err != nil {
			return false, fmt.Errorf("relocated directory: %w", err)
		}
		c.dir = true
		c.extents = []extent{{relocated.lba, dot.size}}
	}
	return false, nil
}

// appendSL appends the components of one SL entry to b.
func appendSL(b *strings.Builder, comps []byte) error {
	for len(comps) > 0 {
		if len(comps) < 2 || 2+int(comps[1]) > len(comps) {
			return errors.New("symbolic link component overruns its SL entry")
		}
		flags, content := comps[0], comps[2:2+int(comps[1])]
		comps = comps[2+int(comps[1]):]
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "/") {
			b.WriteByte('/')
		}
		switch {
		case flags&8 != 0:
			b.WriteString("/")
		case flags&2 != 0:
			b.WriteString(".")
		case flags&4 != 0:
			b.WriteString("..")
		default:
			b.Write(content)
		}
	}
	return nil
}

// applyTF applies a TF (time stamps) entry.
func applyTF(st *Stat, d []byte) {
	if len(d) < 1 {
		return
	}
	flags, d := d[0], d[1:]
	size := 7
	if flags&0x80 != 0 {
		size = 17
	}
	for bit := uint(0); bit < 7; bit++ {
		if flags&(1<<bit) == 0 {
			continue
		}
		if len(d) < size {
			return
		}
		var t time.Time
		if size == 7 {
			t = recordTime(d[:7])
		} else {
			t = longTime(d[:17])
		}
		d = d[size:]
		switch bit {
		case 1:
			st.Mtime = t
		case 2:
			st.Atime = t
		}
	}
}

// isoName turns a plain ISO 9660 name into a file name.
func isoName(b []byte) string {
	s := string(b)
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSuffix(s, ".")
	return strings.ToLower(s)
}

// jolietName decodes a Joliet (UCS-2 big-endian) name.
func jolietName(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	s := string(utf16.Decode(u))
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// lookup finds the node of a valid fs path.
func (f *FS) lookup(op, name string) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n := f.root
	if name == "." {
		return n, nil
	}
	for _, elem := range strings.Split(name, "/") {
		if !n.dir {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		kids, err := f.load(n)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		var next *node
		for _, k := range kids {
			if k.name == elem {
				next = k
				break
			}
		}
		if next == nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		n = next
	}
	return n, nil
}

// Open opens the named file (fs.FS).
func (f *FS) Open(name string) (fs.File, error) {
	n, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return &dirFile{fsys: f, n: n, path: name}, nil
	}
	return &file{fsys: f, n: n, size: n.stat.Size}, nil
}

// Stat returns the named file's information (fs.StatFS).
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return info{n}, nil
}

// ReadDir lists the named directory, sorted by name (fs.ReadDirFS).
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	kids, err := f.load(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(kids))
	for i, k := range kids {
		out[i] = fs.FileInfoToDirEntry(info{k})
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// ReadLink returns a symbolic link's target (fs.ReadLinkFS).
func (f *FS) ReadLink(name string) (string, error) {
	n, err := f.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if n.stat.Mode&modeType != modeLink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.stat.Link, nil
}

// Lstat is Stat: the reader never follows links (fs.ReadLinkFS).
func (f *FS) Lstat(name string) (fs.FileInfo, error) { return f.Stat(name) }

// info is a node's fs.FileInfo.
type info struct{ n *node }

func (i info) Name() string       { return i.n.name }
func (i info) Size() int64        { return i.n.stat.Size }
func (i info) ModTime() time.Time { return i.n.stat.Mtime }
func (i info) IsDir() bool        { return i.n.dir }
func (i info) Sys() any           { s := i.n.stat; return &s }
func (i info) Mode() fs.FileMode {
	m := fs.FileMode(i.n.stat.Mode & 0o777)
	switch {
	case i.n.dir:
		m |= fs.ModeDir
	case i.n.stat.Mode&modeType == modeLink:
		m |= fs.ModeSymlink
	case i.n.stat.Mode&modeType != modeReg && i.n.stat.Mode&modeType != 0:
		m |= fs.ModeIrregular
	}
	if i.n.stat.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if i.n.stat.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if i.n.stat.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// file is an open regular file; it implements io.ReaderAt and io.Seeker.
type file struct {
	fsys   *FS
	n      *node
	size   int64
	off    int64
	closed bool
}

func (f *file) Stat() (fs.FileInfo, error) { return info{f.n}, nil }
func (f *file) Close() error {
	if f.closed {
		return fs.ErrClosed
	}
	f.closed = true
	return nil
}

func (f *file) Read(b []byte) (int, error) {
	n, err := f.ReadAt(b, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads the file's bytes at off.
func (f *file) ReadAt(b []byte, off int64) (int, error) {
	if f.closed {
		return 0, fs.ErrClosed
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.n.path, Err: fs.ErrInvalid}
	}
	if f.n.stat.Link != "" {
		return 0, &fs.PathError{Op: "read", Path: f.n.path, Err: errors.New("is a symbolic link")}
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := b
	if rem := f.size - off; int64(len(want)) > rem {
		want = want[:rem]
	}
	done := 0
	pos := int64(0) // file offset where extent e starts
	for _, e := range f.n.extents {
		end := pos + int64(e.size)
		if off+int64(done) < end && done < len(want) {
			in := off + int64(done) - pos
			chunk := want[done:]
			if int64(len(chunk)) > end-(off+int64(done)) {
				chunk = chunk[:end-(off+int64(done))]
			}
			if err := f.fsys.readAt(chunk, int64(e.lba)*SectorSize+in, "file "+f.n.path); err != nil {
				return done, err
			}
			done += len(chunk)
		}
		pos = end
	}
	if done < len(b) {
		return done, io.EOF
	}
	return done, nil
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	default:
		return 0, fs.ErrInvalid
	}
	if offset < 0 {
		return 0, fs.ErrInvalid
	}
	f.off = offset
	return offset, nil
}

// dirFile is an open directory (fs.ReadDirFile).
type dirFile struct {
	fsys *FS
	n    *node
	path string
	ents []fs.DirEntry
	read bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return info{d.n}, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.fsys.ReadDir(d.path)
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	if count <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	count = min(count, len(d.ents))
	out := d.ents[:count]
	d.ents = d.ents[count:]
	return out, nil
}
