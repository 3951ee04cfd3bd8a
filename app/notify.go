package app

import (
	"context"
	"sync"
)

// Notifier broadcasts "something changed". It counts changes, so a
// subscriber (Subscribe) never misses one that happens while it is busy
// handling the previous one; Changed suits a single consumer. The zero
// value is ready to use.
type Notifier struct {
	mu     sync.Mutex
	gen    uint64
	ch     chan struct{}
	missed bool
}

// Changed returns a channel closed at the next Notify. A Notify that found
// nobody waiting is not lost: the next Changed returns a closed channel.
func (n *Notifier) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.missed {
		n.missed = false
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return n.chLocked()
}

func (n *Notifier) chLocked() chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Notify records a change and wakes everyone waiting.
func (n *Notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gen++
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	} else {
		n.missed = true
	}
}

// since returns the change count and a channel closed at the next change
// (already closed if the count is past gen).
func (n *Notifier) since(gen uint64) (<-chan struct{}, uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.gen > gen {
		ch := make(chan struct{})
		close(ch)
		return ch, n.gen
	}
	return n.chLocked(), n.gen
}

// Subscribe returns a channel that receives after every change from now on
// (changes that come while the receiver is busy are merged into one), and
// is closed when ctx ends.
func (n *Notifier) Subscribe(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	_, gen := n.since(^uint64(0))
	go func() {
		defer close(out)
		for {
			ch, cur := n.since(gen)
			if cur > gen {
				gen = cur
				select {
				case out <- struct{}{}:
				default: // one is already pending
				}
				continue
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
