package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"gridlord/engine/venti"
)

// Reading the log in store order: what a mirror pusher (like venti's
// rdarena | wrarena) needs. An Iter reads records from a position through
// the arena files with pread, holding no store lock during I/O, and only
// up to the durable end of the log (see Store.Durable): a record a crash
// can still take away is never handed out, so a position saved after it
// always lies on a record boundary of the log that Open recovers.
//
// Locking: Iter touches only atomics of the store (the arena list, the
// durable end, the closed flag) and the wake channel, whose mutex is
// never held during I/O.

// Pos is a position in a store's log: an arena number and a byte offset in
// that arena file. Positions are ordered by arena, then offset; a position
// from Record.Next or Iter.Pos always lies on a record boundary.
type Pos struct {
	Arena  int   `json:"arena"`
	Offset int64 `json:"offset"`
}

// StartPos is the position of the first record of every store.
func StartPos() Pos { return Pos{0, arenaHeaderSize} }

// String formats p for messages: "arena 3 offset 4096".
func (p Pos) String() string { return fmt.Sprintf("arena %d offset %d", p.Arena, p.Offset) }

// Compare returns -1, 0 or +1 as p is before, at or after q.
func (p Pos) Compare(q Pos) int {
	switch {
	case p.Arena != q.Arena:
		return cmpInt(p.Arena, q.Arena)
	case p.Offset < q.Offset:
		return -1
	case p.Offset > q.Offset:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int {
	if a < b {
		return -1
	}
	return 1
}

func (p Pos) addr() uint64 { return makeAddr(p.Arena, p.Offset) }

func posOf(a uint64) Pos { return Pos{addrArena(a), addrOffset(a)} }

// ErrCaughtUp is returned by Iter.Next when it has read every durable
// record; Iter.Wait then waits for more.
var ErrCaughtUp = errors.New("no more durable records")

// ErrBadPos is wrapped by Records' error when the position is not a
// record boundary of this store's log (a position saved for another
// store, or damaged).
var ErrBadPos = errors.New("not a record position of this store")

// Record is one block record of the log.
type Record struct {
	Score venti.Score
	Type  venti.Type
	// Data is the block, decompressed and checked against its CRC32C (not
	// its SHA-1: a venti client recomputes that anyway). It is valid only
	// until the next call of Next and must not be modified.
	Data   []byte
	Pos    Pos // where the record starts
	Next   Pos // where the next one starts: resume there to read on
	Stored int // bytes the record takes in the log, header included
	// Size is the block's size: len(Data), or for a damaged record the
	// payload size its header names (as the index counts it).
	Size int
}

// waker lets goroutines wait for an event that a writer signals without
// knowing who waits.
type waker struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel that is closed at the next wake.
func (w *waker) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// wake closes the channel waiters hold.
func (w *waker) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// ID identifies the store's log: arena 0's record magic, chosen at random
// when the store was created, as 8 hex digits. A position saved with one
// store's ID means nothing in a store with another.
func (st *Store) ID() string {
	as := *st.arenas.Load()
	return fmt.Sprintf("%08x", as[0].magic)
}

// Durable returns the end of the durable log: every record before it is
// on stable storage (a Sync covered it), and Iter reads up to it. It
// advances when a Sync completes.
func (st *Store) Durable() Pos { return posOf(st.durable.Load()) }

// Iter reads a store's records in log order. It is not safe for
// concurrent use; any number of Iters may read one store at once, while
// it is written.
type Iter struct {
	st  *Store
	pos uint64 // log address of the next record
	a   *arena // the arena w reads
	w   window
	buf []byte // decompressed blocks
}

// Records returns an iterator over the records from position from, which
// must be StartPos, a position an Iter or Record returned for this store,
// or the durable end; anything else gives an error wrapping ErrBadPos.
func (st *Store) Records(from Pos) (*Iter, error) {
	if st.isClosed.Load() {
		return nil, fmt.Errorf("read log from %v: %w", from, ErrClosed)
	}
	it := &Iter{st: st, pos: from.addr(), buf: make([]byte, venti.MaxBlock)}
	end := st.durable.Load()
	as := *st.arenas.Load()
	bad := func(why string) error {
		return fmt.Errorf("read log of %s from %v: %w: %s", st.dir, from, ErrBadPos, why)
	}
	switch {
	case from.Arena < 0 || from.Arena >= len(as) || from.Offset < arenaHeaderSize || from.Offset >= maxArenaSize:
		return nil, bad(fmt.Sprintf("the store has %d arenas", len(as)))
	case it.pos > end:
		return nil, bad(fmt.Sprintf("past the durable end of the log (%v)", posOf(end)))
	case it.pos == end || from.Offset == arenaHeaderSize:
		return it, nil
	}
	a := as[from.Arena]
	limit := it.limit(a, end)
	var hb [recHeaderSize]byte
	if from.Offset+recHeaderSize > limit {
		return nil, bad(fmt.Sprintf("past the end of %s (%d bytes)", a.path, limit))
	}
	if _, err := a.f.ReadAt(hb[:], from.Offset); err != nil {
		return nil, fmt.Errorf("read log of %s from %v: %w", st.dir, from, it.ioErr(err))
	}
	if _, err := decodeRecHeader(hb[:], a.magic); err != nil {
		return nil, bad(err.Error())
	}
	return it, nil
}

// Pos returns the position of the next record Next reads.
func (it *Iter) Pos() Pos { return posOf(it.pos) }

// limit returns how many bytes of arena a belong to the durable log whose
// end is end.
func (it *Iter) limit(a *arena, end uint64) int64 {
	if addrArena(end) == a.num {
		return addrOffset(end)
	}
	return a.limit.Load() // an older arena: complete up to its end marker
}

// ioErr turns a read error of a closed store into ErrClosed.
func (it *Iter) ioErr(err error) error {
	if it.st.isClosed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Next returns the next durable record and advances past it. When every
// durable record has been read it returns ErrCaughtUp (call Wait, then
// Next again). A damaged record, or damaged bytes where a record should
// start, give an error wrapping venti.ErrCorrupt that names the place;
// the iterator has then moved past the damage (to the next good record),
// so calling Next again reads on. For a damaged record with a good header
// the Record names its score, type and positions. A closed store gives
// ErrClosed.
func (it *Iter) Next(ctx context.Context) (Record, error) {
	st := it.st
	for {
		if err := ctx.Err(); err != nil {
			return Record{}, err
		}
		if st.isClosed.Load() {
			return Record{}, ErrClosed
		}
		end := st.durable.Load()
		if it.pos >= end {
			return Record{}, ErrCaughtUp
		}
		as := *st.arenas.Load()
		num, off := addrArena(it.pos), addrOffset(it.pos)
		a := as[num]
		limit := it.limit(a, end)
		if it.a != a {
			it.a, it.w = a, window{r: a.f, base: -1, mem: it.w.mem}
		}
		it.w.size = limit
		next := func() error { // step to the next arena
			if num+1 >= len(as) {
				// Cannot happen in a store's log (a sealed arena is
				// followed by the next before any record is durable
				// there); skip to the durable end rather than stall.
				it.pos = makeAddr(num, limit)
				return fmt.Errorf("%w: %s ends at offset %d, before the durable end of the log (%v)", venti.ErrCorrupt, a.path, off, posOf(end))
			}
			it.pos = makeAddr(num+1, arenaHeaderSize)
			return nil
		}
		if off >= limit {
			// An older arena that lacks its end marker (a crash while it
			// filled; Open warns about it): the log goes on in the next.
			if err := next(); err != nil {
				return Record{}, err
			}
			continue
		}
		hb, err := it.w.get(off, recHeaderSize)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return Record{}, fmt.Errorf("read %s offset %d: %w", a.path, off, it.ioErr(err))
		}
		var h recHeader
		if err == nil {
			h, err = decodeRecHeader(hb, a.magic)
		}
		if err != nil {
			return Record{}, it.skipDamage(a, off, limit, err, next)
		}
		if h.end() {
			if err := next(); err != nil {
				return Record{}, err
			}
			continue
		}
		rb, err := it.w.get(off, recHeaderSize+h.size)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return Record{}, fmt.Errorf("read %s offset %d: %w", a.path, off, it.ioErr(err))
		}
		if err != nil {
			return Record{}, it.skipDamage(a, off, limit, fmt.Errorf("record of %d bytes runs past the end of the log", h.size), next)
		}
		rec := Record{Score: h.score, Type: h.typ, Pos: posOf(it.pos), Next: Pos{num, off + int64(len(rb))}, Stored: len(rb), Size: h.size}
		it.pos = rec.Next.addr()
		corrupt := func(why string) error {
			return fmt.Errorf("log record %v/%v at %s offset %d: %w: %s", h.score, h.typ, a.path, off, venti.ErrCorrupt, why)
		}
		if !dataOK(rb) {
			return rec, corrupt("block checksum mismatch")
		}
		data, err := decodePayload(h, rb[recHeaderSize:], it.buf)
		if err != nil {
			return rec, corrupt(err.Error())
		}
		rec.Data, rec.Size = data, len(data)
		return rec, nil
	}
}

// skipDamage moves the iterator past undecodable bytes at off in arena a
// (whose durable log ends at limit) to the next good record, or to the
// next arena when none follows (to the durable end in the last arena);
// it returns the error that reports the
// damage.
func (it *Iter) skipDamage(a *arena, off, limit int64, why error, next func() error) error {
	err := fmt.Errorf("log at %s offset %d: %w: %v", a.path, off, venti.ErrCorrupt, why)
	at, ok, ferr := findRecord(a.f, limit, a.magic, off+1)
	switch {
	case ferr != nil:
		return fmt.Errorf("%w (and searching past it: %w)", err, it.ioErr(ferr))
	case ok:
		it.pos = makeAddr(a.num, at)
		return fmt.Errorf("%w; skipped %d bytes to the next good record", err, at-off)
	}
	next() // in the last arena it skips to the durable end
	return err
}

// Wait blocks until the durable log extends past the iterator's position
// (Next then has a record), the store is closed (ErrClosed) or ctx is
// done.
func (it *Iter) Wait(ctx context.Context) error {
	for {
		ch := it.st.durableWake.wait()
		if it.st.isClosed.Load() {
			return ErrClosed
		}
		if it.st.durable.Load() > it.pos {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
