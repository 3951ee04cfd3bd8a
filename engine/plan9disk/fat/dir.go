package fat

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// DirEntry describes one file or directory.
type DirEntry struct {
	Name      string    // long name when present, else the 8.3 name
	ShortName string    // the 8.3 name as stored, e.g. "PLAN9.INI"
	IsDir     bool      // a directory
	Size      int64     // file size in bytes (0 for directories)
	ModTime   time.Time // last write time (UTC, 2-second resolution)
	Attr      byte      // attribute bits (AttrReadOnly, ...)
}

// dir is a directory loaded into memory with the location of each slot.
type dir struct {
	fixed bool     // the FAT12/16 root directory region
	first uint32   // first cluster (0 for the fixed root)
	chain []uint32 // clusters of a cluster-chained directory
	data  []byte
}

// entry is a parsed directory entry and the slots it occupies.
type entry struct {
	DirEntry
	short       [11]byte
	first, last int // slot indexes: first LFN slot .. short entry slot
	clus        uint32
}

func (fs *FS) rootDir() (*dir, error) {
	if fs.typ != 32 {
		d := &dir{fixed: true, data: make([]byte, fs.rootEnts*32)}
		if _, err := fs.dev.ReadAt(d.data, fs.rootSec*fs.bps); err != nil {
			return nil, fmt.Errorf("fat: read root directory: %w", err)
		}
		return d, nil
	}
	return fs.chainDir(fs.rootClus)
}

func (fs *FS) chainDir(first uint32) (*dir, error) {
	ch, err := fs.chain(first)
	if err != nil {
		return nil, fmt.Errorf("fat: directory: %w", err)
	}
	if len(ch) == 0 {
		return nil, fmt.Errorf("fat: directory without clusters: run fsck.fat")
	}
	if int64(len(ch))*fs.clusterLen > 64<<20 {
		return nil, fmt.Errorf("fat: directory of %d clusters is implausibly large: run fsck.fat", len(ch))
	}
	data, err := fs.readChain(ch, int64(len(ch))*fs.clusterLen)
	if err != nil {
		return nil, err
	}
	return &dir{first: first, chain: ch, data: data}, nil
}

func (fs *FS) slotOff(d *dir, i int) int64 {
	o := int64(i) * 32
	if d.fixed {
		return fs.rootSec*fs.bps + o
	}
	return fs.clusterOff(d.chain[o/fs.clusterLen]) + o%fs.clusterLen
}

func (fs *FS) writeSlots(d *dir, first int, slots []byte) error {
	for i := 0; i*32 < len(slots); i++ {
		s := slots[i*32 : i*32+32]
		copy(d.data[(first+i)*32:], s)
		if _, err := fs.dev.WriteAt(s, fs.slotOff(d, first+i)); err != nil {
			return fmt.Errorf("fat: write directory entry: %w", err)
		}
	}
	return nil
}

func lfnChecksum(short []byte) byte {
	var sum byte
	for _, b := range short[:11] {
		sum = (sum&1)<<7 + sum>>1 + b
	}
	return sum
}

// lfnOffsets are the byte offsets of the 13 UCS-2 characters in an LFN slot.
var lfnOffsets = [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}

func shortDisplay(b []byte) string {
	raw := append([]byte(nil), b[:11]...)
	if raw[0] == 0x05 {
		raw[0] = 0xE5
	}
	base := strings.TrimRight(string(raw[:8]), " ")
	ext := strings.TrimRight(string(raw[8:11]), " ")
	if b[12]&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if b[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext != "" {
		return base + "." + ext
	}
	return base
}

func dosTime(date, tim uint16) time.Time {
	if date == 0 {
		return time.Time{}
	}
	return time.Date(1980+int(date>>9), time.Month(date>>5&15), int(date&31),
		int(tim>>11), int(tim>>5&63), int(tim&31)*2, 0, time.UTC)
}

func toDOS(t time.Time) (date, tim uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tim = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return
}

// entries parses every live entry of d, skipping "." and "..", volume
// labels and deleted slots.
func (fs *FS) entries(d *dir) []entry {
	var out []entry
	var lfn []uint16
	lfnStart, lfnSum, lfnNext := -1, byte(0), 0
	n := len(d.data) / 32
	for i := 0; i < n; i++ {
		s := d.data[i*32 : i*32+32]
		if s[0] == 0 {
			break
		}
		if s[0] == 0xE5 {
			lfnStart = -1
			continue
		}
		if s[11]&0x3F == attrLFN {
			ord := int(s[0] & 0x1F)
			if s[0]&0x40 != 0 && ord > 0 {
				lfnStart, lfnSum, lfnNext = i, s[13], ord
				lfn = make([]uint16, 13*ord)
			}
			if lfnStart < 0 || ord != lfnNext || s[13] != lfnSum {
				lfnStart = -1
				continue
			}
			for k, off := range lfnOffsets {
				lfn[(ord-1)*13+k] = binary.LittleEndian.Uint16(s[off:])
			}
			lfnNext--
			continue
		}
		start := i
		name := shortDisplay(s)
		if lfnStart >= 0 && lfnNext == 0 && lfnChecksum(s) == lfnSum {
			units := lfn
			for k, u := range units {
				if u == 0 {
					units = units[:k]
					break
				}
			}
			name = string(utf16.Decode(units))
			start = lfnStart
		}
		lfnStart = -1
		if s[11]&AttrVolumeID != 0 || name == "." || name == ".." {
			continue
		}
		e := entry{first: start, last: i}
		copy(e.short[:], s[:11])
		e.Name = name
		e.ShortName = shortDisplay(append(append([]byte(nil), s[:12]...), 0))
		e.Attr = s[11]
		e.IsDir = s[11]&AttrDirectory != 0
		e.clus = uint32(binary.LittleEndian.Uint16(s[26:]))
		if fs.typ == 32 {
			e.clus |= uint32(binary.LittleEndian.Uint16(s[20:])) << 16
		}
		if !e.IsDir {
			e.Size = int64(binary.LittleEndian.Uint32(s[28:]))
		}
		e.ModTime = dosTime(binary.LittleEndian.Uint16(s[24:]), binary.LittleEndian.Uint16(s[22:]))
		out = append(out, e)
	}
	return out
}

func lookup(ents []entry, name string) *entry {
	for i := range ents {
		if strings.EqualFold(ents[i].Name, name) || strings.EqualFold(ents[i].ShortName, name) {
			return &ents[i]
		}
	}
	return nil
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// walk resolves a directory path.
func (fs *FS) walk(elems []string) (*dir, error) {
	d, err := fs.rootDir()
	if err != nil {
		return nil, err
	}
	for i, el := range elems {
		e := lookup(fs.entries(d), el)
		if e == nil {
			return nil, fmt.Errorf("fat: /%s: %w", strings.Join(elems[:i+1], "/"), ErrNotExist)
		}
		if !e.IsDir {
			return nil, fmt.Errorf("fat: /%s is not a directory", strings.Join(elems[:i+1], "/"))
		}
		if e.clus == 0 {
			d, err = fs.rootDir()
		} else {
			d, err = fs.chainDir(e.clus)
		}
		if err != nil {
			return nil, fmt.Errorf("fat: /%s: %w", strings.Join(elems[:i+1], "/"), err)
		}
	}
	return d, nil
}

// find resolves path to its parent directory and entry.
func (fs *FS) find(path string) (*dir, *entry, error) {
	elems := splitPath(path)
	if len(elems) == 0 {
		return nil, nil, fmt.Errorf("fat: %q names the root directory, not a file", path)
	}
	d, err := fs.walk(elems[:len(elems)-1])
	if err != nil {
		return nil, nil, err
	}
	e := lookup(fs.entries(d), elems[len(elems)-1])
	if e == nil {
		return d, nil, fmt.Errorf("fat: %s: %w", path, ErrNotExist)
	}
	return d, e, nil
}

// ReadDir lists the directory at path ("/" or "" for the root).
func (fs *FS) ReadDir(path string) ([]DirEntry, error) {
	d, err := fs.walk(splitPath(path))
	if err != nil {
		return nil, err
	}
	var out []DirEntry
	for _, e := range fs.entries(d) {
		out = append(out, e.DirEntry)
	}
	return out, nil
}

// Stat describes the file or directory at path.
func (fs *FS) Stat(path string) (DirEntry, error) {
	_, e, err := fs.find(path)
	if err != nil {
		return DirEntry{}, err
	}
	return e.DirEntry, nil
}

// ReadFile returns the contents of the file at path. Names match case-
// insensitively, by long or short name, as Plan 9's dossrv and 9load do.
func (fs *FS) ReadFile(path string) ([]byte, error) {
	_, e, err := fs.find(path)
	if err != nil {
		return nil, err
	}
	if e.IsDir {
		return nil, fmt.Errorf("fat: %s is a directory", path)
	}
	ch, err := fs.chain(e.clus)
	if err != nil {
		return nil, fmt.Errorf("fat: %s: %w", path, err)
	}
	b, err := fs.readChain(ch, e.Size)
	if err != nil {
		return nil, fmt.Errorf("fat: %s: %w", path, err)
	}
	return b, nil
}

// WriteFile creates the file at path or replaces its contents. The parent
// directory must exist.
func (fs *FS) WriteFile(path string, data []byte) error {
	if int64(len(data)) > 0xFFFFFFFF {
		return fmt.Errorf("fat: %s: %d bytes is over the 4 GiB FAT file limit", path, len(data))
	}
	return fs.create(path, data, false)
}

// Mkdir creates the directory at path. The parent must exist.
func (fs *FS) Mkdir(path string) error { return fs.create(path, nil, true) }

func (fs *FS) create(path string, data []byte, isDir bool) error {
	elems := splitPath(path)
	if len(elems) == 0 {
		return fmt.Errorf("fat: %q names the root directory", path)
	}
	name := elems[len(elems)-1]
	if err := checkName(name); err != nil {
		return fmt.Errorf("fat: %s: %w", path, err)
	}
	d, err := fs.walk(elems[:len(elems)-1])
	if err != nil {
		return err
	}
	ents := fs.entries(d)
	old := lookup(ents, name)
	switch {
	case old != nil && old.IsDir:
		return fmt.Errorf("fat: %s exists and is a directory", path)
	case old != nil && isDir:
		return fmt.Errorf("fat: %s exists and is a file", path)
	}
	var oldChain []uint32
	if old != nil {
		if oldChain, err = fs.chain(old.clus); err != nil {
			return fmt.Errorf("fat: %s: %w", path, err)
		}
	}

	// Plan every allocation before writing anything.
	nData := int((int64(len(data)) + fs.clusterLen - 1) / fs.clusterLen)
	if isDir {
		nData = 1
	}
	var slots []byte
	slotAt, extra := -1, 0
	if old == nil {
		short, flags, lfn := shortName(name, ents)
		slots = makeSlots(name, short, flags, lfn)
		slotAt = freeRun(d, len(slots)/32)
		if slotAt < 0 {
			if d.fixed {
				return fmt.Errorf("fat: %s: the root directory is full (%d entries)", path, fs.rootEnts)
			}
			extra = int((int64(len(slots)) + fs.clusterLen - 1) / fs.clusterLen)
			// The run starts in the free slots at the end of the directory
			// (if any) and continues into the new cluster(s).
			slotAt = len(d.data) / 32
			for slotAt > 0 && (d.data[(slotAt-1)*32] == 0 || d.data[(slotAt-1)*32] == 0xE5) {
				slotAt--
			}
		}
	}
	free := fs.freeClusters(nData + extra)
	if len(free) < nData+extra {
		return fmt.Errorf("fat: %s: not enough free space: need %d clusters of %d bytes, %d free", path, nData+extra, fs.clusterLen, len(free))
	}
	newChain, dirExt := free[:nData], free[nData:]

	// 1. data (or the new directory's first cluster), then its FAT chain.
	var parentClus uint32
	if !d.fixed && d.first != fs.rootClus {
		parentClus = d.first
	}
	if isDir {
		data = make([]byte, fs.clusterLen)
		now := fs.now()
		copy(data[0:], dotEntry(".", newChain[0], now, fs.typ))
		copy(data[32:], dotEntry("..", parentClus, now, fs.typ))
	}
	if err := fs.writeChain(newChain, data); err != nil {
		return err
	}
	fs.linkChain(newChain)
	// 2. grow the parent directory if needed.
	if len(dirExt) > 0 {
		if err := fs.writeChain(dirExt, nil); err != nil {
			return err
		}
		fs.setEntry(d.chain[len(d.chain)-1], dirExt[0])
		fs.linkChain(dirExt)
		d.chain = append(d.chain, dirExt...)
		d.data = append(d.data, make([]byte, int64(len(dirExt))*fs.clusterLen)...)
	}
	if err := fs.flushFAT(); err != nil {
		return err
	}
	if err := fs.barrier(); err != nil {
		return err
	}
	// 3. the directory entry.
	var first uint32
	if len(newChain) > 0 {
		first = newChain[0]
	}
	date, tim := toDOS(fs.now())
	if old != nil {
		s := append([]byte(nil), d.data[old.last*32:old.last*32+32]...)
		fillShort(s, first, int64(len(data)), date, tim, false, fs.typ)
		if err := fs.writeSlots(d, old.last, s); err != nil {
			return err
		}
	} else {
		fillShort(slots[len(slots)-32:], first, int64(len(data)), date, tim, true, fs.typ)
		if isDir {
			s := slots[len(slots)-32:]
			s[11] = AttrDirectory
			binary.LittleEndian.PutUint32(s[28:], 0)
		}
		// If the run used the end-of-directory mark, put a new mark after
		// it so stale slots past the old mark do not come back to life.
		if end := slotAt + len(slots)/32; end < len(d.data)/32 && d.data[end*32] != 0 && endMarkUsed(d, slotAt, end) {
			slots = append(slots, make([]byte, 32)...)
		}
		if err := fs.writeSlots(d, slotAt, slots); err != nil {
			return err
		}
	}
	if err := fs.barrier(); err != nil {
		return err
	}
	// 4. release the old chain.
	if len(oldChain) > 0 {
		fs.freeChain(oldChain)
		if err := fs.flushFAT(); err != nil {
			return err
		}
		return fs.barrier()
	}
	return nil
}

// endMarkUsed reports whether slots [lo, hi) include an end-of-directory mark.
func endMarkUsed(d *dir, lo, hi int) bool {
	for i := lo; i < hi; i++ {
		if d.data[i*32] == 0 {
			return true
		}
	}
	return false
}

// freeRun finds n consecutive free slots in d, or -1.
func freeRun(d *dir, n int) int {
	run := 0
	total := len(d.data) / 32
	for i := 0; i < total; i++ {
		c := d.data[i*32]
		if c == 0 {
			if total-i >= n-run {
				return i - run
			}
			return -1
		}
		if c == 0xE5 {
			run++
			if run == n {
				return i - n + 1
			}
			continue
		}
		run = 0
	}
	return -1
}

// Remove deletes the file or empty directory at path.
func (fs *FS) Remove(path string) error {
	d, e, err := fs.find(path)
	if err != nil {
		return err
	}
	ch, err := fs.chain(e.clus)
	if err != nil {
		return fmt.Errorf("fat: %s: %w", path, err)
	}
	if e.IsDir {
		sub, err := fs.chainDir(e.clus)
		if err != nil {
			return fmt.Errorf("fat: %s: %w", path, err)
		}
		if len(fs.entries(sub)) > 0 {
			return fmt.Errorf("fat: %s: directory not empty", path)
		}
	}
	slots := append([]byte(nil), d.data[e.first*32:(e.last+1)*32]...)
	for i := 0; i < len(slots); i += 32 {
		slots[i] = 0xE5
	}
	if err := fs.writeSlots(d, e.first, slots); err != nil {
		return err
	}
	fs.freeChain(ch)
	return fs.flushFAT()
}

func fillShort(s []byte, clus uint32, size int64, date, tim uint16, created bool, typ int) {
	s[11] |= AttrArchive
	if created {
		s[13] = 0
		binary.LittleEndian.PutUint16(s[14:], tim)
		binary.LittleEndian.PutUint16(s[16:], date)
	}
	binary.LittleEndian.PutUint16(s[18:], date)
	if typ == 32 {
		binary.LittleEndian.PutUint16(s[20:], uint16(clus>>16))
	} else {
		binary.LittleEndian.PutUint16(s[20:], 0)
	}
	binary.LittleEndian.PutUint16(s[22:], tim)
	binary.LittleEndian.PutUint16(s[24:], date)
	binary.LittleEndian.PutUint16(s[26:], uint16(clus))
	binary.LittleEndian.PutUint32(s[28:], uint32(size))
}

func dotEntry(name string, clus uint32, now time.Time, typ int) []byte {
	s := make([]byte, 32)
	copy(s, fmt.Sprintf("%-11s", name))
	s[11] = AttrDirectory
	date, tim := toDOS(now)
	fillShort(s, clus, 0, date, tim, true, typ)
	s[11] = AttrDirectory
	return s
}

const invalidChars = "\"*/:<>?\\|"

func checkName(name string) error {
	if name == "." || name == ".." {
		return fmt.Errorf("invalid name %q", name)
	}
	if len(utf16.Encode([]rune(name))) > 255 {
		return fmt.Errorf("name longer than 255 characters")
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(invalidChars, r) {
			return fmt.Errorf("name %q contains %q, which FAT does not allow", name, r)
		}
	}
	if strings.Trim(name, " .") == "" {
		return fmt.Errorf("invalid name %q", name)
	}
	return nil
}

const shortChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()-@^_`{}~"

// fits83 reports whether s is all valid short-name characters of one case.
func fits83(s string, max int) (ok, lower bool) {
	if len(s) > max {
		return false, false
	}
	hasLower, hasUpper := false, false
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			hasLower = true
		case r >= 'A' && r <= 'Z':
			hasUpper = true
		case r < 0x80 && strings.ContainsRune(shortChars, r):
		default:
			return false, false
		}
	}
	return !(hasLower && hasUpper), hasLower
}

// shortName picks the 8.3 name for a new entry, the NT case flags, and
// whether long-name slots are needed.
func shortName(name string, ents []entry) (short [11]byte, flags byte, lfn bool) {
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	okB, lowB := fits83(base, 8)
	okE, lowE := fits83(ext, 3)
	if okB && okE && base != "" && !strings.Contains(base, ".") && (ext != "" || !strings.HasSuffix(name, ".")) {
		copy(short[:], fmt.Sprintf("%-8s%-3s", strings.ToUpper(base), strings.ToUpper(ext)))
		if lowB {
			flags |= 0x08
		}
		if lowE {
			flags |= 0x10
		}
		return short, flags, false
	}
	clean := func(s string) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			switch {
			case r == ' ' || r == '.':
			case r < 0x80 && strings.ContainsRune(shortChars, r):
				b.WriteRune(r)
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	b, e := clean(strings.TrimLeft(base, ".")), clean(ext)
	if len(e) > 3 {
		e = e[:3]
	}
	if b == "" {
		b = "_"
	}
	taken := map[[11]byte]bool{}
	for _, en := range ents {
		taken[en.short] = true
	}
	for i := 1; ; i++ {
		tail := "~" + strconv.Itoa(i)
		bb := b
		if len(bb) > 8-len(tail) {
			bb = bb[:8-len(tail)]
		}
		copy(short[:], fmt.Sprintf("%-8s%-3s", bb+tail, e))
		if !taken[short] {
			return short, 0, true
		}
	}
}

// makeSlots returns the LFN slots (if any) followed by the short entry.
func makeSlots(name string, short [11]byte, flags byte, lfn bool) []byte {
	var out []byte
	if lfn {
		units := utf16.Encode([]rune(name))
		n := (len(units) + 12) / 13
		padded := make([]uint16, n*13)
		for i := range padded {
			switch {
			case i < len(units):
				padded[i] = units[i]
			case i == len(units):
				padded[i] = 0
			default:
				padded[i] = 0xFFFF
			}
		}
		sum := lfnChecksum(short[:])
		for ord := n; ord >= 1; ord-- {
			s := make([]byte, 32)
			s[0] = byte(ord)
			if ord == n {
				s[0] |= 0x40
			}
			s[11] = attrLFN
			s[13] = sum
			for k, off := range lfnOffsets {
				binary.LittleEndian.PutUint16(s[off:], padded[(ord-1)*13+k])
			}
			out = append(out, s...)
		}
	}
	s := make([]byte, 32)
	copy(s, short[:])
	if s[0] == 0xE5 {
		s[0] = 0x05
	}
	s[12] = flags
	return append(out, s...)
}
