package venti

import (
	"context"
	"fmt"
	"sync"
)

// MemStore is a Store that keeps blocks in memory. It is for tests and for
// short-lived scratch stores; Sync is a no-op.
type MemStore struct {
	mu     sync.RWMutex
	blocks map[memKey][]byte
}

type memKey struct {
	s Score
	t Type
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{blocks: make(map[memKey][]byte)} }

// Read implements Reader.
func (m *MemStore) Read(ctx context.Context, s Score, t Type, max int) ([]byte, error) {
	if s == ZeroScore {
		return []byte{}, nil
	}
	m.mu.RLock()
	b, ok := m.blocks[memKey{s, t}]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("read %v/%v: %w", s, t, ErrNotFound)
	}
	if len(b) > max {
		return nil, fmt.Errorf("read %v/%v: block is %d bytes, more than the %d asked for", s, t, len(b), max)
	}
	return append([]byte(nil), b...), nil
}

// Write implements Writer.
func (m *MemStore) Write(ctx context.Context, t Type, data []byte) (Score, error) {
	if err := CheckWrite(t, data); err != nil {
		return Score{}, err
	}
	if len(data) == 0 {
		return ZeroScore, nil
	}
	s := Sum(data)
	m.mu.Lock()
	if _, ok := m.blocks[memKey{s, t}]; !ok {
		m.blocks[memKey{s, t}] = append([]byte(nil), data...)
	}
	m.mu.Unlock()
	return s, nil
}

// Sync implements Syncer; memory needs no flushing.
func (m *MemStore) Sync(ctx context.Context) error { return nil }

// Len returns the number of blocks stored.
func (m *MemStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.blocks)
}
