package whack

// Encoder constants (whack.c).
const (
	minMatch     = 3                     // shortest match
	maxLen       = 2051                  // longest match
	hashLog      = 14                    // bits of the match-finder hash
	hashSize     = 1 << hashLog          //
	encFastLen   = 9                     // lengths below minMatch+9 use lentab
	encBigCode   = 0x1f4                 // first code of the long-length escape
	encBigBits   = 9                     // its bit length
	encBigBase   = 4                     // items in its first range
	minOffBits   = 6                     // offset bits of the smallest class
	maxOffBits   = minOffBits + 8        //
	maxCheck     = 64 - 64>>2            // chain steps per match search (level 6)
	encodeBegin  = uint16(2 * MaxOffset) // first "time"; empty slots look too old
	encodeLitCap = 5                     // bail out if 4 bytes cost over 5 literals
)

// lentab holds the fixed codes of match lengths minMatch..minMatch+8.
var lentab = [encFastLen]struct {
	bits uint
	code uint64
}{
	{2, 0x2}, {3, 0x6}, {5, 0x1c}, {5, 0x1d}, {6, 0x3c},
	{7, 0x7a}, {7, 0x7b}, {8, 0xf8}, {8, 0xf9},
}

// Encoder compresses blocks exactly as venti/srv's whackblock does, so its
// output for a block is byte-identical to what venti stores. The zero
// value is ready to use; an Encoder reuses its 64 KiB of tables between
// calls and must not be used concurrently.
type Encoder struct {
	hash [hashSize]uint16
	next [MaxOffset]uint16
}

// Encode compresses src into dst, which must have room for len(src)
// bytes, and returns the compressed length. It returns -1 when the
// compressed form would not be smaller than src (venti then stores the
// block uncompressed).
func Encode(dst, src []byte) int {
	var e Encoder
	return e.Encode(dst, src)
}

func hashOf(c uint32) int {
	return int(((uint64(c&0xffffff) * 0x6b43a9b5) >> (32 - hashLog)) & (hashSize - 1))
}

// Encode is the package-level Encode with reused tables.
func (e *Encoder) Encode(dst, src []byte) int {
	n := len(src)
	if n < minMatch || len(dst) < n {
		return -1
	}
	clear(e.hash[:])
	clear(e.next[:])
	dst = dst[:n]
	var (
		wbits   uint64
		wnbits  uint
		w       int // bytes written to dst
		now     = encodeBegin
		s       int
		cont    = uint32(src[0])<<16 | uint32(src[1])<<8 | uint32(src[2])
		half    = n >> 1
		lits    int
		lithist = ^uint32(0)
	)
	flush := func() bool {
		for ; wnbits >= 8; wnbits -= 8 {
			if w >= n {
				return false
			}
			dst[w] = byte(wbits >> (wnbits - 8))
			w++
		}
		return true
	}
	insert := func(h int) {
		e.next[now&(MaxOffset-1)] = e.hash[h]
		e.hash[h] = now
	}
	for s < n {
		h := hashOf(cont)
		off, length := e.match(src, s, h, now)
		if !flush() {
			return -1
		}
		if length < minMatch {
			lit := uint64(src[s])
			lithist <<= 1
			if lit < 32 || lit > 127 {
				lithist |= 1
			}
			switch {
			case lithist&0x1e != 0:
				wbits, wnbits = wbits<<9|lit, wnbits+9
			case lithist&1 != 0:
				lit = (lit + 64) & 0xff
				if lit < 96 {
					wbits, wnbits = wbits<<10|lit, wnbits+10
				} else {
					wbits, wnbits = wbits<<11|lit, wnbits+11
				}
			default:
				wbits, wnbits = wbits<<8|lit, wnbits+8
			}
			lits++
			// Give up early when half the block barely compressed.
			if s > half {
				if 4*s < encodeLitCap*lits {
					return -1
				}
				half = n
			}
			if s+minMatch <= n {
				insert(h)
				if s+minMatch < n {
					cont = cont<<8 | uint32(src[s+minMatch])
				}
			}
			now++
			s++
			continue
		}

		if length > maxLen {
			length = maxLen
		}
		end := s + length
		l := length - minMatch
		if l < encFastLen {
			wbits, wnbits = wbits<<lentab[l].bits|lentab[l].code, wnbits+lentab[l].bits
		} else {
			code, bits, use := uint64(encBigCode), uint(encBigBits), encBigBase
			l -= encFastLen
			for l >= use {
				l -= use
				code = (code + uint64(use)) << 1
				use <<= (bits & 1) ^ 1
				bits++
			}
			wbits, wnbits = wbits<<bits|(code+uint64(l)), wnbits+bits
			if !flush() {
				return -1
			}
		}

		off--
		bits := uint(minOffBits)
		for off >= 1<<bits {
			bits++
		}
		if bits < maxOffBits-1 {
			wbits = wbits<<3 | uint64(bits-minOffBits)
			if bits != minOffBits {
				bits--
			}
			wnbits += bits + 3
		} else {
			wbits = wbits<<4 | 0xe | uint64(bits-(maxOffBits-1))
			bits--
			wnbits += bits + 4
		}
		wbits = wbits<<bits | uint64(off)&(1<<bits-1)

		for ; s != end; s++ {
			if s+minMatch <= n {
				insert(hashOf(cont))
				if s+minMatch < n {
					cont = cont<<8 | uint32(src[s+minMatch])
				}
			}
			now++
		}
	}
	if wnbits&7 != 0 {
		pad := 8 - wnbits&7
		wbits <<= pad
		wnbits += pad
	}
	if !flush() || w >= n {
		return -1 // venti keeps a block compressed only if that saves space
	}
	return w
}

// match finds the longest earlier occurrence of the bytes at src[s:],
// following the hash chain for at most maxCheck steps as whackmatch does.
// It returns the distance back and the length (0 if none of minMatch).
func (e *Encoder) match(src []byte, s, h int, now uint16) (bestOff, bestLen int) {
	esrc := len(src)
	if esrc < s+minMatch {
		return 0, 0
	}
	if s+maxLen < esrc {
		esrc = s + maxLen
	}
	var last uint16
	then := e.hash[h]
	for check := maxCheck; check > 0; check-- {
		off := now - then
		if off <= last || int(off) > MaxOffset || int(off) > s {
			break
		}
		t := s - int(off)
		if src[s] == src[t] && src[s+1] == src[t+1] && src[s+2] == src[t+2] {
			if bestLen == 0 || (esrc-s > bestLen && src[s+bestLen] == src[t+bestLen]) {
				i := s + 3
				j := t + 3
				for i < esrc && src[i] == src[j] {
					i++
					j++
				}
				if i-s > bestLen {
					bestLen = i - s
					bestOff = int(off)
					if bestLen > maxCheck {
						break
					}
				}
			}
		}
		last = off
		then = e.next[then&(MaxOffset-1)]
	}
	return bestOff, bestLen
}
