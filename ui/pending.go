package ui

import (
	"sync/atomic"
	"time"
)

// pending counts background operations so tests can wait for them. Unlike
// a sync.WaitGroup it may be added to while someone waits (the event
// watcher starts refreshes at any time).
type pending struct{ n atomic.Int64 }

// Add adds d operations.
func (p *pending) Add(d int) { p.n.Add(int64(d)) }

// Done ends one operation.
func (p *pending) Done() { p.n.Add(-1) }

// Wait returns once no operation is under way.
func (p *pending) Wait() {
	for p.n.Load() > 0 {
		time.Sleep(2 * time.Millisecond)
	}
}
