package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"gridlord/engine/venti"
)

// On-disk formats. All integers are big-endian.
//
// An arena file (arena.NNNNNN) starts with a 64-byte header:
//
//	0  [8]  "GLVARENA"
//	8  u32  format version (1)
//	12 u32  arena number (the NNNNNN of the file name)
//	16 u32  record magic: random, chosen when the arena is created
//	20 u64  arena size limit in bytes (informational)
//	28      zero padding
//	60 u32  CRC32C of bytes 0..59
//
// Records follow back to back. A record is a 36-byte header and the block:
//
//	0  u32  record magic (the arena's)
//	4  u8   block type (wire numbering); 0 marks the end of a full arena
//	5  u8   flags (0; reserved for encodings such as compression)
//	6  u16  block size in bytes
//	8  [20] score (SHA-1 of the block)
//	28 u32  data checksum: CRC32C of header bytes 0..27 and the block
//	32 u32  header checksum: CRC32C of header bytes 0..31
//
// The header checksum lets a scanner trust a record's size and score even
// when the block bytes are damaged, so it can step over a corrupt record and
// still report its score. The per-arena random magic keeps a block that
// itself contains arena bytes (a store inside a store) from being taken for
// a record when a checker searches for the next record after damage.
const (
	arenaHeaderSize = 64
	recHeaderSize   = 36
	arenaFileMagic  = "GLVARENA"
	arenaVersion    = 1
	endType         = 0 // type byte of the end-of-arena marker record
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// arenaHeader is the decoded header of an arena file.
type arenaHeader struct {
	num   int    // arena number
	magic uint32 // record magic
	size  int64  // size limit when created
}

func (h arenaHeader) encode() []byte {
	b := make([]byte, arenaHeaderSize)
	copy(b, arenaFileMagic)
	binary.BigEndian.PutUint32(b[8:], arenaVersion)
	binary.BigEndian.PutUint32(b[12:], uint32(h.num))
	binary.BigEndian.PutUint32(b[16:], h.magic)
	binary.BigEndian.PutUint64(b[20:], uint64(h.size))
	binary.BigEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

func decodeArenaHeader(b []byte) (arenaHeader, error) {
	var h arenaHeader
	if len(b) < arenaHeaderSize {
		return h, fmt.Errorf("arena header: %d bytes, want %d", len(b), arenaHeaderSize)
	}
	if string(b[:8]) != arenaFileMagic {
		return h, errors.New("arena header: not a gridlord arena (bad magic)")
	}
	if crc32.Checksum(b[:60], castagnoli) != binary.BigEndian.Uint32(b[60:]) {
		return h, errors.New("arena header: checksum mismatch")
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != arenaVersion {
		return h, fmt.Errorf("arena header: format version %d, this gridlord reads %d", v, arenaVersion)
	}
	h.num = int(binary.BigEndian.Uint32(b[12:]))
	h.magic = binary.BigEndian.Uint32(b[16:])
	h.size = int64(binary.BigEndian.Uint64(b[20:]))
	if h.num >= maxArenas {
		return h, fmt.Errorf("arena header: arena number %d out of range", h.num)
	}
	return h, nil
}

// recHeader is a decoded record header.
type recHeader struct {
	typ   venti.Type // 0 for the end marker
	size  int
	score venti.Score
	dcrc  uint32
}

// end reports whether h is the end-of-arena marker.
func (h recHeader) end() bool { return h.typ == endType }

// encodeRecord writes the record for a block into buf (which must hold
// recHeaderSize+len(data) bytes) and returns that prefix of buf.
func encodeRecord(buf []byte, magic uint32, t venti.Type, s venti.Score, data []byte) []byte {
	n := recHeaderSize + len(data)
	b := buf[:n]
	binary.BigEndian.PutUint32(b[0:], magic)
	b[4] = byte(t)
	b[5] = 0
	binary.BigEndian.PutUint16(b[6:], uint16(len(data)))
	copy(b[8:28], s[:])
	copy(b[recHeaderSize:], data)
	c := crc32.Update(crc32.Checksum(b[:28], castagnoli), castagnoli, data)
	binary.BigEndian.PutUint32(b[28:], c)
	binary.BigEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	return b
}

// encodeEnd returns the end-of-arena marker record.
func encodeEnd(magic uint32) []byte {
	b := make([]byte, recHeaderSize)
	return encodeRecord(b, magic, endType, venti.Score{}, nil)
}

var errBadHeader = errors.New("bad record header")

// decodeRecHeader checks and decodes a record header. It fails (wrapping
// errBadHeader) unless the magic and header checksum match and the type
// and size are ones a writer produces.
func decodeRecHeader(b []byte, magic uint32) (recHeader, error) {
	var h recHeader
	if len(b) < recHeaderSize {
		return h, fmt.Errorf("%w: short", errBadHeader)
	}
	if binary.BigEndian.Uint32(b) != magic {
		return h, fmt.Errorf("%w: wrong magic %#08x", errBadHeader, binary.BigEndian.Uint32(b))
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.BigEndian.Uint32(b[32:]) {
		return h, fmt.Errorf("%w: header checksum mismatch", errBadHeader)
	}
	h.typ = venti.Type(b[4])
	h.size = int(binary.BigEndian.Uint16(b[6:]))
	copy(h.score[:], b[8:28])
	h.dcrc = binary.BigEndian.Uint32(b[28:])
	switch {
	case b[5] != 0:
		return h, fmt.Errorf("%w: unknown flags %#x", errBadHeader, b[5])
	case h.end():
		if h.size != 0 {
			return h, fmt.Errorf("%w: end marker with size %d", errBadHeader, h.size)
		}
	case !h.typ.Valid():
		return h, fmt.Errorf("%w: invalid block type %d", errBadHeader, b[4])
	case h.size == 0 || h.size > venti.MaxBlock:
		return h, fmt.Errorf("%w: block size %d out of range", errBadHeader, h.size)
	}
	return h, nil
}

// dataOK reports whether the record bytes rec (header and block) match the
// data checksum.
func dataOK(rec []byte) bool {
	c := crc32.Update(crc32.Checksum(rec[:28], castagnoli), castagnoli, rec[recHeaderSize:])
	return c == binary.BigEndian.Uint32(rec[28:])
}
