package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/s2"

	"gridlord/engine/venti"
	"gridlord/engine/venti/whack"
)

// On-disk formats. All integers are big-endian.
//
// An arena file (arena.NNNNNN) starts with a 64-byte header:
//
//	0  [8]  "GLVARENA"
//	8  u32  format version: 1 (raw records only), 2 once the arena may hold
//	        S2-compressed records, 3 once it may hold whack-compressed ones
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
//	5  u8   flags: the encoding of the payload (0 raw, 1 S2, 2 whack)
//	6  u16  payload size in bytes (for a raw record, the block size)
//	8  [20] score (SHA-1 of the uncompressed block)
//	28 u32  data checksum: CRC32C of header bytes 0..27 and the payload
//	32 u32  header checksum: CRC32C of header bytes 0..31
//
// The payload of a raw record is the block. That of a compressed record is
//
//	0  u16  block size in bytes (uncompressed)
//	2  u32  CRC32C of the uncompressed block
//	6       the block in S2's block format (github.com/klauspost/compress/s2),
//	        or in venti's whack format (engine/venti/whack) for flags 2
//
// so the data checksum guards the bytes on disk (a scan checks it without
// decoding), while the block checksum and the score guard the block that
// decoding yields. Records are compressed only when that saves space, so a
// payload is never larger than its block. The store's own writes use S2;
// whack records keep the bytes of a clump imported from a plan9port or
// Plan 9 venti arena as they were (WriteWhacked), so that an arena can be
// rebuilt byte for byte from the store (engine/seedstore). Stores written
// before records were compressed (flags 0 everywhere, arena version 1)
// read unchanged; the store moves an arena to the version a record's
// encoding needs before it appends the record, so that an older gridlord
// refuses the arena instead of taking the record for a torn tail.
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
	arenaVersion    = 3 // written by this code; it reads minArenaVersion..arenaVersion
	minArenaVersion = 1 // arenas of raw records only
	endType         = 0 // type byte of the end-of-arena marker record

	flagRaw = 0 // payload is the block
	flagS2  = 1 // payload is the block compressed with S2, after compPrefix bytes
	// flagWhack: payload is the block compressed with whack, after
	// compPrefix bytes.
	flagWhack = 2

	compPrefix = 6 // bytes of a compressed payload before the S2 data: size, CRC32C
	// minCompress is the smallest block worth trying to compress.
	minCompress = 64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// arenaHeader is the decoded header of an arena file.
type arenaHeader struct {
	version uint32 // format version
	num     int    // arena number
	magic   uint32 // record magic
	size    int64  // size limit when created
}

func (h arenaHeader) encode() []byte {
	b := make([]byte, arenaHeaderSize)
	copy(b, arenaFileMagic)
	binary.BigEndian.PutUint32(b[8:], h.version)
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
	h.version = binary.BigEndian.Uint32(b[8:])
	if h.version < minArenaVersion || h.version > arenaVersion {
		return h, fmt.Errorf("arena header: format version %d, this gridlord reads %d..%d", h.version, minArenaVersion, arenaVersion)
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
	flags byte       // flagRaw, flagS2 or flagWhack
	size  int        // payload bytes
	score venti.Score
	dcrc  uint32
}

// end reports whether h is the end-of-arena marker.
func (h recHeader) end() bool { return h.typ == endType }

// encodeRecord writes the record for a block into buf (which must hold
// recHeaderSize+len(payload) bytes) and returns that prefix of buf. flags
// says how payload encodes the block (see compressBlock).
func encodeRecord(buf []byte, magic uint32, t venti.Type, s venti.Score, flags byte, payload []byte) []byte {
	n := recHeaderSize + len(payload)
	b := buf[:n]
	binary.BigEndian.PutUint32(b[0:], magic)
	b[4] = byte(t)
	b[5] = flags
	binary.BigEndian.PutUint16(b[6:], uint16(len(payload)))
	copy(b[8:28], s[:])
	copy(b[recHeaderSize:], payload)
	binary.BigEndian.PutUint32(b[28:], payloadCRC(b, payload))
	binary.BigEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	return b
}

// payloadCRC is the data checksum of a record with header hdr and payload.
func payloadCRC(hdr, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(hdr[:28], castagnoli), castagnoli, payload)
}

// versionFor is the arena format version a record with flags needs.
func versionFor(flags byte) uint32 {
	switch flags {
	case flagRaw:
		return minArenaVersion
	case flagS2:
		return 2
	}
	return 3
}

// whackPayload returns the payload of a whack record of data whose whack
// encoding is whacked (written into dst, which must hold compPrefix +
// len(whacked) bytes), or false when that would not be smaller than the
// block, which is then stored raw.
func whackPayload(dst, data, whacked []byte) ([]byte, bool) {
	if len(whacked) == 0 || compPrefix+len(whacked) > len(data) {
		return nil, false
	}
	binary.BigEndian.PutUint16(dst[0:], uint16(len(data)))
	binary.BigEndian.PutUint32(dst[2:], crc32.Checksum(data, castagnoli))
	copy(dst[compPrefix:], whacked)
	return dst[:compPrefix+len(whacked)], true
}

// compBufSize is the size of a buffer compressBlock can always fill.
var compBufSize = compPrefix + s2.MaxEncodedLen(venti.MaxBlock)

// compressBlock encodes data for a record: the S2-compressed payload
// (written into dst, which must hold compBufSize bytes) when that saves at
// least a sixteenth of the block, else the block itself. S2 gives up
// quickly on incompressible data (random bytes, already compressed
// files), so trying costs a fraction of the SHA-1 every write pays.
func compressBlock(dst, data []byte) (flags byte, payload []byte) {
	if len(data) < minCompress || looksRandom(data) {
		return flagRaw, data
	}
	enc := s2.Encode(dst[compPrefix:cap(dst)], data)
	if compPrefix+len(enc) > len(data)-len(data)/16 {
		return flagRaw, data
	}
	binary.BigEndian.PutUint16(dst[0:], uint16(len(data)))
	binary.BigEndian.PutUint32(dst[2:], crc32.Checksum(data, castagnoli))
	return flagS2, dst[:compPrefix+len(enc)]
}

// Incompressibility detection. S2 gives up on random data at about 6
// GB/s, which is still a sizeable part of what a venti write of such a
// block costs the server (profile of "gridlord venti serve" under "bench
// vac -cli": s2.Encode 8% of its CPU, with SHA-1 at 24%). looksRandom
// estimates from a sample of the block how often two of its bytes are
// equal (the collision probability, whose inverse is the Rényi entropy of
// order 2), at less than half that cost, and compressBlock stores a block
// that looks random raw without trying.
const (
	// sniffMin is the smallest block looksRandom judges: below it
	// compressing costs little anyway.
	sniffMin = 2048
	// sniffSamples is about how many bytes looksRandom samples.
	sniffSamples = 512
	// sniffRatio is the collision probability, in units of that of
	// uniformly random bytes (1/256), below which a block is taken to be
	// random. The estimate from 512 samples of random bytes is 1 ± 0.05;
	// a block with 6% of zeros among random bytes, which S2 shrinks by
	// about the 1/16 compressBlock asks for, has 1.9; any byte value
	// making up 5% of the block gives at least 1.6. The collision
	// probability does not see repeated random strings, which S2 would
	// find: blocks made of them are rare, and stored raw they are only
	// larger, never wrong.
	sniffRatio = 1.4
)

// looksRandom reports whether data is almost surely incompressible,
// judged by the byte collisions of a sample of 256 to 512 of its bytes.
// The stride is odd so that it visits every position modulo any power of
// two: a block of records (8-byte counters, say) whose low bytes alone
// vary does not look random through it.
func looksRandom(data []byte) bool {
	if len(data) < sniffMin {
		return false
	}
	pairs, n := sniffPairs(data)
	// 2·pairs / (n(n-1)) < sniffRatio/256, without a division.
	return 512*float64(pairs) < sniffRatio*float64(n)*float64(n-1)
}

// sniffPairs counts the pairs of equal bytes among the n it samples.
func sniffPairs(data []byte) (pairs, n int) {
	stride := (len(data)+sniffSamples-1)/sniffSamples | 1
	var h [256]uint16
	for i := 0; i < len(data); i += stride {
		b := data[i]
		pairs += int(h[b]) // the byte pairs with each earlier one of its value
		h[b]++
		n++
	}
	return pairs, n
}

// blockSize returns the size of the block a record holds: its payload
// size for a raw record, the size its prefix names for a compressed one.
// The payload must have passed payloadOK.
func blockSize(h recHeader, payload []byte) int {
	if h.flags != flagRaw {
		return int(binary.BigEndian.Uint16(payload))
	}
	return h.size
}

// payloadOK reports whether a record's payload (which has matched the data
// checksum) is well formed: a compressed one must name a block size in
// range that its S2 data agrees with (whack data does not record its
// decoded length). It does not decode.
func payloadOK(h recHeader, payload []byte) bool {
	if h.flags == flagRaw {
		return true
	}
	if len(payload) <= compPrefix {
		return false
	}
	n := int(binary.BigEndian.Uint16(payload))
	if h.flags == flagWhack {
		return n > 0 && n <= venti.MaxBlock
	}
	dl, err := s2.DecodedLen(payload[compPrefix:])
	return n > 0 && n <= venti.MaxBlock && err == nil && dl == n
}

// errBadPayload marks a compressed payload that does not decode to the
// block it names.
var errBadPayload = errors.New("compressed block does not decode")

// decodePayload returns the block a record's payload holds: the payload
// itself for a raw record; for a compressed one the block decoded into
// dst (when it has room; else into a new buffer) and checked against its
// size and CRC32C. The payload is untrusted: bad bytes give an error
// wrapping errBadPayload, never a panic.
func decodePayload(h recHeader, payload, dst []byte) ([]byte, error) {
	if h.flags == flagRaw {
		return payload, nil
	}
	if !payloadOK(h, payload) {
		return nil, fmt.Errorf("%w: bad size or S2 header", errBadPayload)
	}
	n := int(binary.BigEndian.Uint16(payload))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	var out []byte
	var err error
	if h.flags == flagWhack {
		var m int
		m, err = whack.Decode(dst[:n], payload[compPrefix:])
		out = dst[:m]
	} else {
		out, err = s2.Decode(dst[:n], payload[compPrefix:])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadPayload, err)
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errBadPayload, len(out), n)
	}
	if crc32.Checksum(out, castagnoli) != binary.BigEndian.Uint32(payload[2:]) {
		return nil, fmt.Errorf("%w: decoded block checksum mismatch", errBadPayload)
	}
	return out, nil
}

// encodeEnd returns the end-of-arena marker record.
func encodeEnd(magic uint32) []byte {
	b := make([]byte, recHeaderSize)
	return encodeRecord(b, magic, endType, venti.Score{}, flagRaw, nil)
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
	h.flags = b[5]
	h.size = int(binary.BigEndian.Uint16(b[6:]))
	copy(h.score[:], b[8:28])
	h.dcrc = binary.BigEndian.Uint32(b[28:])
	switch {
	case h.flags > flagWhack:
		return h, fmt.Errorf("%w: unknown flags %#x", errBadHeader, b[5])
	case h.end():
		if h.size != 0 || h.flags != flagRaw {
			return h, fmt.Errorf("%w: end marker with size %d", errBadHeader, h.size)
		}
	case !h.typ.Valid():
		return h, fmt.Errorf("%w: invalid block type %d", errBadHeader, b[4])
	case h.size == 0 || h.size > venti.MaxBlock:
		return h, fmt.Errorf("%w: block size %d out of range", errBadHeader, h.size)
	case h.flags != flagRaw && h.size <= compPrefix:
		return h, fmt.Errorf("%w: compressed payload of %d bytes", errBadHeader, h.size)
	}
	return h, nil
}

// dataOK reports whether the record bytes rec (header and payload) match
// the data checksum.
func dataOK(rec []byte) bool { return payloadMatches(rec, rec[recHeaderSize:]) }

// payloadMatches reports whether payload matches the data checksum in the
// record header hdr.
func payloadMatches(hdr, payload []byte) bool {
	return payloadCRC(hdr, payload) == binary.BigEndian.Uint32(hdr[28:])
}
