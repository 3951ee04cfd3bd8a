package arena

import (
	"context"
	"errors"
	"fmt"
	"io"

	"gridlord/engine/venti"
)

// ErrReadOnly is returned (wrapped) by Store.Write.
var ErrReadOnly = errors.New("venti arenas opened read-only: blocks cannot be written")

// Store serves the blocks of an arena partition read-only. It implements
// venti.Store; Write fails with ErrReadOnly and Sync does nothing.
type Store struct {
	p     *Partition
	index map[key]loc
	// Problems lists what was skipped while indexing: unusable arenas and
	// clumps whose headers could not be used.
	Problems []*Error
}

type key struct {
	s venti.Score
	t venti.Type
}

// loc is where a clump lives: arena number and log offset.
type loc struct {
	arena int32
	size  uint16 // stored size
	off   int64
}

var _ venti.Store = (*Store)(nil)

// OpenStore opens the arena partition in r (size bytes) and indexes every
// clump, (score, type) → (arena, offset), in memory from the clump
// directories (about 25 bytes read per block), following the log only
// past the directories. Reads decode and verify each block.
func OpenStore(ctx context.Context, r io.ReaderAt, size int64) (*Store, error) {
	p, err := Open(r, size)
	if err != nil {
		return nil, err
	}
	st := &Store{p: p, index: make(map[key]loc), Problems: append([]*Error(nil), p.Problems...)}
	for i, a := range p.Arenas {
		err := a.Walk(ctx, Position{}, false, func(e *Entry) error {
			if e.Err != nil {
				st.Problems = append(st.Problems, e.Err)
				return nil
			}
			k := key{e.Header.Score, e.Header.Type}
			if _, dup := st.index[k]; !dup {
				st.index[k] = loc{arena: int32(i), size: e.Header.Size, off: e.Offset}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("index arena %s: %w", a.Name, err)
		}
	}
	return st, nil
}

// Partition returns the partition the store reads.
func (s *Store) Partition() *Partition { return s.p }

// Len returns the number of blocks indexed.
func (s *Store) Len() int { return len(s.index) }

// Read implements venti.Reader.
func (s *Store) Read(ctx context.Context, sc venti.Score, t venti.Type, max int) ([]byte, error) {
	if sc == venti.ZeroScore {
		return []byte{}, nil
	}
	l, ok := s.index[key{sc, t}]
	if !ok {
		return nil, fmt.Errorf("read %v/%v: %w", sc, t, venti.ErrNotFound)
	}
	a := s.p.Arenas[l.arena]
	buf := make([]byte, ClumpSize+int(l.size))
	if err := s.p.readAt(buf, a.PartitionOffset(l.off)); err != nil {
		return nil, fmt.Errorf("read %v/%v from arena %s: %w", sc, t, a.Name, err)
	}
	h := parseClump(buf)
	if h.Magic != a.ClumpMagic || h.Score != sc || h.Type != t || h.Size != l.size {
		return nil, fmt.Errorf("read %v/%v: %w: clump header at arena %s offset %d does not match the directory",
			sc, t, venti.ErrCorrupt, a.Name, a.PartitionOffset(l.off))
	}
	if int(h.UncSize) > max {
		return nil, fmt.Errorf("read %v/%v: block is %d bytes, more than the %d asked for", sc, t, h.UncSize, max)
	}
	data, err := h.Decode(buf[ClumpSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("read %v/%v from arena %s offset %d: %w", sc, t, a.Name, a.PartitionOffset(l.off), err)
	}
	return data, nil
}

// Write implements venti.Writer by refusing: the arenas are read-only.
func (s *Store) Write(ctx context.Context, t venti.Type, data []byte) (venti.Score, error) {
	return venti.Score{}, fmt.Errorf("write %v block: %w", t, ErrReadOnly)
}

// Sync implements venti.Syncer; there is nothing to flush.
func (s *Store) Sync(ctx context.Context) error { return nil }
