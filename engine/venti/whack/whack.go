// Package whack decodes venti's "whack" compression, the LZ77 variant that
// venti/srv uses for clumps stored with encoding 2 in its arenas.
//
// The bit stream is read most significant bit first. Each item is either a
// literal byte (8 or 9 bits, with a short escape for control and high bytes
// when recent literals were plain text) or a match: a length code (fixed
// codes for 3..9 bytes, an escape that encodes longer lengths in growing
// ranges) followed by a 4-bit offset class and its extra offset bits.
// Matches refer back at most 16 KiB into the output. This is a
// re-implementation of plan9port's src/cmd/venti/srv/unwhack.c.
package whack

import (
	"errors"
	"fmt"
)

// MaxOffset is the furthest back (in bytes) a match may refer.
const MaxOffset = 16 * 1024

// ErrCorrupt is wrapped by every error Decode returns for malformed input.
var ErrCorrupt = errors.New("corrupt whack data")

const (
	minDecode   = 8    // fewest bits that can still hold an item
	maxFastLen  = 7    // lenval codes below this are direct lengths
	bigLenCode  = 0x3c // first 6-bit code of the long-length escape
	bigLenBits  = 6    // bits of that first code
	bigLenBase  = 1    // items in the first long-length range
	litLenCode  = 0    // lenval entry meaning "a literal follows"
	bigLenEntry = 255  // lenval entry meaning "long length follows"
)

// lenval maps the next 5 bits of the stream to a match length (3..6), a
// literal (0) or the long-length escape (255).
var lenval = [32]uint8{
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	3, 3, 3, 3, 3, 3, 3, 3,
	4, 4, 4, 4,
	5,
	6,
	bigLenEntry,
	bigLenEntry,
}

// lenbits is the code length of each direct match length in lenval.
var lenbits = [maxFastLen]uint8{0, 0, 0, 2, 3, 5, 5}

// offbits and offbase give, for each 4-bit offset class, how many extra
// bits follow and the offset they are added to.
var offbits = [16]uint8{5, 5, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 12, 13}

var offbase = [16]uint16{
	0, 0x20, 0x40, 0x60, 0x80, 0xc0, 0x100, 0x180,
	0x200, 0x300, 0x400, 0x600, 0x800, 0xc00, 0x1000, 0x2000,
}

// Decode decompresses src into dst and returns the number of bytes
// written. dst's length is the most the block may decompress to (venti
// knows each clump's uncompressed size); callers should check that n is
// that size. Decode never panics on bad input and never reads or writes
// outside src and dst; malformed data gives an error wrapping ErrCorrupt.
func Decode(dst, src []byte) (n int, err error) {
	var (
		bits     uint64 // bit buffer; the low nbits bits are pending
		nbits    int    // pending bits in the buffer
		over     int    // zero bits added after the end of src
		lithist  = ^uint32(0)
		s, d     int
		srcLen   = len(src)
		dstLimit = len(dst)
	)
	for s < srcLen || nbits-over >= minDecode {
		// Keep at least 25 bits buffered; past the end of src, zeros.
		for nbits <= 24 {
			bits <<= 8
			if s < srcLen {
				bits |= uint64(src[s])
				s++
			} else {
				over += 8
			}
			nbits += 8
		}

		length := int(lenval[(bits>>(nbits-5))&0x1f])
		if length == litLenCode {
			var lit byte
			if lithist&0xf != 0 {
				nbits -= 9
				lit = byte(bits >> nbits)
			} else {
				nbits -= 8
				lit = byte(bits>>nbits) & 0x7f
				if lit < 32 {
					if lit < 24 {
						nbits -= 2
						lit = lit<<2 | byte(bits>>nbits)&3
					} else {
						nbits -= 3
						lit = lit<<3 | byte(bits>>nbits)&7
					}
					lit -= 64
				}
			}
			if d >= dstLimit {
				return d, fmt.Errorf("%w: more output than the %d-byte block", ErrCorrupt, dstLimit)
			}
			dst[d] = lit
			d++
			lithist <<= 1
			if lit < 32 || lit > 127 {
				lithist |= 1
			}
			continue
		}

		if length < bigLenEntry {
			nbits -= int(lenbits[length])
		} else {
			nbits -= bigLenBits
			code := int((bits>>nbits)&(1<<bigLenBits-1)) - bigLenCode
			length = maxFastLen
			use := bigLenBase
			shift := (bigLenBits & 1) ^ 1
			for code >= use {
				length += use
				code -= use
				code <<= 1
				nbits--
				if nbits < 0 {
					return d, fmt.Errorf("%w: match length runs past the data", ErrCorrupt)
				}
				code |= int((bits >> nbits) & 1)
				use <<= shift
				shift ^= 1
			}
			length += code
			for nbits <= 24 {
				bits <<= 8
				if s < srcLen {
					bits |= uint64(src[s])
					s++
				} else {
					over += 8
				}
				nbits += 8
			}
		}

		nbits -= 4
		class := (bits >> nbits) & 0xf
		off := int(offbase[class])
		nb := int(offbits[class])
		nbits -= nb
		off |= int((bits >> nbits) & (1<<nb - 1))
		off++

		if off > d {
			return d, fmt.Errorf("%w: match offset %d before the start of the block (at byte %d)", ErrCorrupt, off, d)
		}
		if length > dstLimit-d {
			return d, fmt.Errorf("%w: match of %d bytes at byte %d overruns the %d-byte block", ErrCorrupt, length, d, dstLimit)
		}
		// A match may overlap its own output (off < length): it repeats
		// the last off bytes, so copy in doubling chunks of the pattern.
		from := d - off
		for n := 0; n < length; {
			n += copy(dst[d+n:d+length], dst[from:d+n])
		}
		d += length
	}
	if nbits < over {
		return d, fmt.Errorf("%w: compressed data ends in the middle of an item", ErrCorrupt)
	}
	return d, nil
}
