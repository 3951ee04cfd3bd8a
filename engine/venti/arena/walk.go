package arena

import (
	"context"
	"errors"
	"fmt"

	"gridlord/engine/venti"
	"gridlord/engine/venti/whack"
)

// Position is a point in an arena's clump log: the number of the next
// clump and the log offset of its header.
type Position struct {
	Clump  int   `json:"clump"`
	Offset int64 `json:"offset"`
}

// Entry is one clump met while walking an arena's log.
type Entry struct {
	Clump  int   // clump number in the arena
	Offset int64 // log offset of the clump header (0 is the first clump)
	Next   Position
	// Header is the parsed clump header. In headers-only walks over the
	// directory it is filled from the directory entry instead, with
	// Encoding 0.
	Header Clump
	// Stored holds the clump's stored (possibly compressed) bytes when the
	// walk reads data and Err is nil. It aliases a read buffer that the
	// walk never reuses, so it may be kept.
	Stored []byte
	// Err is set when the clump cannot be used: a bad magic, a header that
	// disagrees with the directory, impossible sizes. The walk goes on
	// with the next clump when the directory says where it starts.
	Err *Error
}

// PartitionOffset converts a log offset of the arena to a partition offset.
func (a *Arena) PartitionOffset(logOff int64) int64 { return a.base() + logOff }

const (
	readWindow = 1 << 20 // bytes of log read at once
	dirGroup   = 64      // directory blocks read at once
)

// Walk calls fn for every clump of the arena from position from (the zero
// Position is the start of the log), in log order: first the clumps the
// trailer's directory lists, then any clumps written after the trailer
// was last updated (found by following the log, as venti does after a
// crash). With withData set each Entry carries the stored bytes; without
// it Walk reads only the directory and the headers of clumps beyond it.
// A clump that cannot be used is passed with Err set; a problem that stops
// the walk early (a truncated partition, a clump whose successor cannot
// be located) is passed as a last Entry with Err set and Next equal to its
// own position. Walk stops at the first error fn returns, or when ctx is
// done; it returns an error only for those and for read errors other
// than truncation.
func (a *Arena) Walk(ctx context.Context, from Position, withData bool, fn func(*Entry) error) error {
	w := walker{a: a, withData: withData}
	pos := from
	dirN := 0
	if !a.NoTrailer {
		dirN = int(a.Mem.Clumps)
	}
	for pos.Clump < dirN {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, stop, err := w.dirClump(pos, dirN)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
		if stop {
			return nil
		}
		pos = e.Next
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := w.logClump(pos)
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		if err := fn(e); err != nil {
			return err
		}
		if e.Err != nil {
			return nil
		}
		pos = e.Next
	}
}

// walker holds the read buffers of one Walk.
type walker struct {
	a        *Arena
	withData bool

	buf    []byte // a window of the log
	bufOff int64  // log offset of buf[0]

	dir   []byte // a group of directory blocks, last block first
	dirK0 int    // number of the first block in dir
	dirNB int    // blocks in dir
}

// dirEntry returns clump i's directory entry and whether it was ever
// written (unwritten entries are all zero).
func (w *walker) dirEntry(i, dirN int) (ClumpInfo, bool, error) {
	a := w.a
	per := a.clumpsPerBlock()
	bs := a.blockSize()
	k := i / per
	if w.dir == nil || k < w.dirK0 || k >= w.dirK0+w.dirNB {
		total := (dirN + per - 1) / per
		nb := min(dirGroup, total-k)
		// Block k lives at base+size-(k+1)*bs; a group of nb blocks from
		// k is one contiguous range ending at block k's end.
		off := a.base() + a.DataSize() - int64(k+nb)*bs
		if off < a.base() || off+int64(nb)*bs > a.p.size {
			return ClumpInfo{}, false, fmt.Errorf("%w: clump directory blocks %d..%d of arena %s", ErrTruncated, k, k+nb-1, a.Name)
		}
		if cap(w.dir) < nb*int(bs) {
			w.dir = make([]byte, nb*int(bs))
		}
		w.dir = w.dir[:nb*int(bs)]
		if err := a.p.readAt(w.dir, off); err != nil {
			w.dir = nil
			return ClumpInfo{}, false, err
		}
		w.dirK0, w.dirNB = k, nb
	}
	blk := w.dir[int64(w.dirK0+w.dirNB-1-k)*bs:]
	b := blk[(i-k*per)*ClumpInfoSize:][:ClumpInfoSize]
	for _, c := range b {
		if c != 0 {
			return parseClumpInfo(b), true, nil
		}
	}
	return ClumpInfo{}, false, nil
}

// read returns n bytes of log at off, reading a fresh window when they are
// not in the current one. limit bounds the window.
func (w *walker) read(off int64, n int, limit int64) ([]byte, error) {
	if w.buf != nil && off >= w.bufOff && off+int64(n) <= w.bufOff+int64(len(w.buf)) {
		s := off - w.bufOff
		return w.buf[s : s+int64(n) : s+int64(n)], nil
	}
	size := int64(max(readWindow, n))
	size = min(size, limit-off)
	// Do not read past the partition's end unless the caller needs it.
	if avail := w.a.p.size - w.a.PartitionOffset(off); size > avail {
		size = max(avail, int64(n))
	}
	w.buf = make([]byte, size) // fresh: earlier Stored slices stay valid
	w.bufOff = off
	if err := w.a.p.readAt(w.buf, w.a.PartitionOffset(off)); err != nil {
		w.buf = nil
		return nil, err
	}
	return w.buf[:n:n], nil
}

// dirClump handles a clump the directory lists. stop reports that the walk
// cannot go on.
func (w *walker) dirClump(pos Position, dirN int) (e *Entry, stop bool, err error) {
	a := w.a
	e = &Entry{Clump: pos.Clump, Offset: pos.Offset}
	fail := func(format string, args ...any) {
		e.Err = a.errorf(pos.Clump, a.PartitionOffset(pos.Offset), format, args...)
	}
	ci, present, err := w.dirEntry(pos.Clump, dirN)
	if err != nil {
		if errors.Is(err, ErrTruncated) {
			fail("clump directory unreadable, %d clumps lost: %w", dirN-pos.Clump, err)
			e.Next = pos
			return e, true, nil
		}
		return nil, false, fmt.Errorf("arena %s: read clump directory: %w", a.Name, err)
	}
	limit := a.DataSize() - a.dirSize(dirN)
	if present {
		e.Next = Position{pos.Clump + 1, pos.Offset + ClumpSize + int64(ci.Size)}
	}
	if !w.withData && present {
		e.Header = Clump{ClumpInfo: ci, Magic: a.ClumpMagic}
		if e.Next.Offset > limit {
			fail("directory places the clump past the end of the log (%d > %d); %d clumps lost", e.Next.Offset, limit, dirN-pos.Clump)
			e.Next = pos
			return e, true, nil
		}
		return e, false, nil
	}
	if pos.Offset+ClumpSize > limit {
		fail("clump header would lie past the end of the log (%d); %d clumps lost", limit, dirN-pos.Clump)
		e.Next = pos
		return e, true, nil
	}
	want := ClumpSize
	if present {
		want += int(ci.Size)
	}
	want = int(min(int64(want), limit-pos.Offset))
	b, err := w.read(pos.Offset, want, limit)
	if err != nil {
		if errors.Is(err, ErrTruncated) {
			fail("%w; %d clumps lost", err, dirN-pos.Clump)
			e.Next = pos
			return e, true, nil
		}
		return nil, false, fmt.Errorf("arena %s: %w", a.Name, err)
	}
	h := parseClump(b)
	e.Header = h
	var herr error
	switch {
	case h.Magic != a.ClumpMagic:
		herr = fmt.Errorf("bad clump magic %#08x, want %#08x", h.Magic, a.ClumpMagic)
	case present && h.ClumpInfo != ci:
		herr = fmt.Errorf("clump header (type %d, %d/%d bytes, score %v) disagrees with the directory (type %d, %d/%d bytes, score %v)",
			uint8(h.Type), h.Size, h.UncSize, h.Score, uint8(ci.Type), ci.Size, ci.UncSize, ci.Score)
	default:
		herr = h.check()
	}
	if !present {
		// An unwritten directory entry: only a sound header says where
		// the next clump is.
		if herr != nil {
			fail("no directory entry and an unusable header (%v); %d clumps lost", herr, dirN-pos.Clump)
			e.Next = pos
			return e, true, nil
		}
		e.Next = Position{pos.Clump + 1, pos.Offset + ClumpSize + int64(h.Size)}
	}
	if e.Next.Offset > limit {
		fail("clump runs past the end of the log (%d > %d); %d clumps lost", e.Next.Offset, limit, dirN-pos.Clump)
		e.Next = pos
		return e, true, nil
	}
	if herr != nil {
		e.Err = a.errorf(pos.Clump, a.PartitionOffset(pos.Offset), "%v", herr)
		return e, false, nil
	}
	if w.withData {
		if len(b) < ClumpSize+int(h.Size) {
			b, err = w.read(pos.Offset, ClumpSize+int(h.Size), limit)
			if err != nil {
				if errors.Is(err, ErrTruncated) {
					fail("%w; %d clumps lost", err, dirN-pos.Clump)
					e.Next = pos
					return e, true, nil
				}
				return nil, false, fmt.Errorf("arena %s: %w", a.Name, err)
			}
		}
		e.Stored = b[ClumpSize : ClumpSize+int(h.Size)]
	}
	return e, false, nil
}

// logClump follows the log past the directory. It returns nil at the end
// of the log: a free-clump terminator, a foreign magic or no room left.
func (w *walker) logClump(pos Position) (*Entry, error) {
	a := w.a
	limit := a.DataSize() - a.dirSize(pos.Clump+1)
	if pos.Offset+ClumpSize > limit {
		return nil, nil
	}
	e := &Entry{Clump: pos.Clump, Offset: pos.Offset, Next: pos}
	fail := func(format string, args ...any) *Entry {
		e.Err = a.errorf(pos.Clump, a.PartitionOffset(pos.Offset), format, args...)
		return e
	}
	// The partition may end inside the log (a truncated copy): then the
	// log goes on only if a clump magic is still visible.
	if avail := a.p.size - a.PartitionOffset(pos.Offset); avail < ClumpSize {
		if avail < 4 {
			return fail("the partition ends inside the arena's log: %w", ErrTruncated), nil
		}
		m := make([]byte, 4)
		if err := a.p.readAt(m, a.PartitionOffset(pos.Offset)); err != nil {
			return nil, fmt.Errorf("arena %s: %w", a.Name, err)
		}
		if be.Uint32(m) != a.ClumpMagic {
			return nil, nil
		}
		return fail("clump header cut off by the end of the partition: %w", ErrTruncated), nil
	}
	b, err := w.read(pos.Offset, ClumpSize, limit)
	if err != nil {
		return nil, fmt.Errorf("arena %s: %w", a.Name, err)
	}
	h := parseClump(b)
	if h.Magic != a.ClumpMagic {
		return nil, nil
	}
	e.Header = h
	if err := h.check(); err != nil {
		return fail("%v (following the log past the directory, so the rest of it is lost)", err), nil
	}
	next := pos.Offset + ClumpSize + int64(h.Size)
	if next > limit {
		return fail("clump runs past the end of the log (%d > %d)", next, limit), nil
	}
	if w.withData {
		b, err = w.read(pos.Offset, ClumpSize+int(h.Size), limit)
		if err != nil {
			if errors.Is(err, ErrTruncated) {
				return fail("clump data cut off: %w", err), nil
			}
			return nil, fmt.Errorf("arena %s: %w", a.Name, err)
		}
		e.Stored = b[ClumpSize:]
	}
	e.Next = Position{pos.Clump + 1, next}
	return e, nil
}

// Decode turns a clump's stored bytes into its block, using buf for
// decompression when it is large enough, and checks the block's score
// and type. The result aliases stored or buf.
func (c *Clump) Decode(stored, buf []byte) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if len(stored) != int(c.Size) {
		return nil, fmt.Errorf("clump has %d stored bytes, its header says %d", len(stored), c.Size)
	}
	data := stored
	if c.Encoding == EncodingWhack {
		if cap(buf) < int(c.UncSize) {
			buf = make([]byte, c.UncSize)
		}
		buf = buf[:c.UncSize]
		n, err := whack.Decode(buf, stored)
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		if n != int(c.UncSize) {
			return nil, fmt.Errorf("decompress: %w: gave %d bytes, want %d", whack.ErrCorrupt, n, c.UncSize)
		}
		data = buf
	}
	if got := venti.Sum(data); got != c.Score {
		return nil, fmt.Errorf("%w: block %v/%v hashes to %v", venti.ErrCorrupt, c.Score, c.Type, got)
	}
	return data, nil
}
