package arena

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"

	"gridlord/engine/venti"
)

// Error reports a problem with one arena or one clump: which arena, which
// clump (-1 for the arena as a whole) and where in the partition.
type Error struct {
	Arena  string // arena name
	Clump  int    // clump number in the arena, or -1
	Offset int64  // byte offset in the partition
	Err    error
}

// Error formats the problem with its arena, clump and offset.
func (e *Error) Error() string {
	if e.Clump < 0 {
		return fmt.Sprintf("arena %s at partition offset %d: %v", e.Arena, e.Offset, e.Err)
	}
	return fmt.Sprintf("arena %s clump %d at partition offset %d: %v", e.Arena, e.Clump, e.Offset, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ErrTruncated is wrapped by errors about data that lies beyond the end of
// the partition.
var ErrTruncated = errors.New("partition is truncated")

// Partition is an opened venti arena partition.
type Partition struct {
	r         io.ReaderAt
	size      int64
	BlockSize uint32   // the partition's block size
	ArenaBase int64    // offset of the first arena
	Arenas    []*Arena // the arenas that could be opened, in map order
	// Problems lists the arenas of the map that could not be opened at
	// all, and oddities of those that were (a corrupt head, a missing
	// trailer). Each is an *Error with Clump -1.
	Problems []*Error
}

// Arena is one arena of a partition.
type Arena struct {
	p          *Partition
	Name       string
	Version    uint32 // 4 or 5
	Start, End int64  // byte range in the partition, head and trailer included
	ClumpMagic uint32 // magic of every clump header in this arena
	// Mem is the state of the clump log according to the trailer, Disk the
	// part of it venti had indexed.
	Mem, Disk    TailStats
	CTime, WTime uint32 // Unix seconds of the first and last write
	// Score is the SHA-1 of the sealed arena, zero until venti summed it.
	Score venti.Score
	// NoTrailer is set when the trailer could not be read; the clumps are
	// then found by following the log from its start.
	NoTrailer bool
}

// blockSize, base and size follow venti/srv: the log starts one block in
// and the data region (log plus directory) ends at the trailer.
func (a *Arena) blockSize() int64 { return int64(a.p.BlockSize) }
func (a *Arena) base() int64      { return a.Start + a.blockSize() }

// DataSize is the size of the region holding the clump log and directory.
func (a *Arena) DataSize() int64 { return a.End - a.Start - 2*a.blockSize() }

func (a *Arena) clumpsPerBlock() int { return int(a.p.BlockSize) / ClumpInfoSize }

// dirSize is the directory space venti reserves for n clumps.
func (a *Arena) dirSize(n int) int64 {
	return int64(n/a.clumpsPerBlock()+1) * a.blockSize()
}

func (a *Arena) errorf(clump int, off int64, format string, args ...any) *Error {
	return &Error{Arena: a.Name, Clump: clump, Offset: off, Err: fmt.Errorf(format, args...)}
}

// Open reads the partition header, the arena map and every arena's head
// and trailer from r, a partition of size bytes. It fails only when the
// partition header or map is unusable; arenas that cannot be read are left
// out and listed in Problems.
func Open(r io.ReaderAt, size int64) (*Partition, error) {
	p := &Partition{r: r, size: size}
	buf := make([]byte, partHeaderSize)
	if err := p.readAt(buf, PartBlank); err != nil {
		return nil, fmt.Errorf("read arena partition header: %w", err)
	}
	h, err := parsePartHeader(buf)
	if err != nil {
		return nil, err
	}
	p.BlockSize = h.blockSize
	p.ArenaBase = int64(h.arenaBase)
	tb := tabBase(h.blockSize)
	if p.ArenaBase > size {
		return nil, fmt.Errorf("arena partition: first arena at %d lies beyond the partition's end (%d): %w", p.ArenaBase, size, ErrTruncated)
	}
	tab := make([]byte, p.ArenaBase-tb)
	if err := p.readAt(tab, tb); err != nil {
		return nil, fmt.Errorf("read arena map at offset %d: %w", tb, err)
	}
	m, err := parseMap(tab)
	if err != nil {
		return nil, err
	}
	last := p.ArenaBase
	seen := make(map[string]bool)
	for i, e := range m {
		if e.start < last {
			return nil, fmt.Errorf("arena map: arena %s starts at %d, inside the map or the previous arena (ends %d)", e.name, e.start, last)
		}
		if seen[e.name] {
			return nil, fmt.Errorf("arena map: arena name %s appears twice", e.name)
		}
		seen[e.name] = true
		last = e.stop
		a, err := p.openArena(e)
		if err != nil {
			p.Problems = append(p.Problems, &Error{Arena: e.name, Clump: -1, Offset: e.start, Err: fmt.Errorf("arena %d of %d unusable: %w", i+1, len(m), err)})
			continue
		}
		p.Arenas = append(p.Arenas, a)
	}
	return p, nil
}

// Size returns the partition size given to Open.
func (p *Partition) Size() int64 { return p.size }

// readAt fills b from offset off, failing with ErrTruncated for bytes
// beyond the partition.
func (p *Partition) readAt(b []byte, off int64) error {
	if off < 0 || off > p.size || int64(len(b)) > p.size-off {
		return fmt.Errorf("%w: %d bytes at offset %d, but the partition is %d bytes", ErrTruncated, len(b), off, p.size)
	}
	n, err := p.r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: read %d of %d bytes at offset %d", ErrTruncated, n, len(b), off)
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(b), off, err)
}

// openArena reads an arena's head and trailer. The trailer is
// authoritative, as in venti; without a readable trailer the head alone
// is enough to follow the log.
func (p *Partition) openArena(e mapEntry) (*Arena, error) {
	bs := int64(p.BlockSize)
	if e.stop-e.start < 3*bs {
		return nil, fmt.Errorf("arena of %d bytes is smaller than three %d-byte blocks", e.stop-e.start, bs)
	}
	a := &Arena{p: p, Name: e.name, Start: e.start, End: e.stop}
	blk := make([]byte, bs)
	headErr := p.readAt(blk, e.start)
	var head arenaHead
	if headErr == nil {
		head, headErr = parseHead(blk)
	}
	if headErr == nil {
		switch {
		case head.name != e.name:
			headErr = fmt.Errorf("arena head names arena %q, the map %q", head.name, e.name)
		case head.blockSize != p.BlockSize:
			headErr = fmt.Errorf("arena head block size %d differs from the partition's %d", head.blockSize, p.BlockSize)
		case head.size != uint64(e.stop-e.start):
			headErr = fmt.Errorf("arena head size %d differs from the map's %d", head.size, e.stop-e.start)
		}
	}
	tailOff := e.stop - bs
	tailErr := p.readAt(blk, tailOff)
	var tail arenaTail
	if tailErr == nil {
		tail, tailErr = parseTail(blk)
	}
	if tailErr == nil {
		switch {
		case tail.name != e.name:
			tailErr = fmt.Errorf("arena trailer names arena %q, the map %q", tail.name, e.name)
		case headErr == nil && (tail.clumpMagic != head.clumpMagic || tail.version != head.version):
			tailErr = fmt.Errorf("arena trailer (version %d, clump magic %#08x) disagrees with the head (version %d, clump magic %#08x)",
				tail.version, tail.clumpMagic, head.version, head.clumpMagic)
		}
	}
	if tailErr == nil {
		a.Version, a.ClumpMagic = tail.version, tail.clumpMagic
		a.Mem, a.Disk = tail.mem, tail.disk
		a.CTime, a.WTime, a.Score = tail.ctime, tail.wtime, tail.score
		switch {
		case a.Mem.Used+uint64(a.dirSize(int(a.Mem.Clumps))) > uint64(a.DataSize()) || a.Mem.Clumps > uint32(a.DataSize()/ClumpSize):
			tailErr = fmt.Errorf("arena trailer claims %d clumps in %d bytes, more than the arena holds", a.Mem.Clumps, a.Mem.Used)
		case a.Mem.CClumps > a.Mem.Clumps:
			tailErr = fmt.Errorf("arena trailer claims more compressed clumps (%d) than clumps (%d)", a.Mem.CClumps, a.Mem.Clumps)
		}
	}
	switch {
	case tailErr == nil && headErr != nil:
		p.Problems = append(p.Problems, &Error{Arena: e.name, Clump: -1, Offset: e.start, Err: fmt.Errorf("arena head ignored, the trailer is used: %w", headErr)})
	case tailErr != nil && headErr == nil:
		p.Problems = append(p.Problems, &Error{Arena: e.name, Clump: -1, Offset: tailOff, Err: fmt.Errorf("arena trailer unusable, following the clump log from its start instead: %w", tailErr)})
		*a = Arena{p: p, Name: e.name, Start: e.start, End: e.stop, Version: head.version, ClumpMagic: head.clumpMagic, NoTrailer: true}
	case tailErr != nil:
		return nil, fmt.Errorf("arena head: %v; arena trailer: %w", headErr, tailErr)
	}
	if a.ClumpMagic == clumpFreeMagic {
		return nil, fmt.Errorf("arena clump magic is 0, which would end the log at once")
	}
	return a, nil
}

// VerifyScore recomputes the SHA-1 of a sealed arena (head through
// trailer, with the score field counted as zeros) and compares it with
// the score in the trailer. It returns an error if the arena is not
// sealed, has no score yet, or the scores differ.
func (a *Arena) VerifyScore(ctx context.Context) error {
	if a.NoTrailer || !a.Mem.Sealed {
		return fmt.Errorf("arena %s is not sealed: it has no arena score", a.Name)
	}
	if a.Score == (venti.Score{}) {
		return fmt.Errorf("arena %s is sealed but venti has not computed its score yet", a.Name)
	}
	h := sha1.New()
	buf := make([]byte, 1<<20)
	end := a.End - a.blockSize()
	for off := a.Start; off < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int64(len(buf))
		if end-off < n {
			n = end - off
		}
		if err := a.p.readAt(buf[:n], off); err != nil {
			return fmt.Errorf("arena %s: %w", a.Name, err)
		}
		h.Write(buf[:n])
		off += n
	}
	last := buf[:a.blockSize()]
	if err := a.p.readAt(last, end); err != nil {
		return fmt.Errorf("arena %s: %w", a.Name, err)
	}
	clear(last[len(last)-venti.ScoreSize:])
	h.Write(last)
	if got := venti.Score(h.Sum(nil)); got != a.Score {
		return fmt.Errorf("arena %s: contents hash to %v, the trailer records %v", a.Name, got, a.Score)
	}
	return nil
}
