package venti_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gridlord/engine/venti"
)

// noWaitStore is a MemStore that says it holds in memory the blocks whose
// first byte is even (venti.ReaderNoWait), and counts those reads and
// their releases.
type noWaitStore struct {
	*venti.MemStore
	inline, released atomic.Int64
}

func (m *noWaitStore) ReadRefNoWait(s venti.Score, t venti.Type, max int) ([]byte, func(), bool) {
	b, err := m.MemStore.Read(context.Background(), s, t, venti.MaxBlock)
	if err != nil || len(b) == 0 || b[0]%2 != 0 || len(b) > max {
		return nil, nil, false
	}
	m.inline.Add(1)
	var once sync.Once
	return b, func() {
		once.Do(func() { m.released.Add(1) })
	}, true
}

// Reads the store serves from memory are answered by the connection's
// reader goroutine, the others by workers; either way every reply is
// right, pipelined with writes and syncs, and each block referenced is
// released once. A Tread whose count is too small for an in-memory block
// gets the workers' error.
func TestServerReadNoWait(t *testing.T) {
	ctx := context.Background()
	st := &noWaitStore{MemStore: venti.NewMemStore()}
	c := dial(t, serve(t, st))
	var blocks [][]byte
	var scores []venti.Score
	for i := 0; i < 600; i++ {
		n := 1 + i*97%12000 // sizes on both sides of the server's minOwned
		b := bytes.Repeat([]byte(fmt.Sprintf("%c block %d.", byte(i), i)), n/10+1)[:n]
		s, err := st.MemStore.Write(ctx, venti.DataType, b)
		if err != nil {
			t.Fatal(err)
		}
		blocks, scores = append(blocks, b), append(scores, s)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(blocks)+1)
	for i := range blocks {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i%5 == 0 { // writes and syncs among the reads
				data := []byte(fmt.Sprintf("new block %d", i))
				if _, err := c.Write(ctx, venti.DataType, data); err != nil {
					errs <- err
					return
				}
				if err := c.Sync(ctx); err != nil {
					errs <- err
					return
				}
			}
			got, err := c.Read(ctx, scores[i], venti.DataType, venti.MaxBlock)
			if err != nil {
				errs <- fmt.Errorf("read block %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, blocks[i]) {
				errs <- fmt.Errorf("block %d: wrong data", i)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := st.inline.Load(); n < int64(len(blocks))/3 {
		t.Fatalf("%d reads served from memory, want about half of %d", n, len(blocks))
	}
	if _, err := c.Read(ctx, scores[2], venti.DataType, len(blocks[2])-1); err == nil {
		t.Fatal("read with a count below the block's size succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The server releases every in-memory block once it has sent it
	// (just after its write returns, which may be after the reply came).
	deadline := time.Now().Add(10 * time.Second)
	for st.inline.Load() != st.released.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if in, rel := st.inline.Load(), st.released.Load(); in != rel {
		t.Fatalf("%d in-memory reads, %d released", in, rel)
	}
}
