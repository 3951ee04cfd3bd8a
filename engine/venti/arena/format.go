// Package arena reads venti's own on-disk arena format (venti/srv, arena
// versions 4 and 5 on an arena partition of version 3): the partition
// header at 256 KiB, the text arena map, each arena's head and trailer, the
// clump directory and the clump log, including clumps compressed with
// venti's "whack" encoding. It imports the blocks into any venti.Store
// (Import) and serves an arena partition read-only as a venti.Store
// (OpenStore).
//
// Everything is read through an io.ReaderAt and a size, so a partition may
// be a plain file, a byte range of a disk image or a qcow2 chain.
package arena

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"gridlord/engine/venti"
)

// Layout constants of venti/srv (dat.h).
const (
	PartBlank     = 256 * 1024 // untouched bytes at the start of a partition
	headSize      = 512        // space for the partition header after PartBlank
	nameSize      = 64         // arena names are NUL-padded to this size
	maxArenas     = 2 * 1024   // most arenas an arena map may list (MaxAMap)
	ClumpSize     = 38         // bytes of a clump header in the log
	ClumpInfoSize = 25         // bytes of a clump directory entry

	partMagic      = 0xa9e4a5e7
	partVersion    = 3
	headMagic      = 0xd15c4ead
	tailMagic      = 0xf2a14ead
	clumpMagicV4   = 0xd15cb10c // the fixed clump magic of version-4 arenas
	clumpFreeMagic = 0          // ends the active part of a clump log

	partHeaderSize = 16
	headSizeV4     = 84
	headSizeV5     = 88
	tailSizeV4     = 105
	tailSizeV5     = 109
	tailExtSize    = 26 // memstats extension after the v4/v5 trailer
)

// Clump encodings.
const (
	EncodingNone  = 1 // stored as is
	EncodingWhack = 2 // compressed with whack (package whack)
)

var be = binary.BigEndian

// TailStats is one set of an arena trailer's statistics. The trailer keeps
// two: the state of the log (memstats) and the part of it covered by
// venti's on-disk index (diskstats).
type TailStats struct {
	Clumps  uint32 // clumps in the log
	CClumps uint32 // of those, clumps stored compressed
	Used    uint64 // bytes of log used, clump headers included
	UncSize uint64 // bytes of block data, uncompressed
	Sealed  bool   // the arena is full and takes no more clumps
}

// ClumpInfo is what the clump directory records about a clump; the clump
// header repeats it.
type ClumpInfo struct {
	Type    venti.Type  // disk type (the wire numbering)
	Size    uint16      // stored bytes after the header
	UncSize uint16      // bytes of the block once decoded
	Score   venti.Score // score of the decoded block
}

// Clump is a parsed clump header.
type Clump struct {
	ClumpInfo
	Magic    uint32 // must equal the arena's clump magic
	Encoding uint8  // EncodingNone or EncodingWhack
	Creator  uint32 // unused by venti (0)
	Time     uint32 // Unix seconds when the block was written
}

// partHeader is the arena partition header at PartBlank.
type partHeader struct {
	version   uint32
	blockSize uint32
	arenaBase uint32
}

func parsePartHeader(b []byte) (partHeader, error) {
	var h partHeader
	if len(b) < partHeaderSize {
		return h, fmt.Errorf("arena partition header: %d bytes, need %d", len(b), partHeaderSize)
	}
	if m := be.Uint32(b); m != partMagic {
		return h, fmt.Errorf("no arena partition header at offset %d: magic %#08x, want %#08x (is this a venti arenas partition?)", PartBlank, m, uint32(partMagic))
	}
	h.version = be.Uint32(b[4:])
	h.blockSize = be.Uint32(b[8:])
	h.arenaBase = be.Uint32(b[12:])
	if h.version != partVersion {
		return h, fmt.Errorf("arena partition version %d: only version %d is known", h.version, partVersion)
	}
	if h.blockSize < 512 || h.blockSize > 1<<20 || h.blockSize&(h.blockSize-1) != 0 {
		return h, fmt.Errorf("arena partition block size %d: want a power of two from 512 to 1 MiB", h.blockSize)
	}
	if int64(h.arenaBase) <= tabBase(h.blockSize) {
		return h, fmt.Errorf("arena partition: arena base %d overlaps the arena map at %d", h.arenaBase, tabBase(h.blockSize))
	}
	return h, nil
}

// tabBase is where the arena map starts for a partition block size.
func tabBase(blockSize uint32) int64 {
	bs := int64(blockSize)
	return (PartBlank + headSize + bs - 1) &^ (bs - 1)
}

// mapEntry is one line of the arena map.
type mapEntry struct {
	name        string
	start, stop int64
}

// parseMap parses the arena map text: "<n>\n" then n lines
// "<name>\t<start>\t<stop>\n", the text ending at the first NUL.
func parseMap(b []byte) ([]mapEntry, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	lines := strings.Split(string(b), "\n")
	n, err := strconv.ParseUint(strings.TrimSpace(lines[0]), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("arena map: first line %q is not a count of arenas", truncate(lines[0]))
	}
	if n > maxArenas {
		return nil, fmt.Errorf("arena map: %d arenas, more than venti's limit of %d", n, maxArenas)
	}
	if uint64(len(lines)-1) < n {
		return nil, fmt.Errorf("arena map: says %d arenas but has %d lines", n, len(lines)-1)
	}
	m := make([]mapEntry, 0, n)
	for i := 1; i <= int(n); i++ {
		f := strings.Split(lines[i], "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("arena map line %d %q: want name<TAB>start<TAB>stop", i+1, truncate(lines[i]))
		}
		if err := checkName(f[0]); err != nil {
			return nil, fmt.Errorf("arena map line %d: %w", i+1, err)
		}
		start, err1 := strconv.ParseInt(f[1], 10, 64)
		stop, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || start < 0 || stop < start {
			return nil, fmt.Errorf("arena map line %d %q: bad byte range", i+1, truncate(lines[i]))
		}
		m = append(m, mapEntry{f[0], start, stop})
	}
	return m, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// checkName accepts the names venti's nameok accepts: 1..63 bytes, none of
// them a control character or space.
func checkName(s string) error {
	if s == "" || len(s) >= nameSize {
		return fmt.Errorf("arena name %q: want 1 to %d bytes", truncate(s), nameSize-1)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return fmt.Errorf("arena name %q: contains a space or control character", s)
		}
	}
	return nil
}

// cstring returns the NUL-terminated name in a fixed-size field.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// arenaHead is the redundant header block at the start of an arena.
type arenaHead struct {
	version    uint32
	name       string
	blockSize  uint32
	size       uint64 // whole arena, head and trailer included
	clumpMagic uint32
}

func parseHead(b []byte) (arenaHead, error) {
	var h arenaHead
	if len(b) < headSizeV5 {
		return h, fmt.Errorf("arena head: %d bytes, need %d", len(b), headSizeV5)
	}
	if m := be.Uint32(b); m != headMagic {
		return h, fmt.Errorf("arena head: magic %#08x, want %#08x", m, uint32(headMagic))
	}
	h.version = be.Uint32(b[4:])
	h.name = cstring(b[8 : 8+nameSize])
	p := b[8+nameSize:]
	h.blockSize = be.Uint32(p)
	h.size = be.Uint64(p[4:])
	switch h.version {
	case 4:
		h.clumpMagic = clumpMagicV4
	case 5:
		h.clumpMagic = be.Uint32(p[12:])
	default:
		return h, fmt.Errorf("arena head: version %d, want 4 or 5", h.version)
	}
	return h, nil
}

// arenaTail is the trailer block at the end of an arena.
type arenaTail struct {
	version      uint32
	name         string
	disk, mem    TailStats
	ctime, wtime uint32
	clumpMagic   uint32
	score        venti.Score // last ScoreSize bytes of the trailer block
}

func parseTail(b []byte) (arenaTail, error) {
	var t arenaTail
	if len(b) < tailSizeV5+tailExtSize+venti.ScoreSize {
		return t, fmt.Errorf("arena trailer: %d bytes, need %d", len(b), tailSizeV5+tailExtSize+venti.ScoreSize)
	}
	if m := be.Uint32(b); m != tailMagic {
		return t, fmt.Errorf("arena trailer: magic %#08x, want %#08x", m, uint32(tailMagic))
	}
	t.version = be.Uint32(b[4:])
	t.name = cstring(b[8 : 8+nameSize])
	p := b[8+nameSize:]
	t.disk.Clumps = be.Uint32(p)
	t.disk.CClumps = be.Uint32(p[4:])
	t.ctime = be.Uint32(p[8:])
	t.wtime = be.Uint32(p[12:])
	p = p[16:]
	switch t.version {
	case 4:
		t.clumpMagic = clumpMagicV4
	case 5:
		t.clumpMagic = be.Uint32(p)
		p = p[4:]
	default:
		return t, fmt.Errorf("arena trailer: version %d, want 4 or 5", t.version)
	}
	t.disk.Used = be.Uint64(p)
	t.disk.UncSize = be.Uint64(p[8:])
	t.disk.Sealed = p[16] != 0
	p = p[17:]
	// The memstats extension is present only while the index lags the log.
	if p[0] == 1 {
		t.mem.Clumps = be.Uint32(p[1:])
		t.mem.CClumps = be.Uint32(p[5:])
		t.mem.Used = be.Uint64(p[9:])
		t.mem.UncSize = be.Uint64(p[17:])
		t.mem.Sealed = p[25] != 0
	} else {
		t.mem = t.disk
	}
	copy(t.score[:], b[len(b)-venti.ScoreSize:])
	return t, nil
}

// parseClumpInfo parses a 25-byte clump directory entry.
func parseClumpInfo(b []byte) ClumpInfo {
	var ci ClumpInfo
	ci.Type = venti.Type(b[0])
	ci.Size = be.Uint16(b[1:])
	ci.UncSize = be.Uint16(b[3:])
	copy(ci.Score[:], b[5:5+venti.ScoreSize])
	return ci
}

// parseClump parses a 38-byte clump header without judging it.
func parseClump(b []byte) Clump {
	var c Clump
	c.Magic = be.Uint32(b)
	c.ClumpInfo = parseClumpInfo(b[4:])
	p := b[4+ClumpInfoSize:]
	c.Encoding = p[0]
	c.Creator = be.Uint32(p[1:])
	c.Time = be.Uint32(p[5:])
	return c
}

// check reports what is wrong with a clump header whose magic matched: an
// unknown encoding, sizes that contradict the encoding, an invalid type.
func (c *Clump) check() error {
	switch c.Encoding {
	case EncodingNone:
		if c.Size != c.UncSize {
			return fmt.Errorf("uncompressed clump has stored size %d but block size %d", c.Size, c.UncSize)
		}
	case EncodingWhack:
		if c.Size >= c.UncSize {
			return fmt.Errorf("compressed clump is no smaller than its block (%d >= %d bytes)", c.Size, c.UncSize)
		}
	default:
		return fmt.Errorf("unknown clump encoding %d", c.Encoding)
	}
	if !c.Type.Valid() {
		return fmt.Errorf("invalid block type %d", uint8(c.Type))
	}
	if int(c.UncSize) > venti.MaxBlock {
		return fmt.Errorf("block of %d bytes is larger than venti's %d-byte maximum", c.UncSize, venti.MaxBlock)
	}
	return nil
}
