package venti

// ZeroTruncate returns the prefix of a block that venti stores, as
// libventi's vtzerotruncate does: data and dir blocks lose trailing zero
// bytes; pointer blocks lose slop past the last whole score and then
// trailing ZeroScore entries; root blocks are kept whole.
func ZeroTruncate(t Type, b []byte) []byte {
	switch {
	case t == RootType:
		return b
	case t.IsPointer():
		n := len(b) / ScoreSize * ScoreSize
		for n >= ScoreSize && Score(b[n-ScoreSize:n]) == ZeroScore {
			n -= ScoreSize
		}
		return b[:n]
	default:
		n := len(b)
		for n > 0 && b[n-1] == 0 {
			n--
		}
		return b[:n]
	}
}

// ZeroExtend extends a stored block to size bytes, as libventi's
// vtzeroextend does: data and dir blocks with zero bytes; pointer blocks
// with ZeroScore entries for every whole score slot and zero bytes for the
// slop. It returns b unchanged when it is already size bytes or longer.
func ZeroExtend(t Type, b []byte, size int) []byte {
	if len(b) >= size {
		return b
	}
	out := make([]byte, size)
	copy(out, b)
	if t.IsPointer() {
		for off := (len(b) + ScoreSize - 1) / ScoreSize * ScoreSize; off+ScoreSize <= size; off += ScoreSize {
			copy(out[off:], ZeroScore[:])
		}
	}
	return out
}
