package venti_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"gridlord/engine/venti"
)

// asyncResult collects the outcome of asynchronous calls.
type asyncResult struct {
	mu   sync.Mutex
	errs []error
	data map[int][]byte
	wg   sync.WaitGroup
}

func (r *asyncResult) writeDone() func(error) {
	r.wg.Add(1)
	return func(err error) {
		r.mu.Lock()
		if err != nil {
			r.errs = append(r.errs, err)
		}
		r.mu.Unlock()
		r.wg.Done()
	}
}

func (r *asyncResult) readDone(i int) func([]byte, error) {
	r.wg.Add(1)
	return func(b []byte, err error) {
		r.mu.Lock()
		if err != nil {
			r.errs = append(r.errs, err)
		} else {
			r.data[i] = append([]byte(nil), b...)
		}
		r.mu.Unlock()
		r.wg.Done()
	}
}

// wait waits for every callback, failing the test after 10 seconds.
func (r *asyncResult) wait(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("asynchronous calls did not complete within 10s")
	}
}

// Pipelined writes and reads: each callback runs once with the right
// outcome, reads land in the caller's buffers and are checked.
func TestClientAsync(t *testing.T) {
	ctx := context.Background()
	st := venti.NewMemStore()
	c := dial(t, serve(t, st))
	const n = 600 // more than the 256 tags
	blocks := make([][]byte, n)
	scores := make([]venti.Score, n)
	res := &asyncResult{data: map[int][]byte{}}
	for i := range blocks {
		blocks[i] = []byte(fmt.Sprintf("block %d", i))
		scores[i] = venti.Sum(blocks[i])
		if err := c.WriteAsync(ctx, venti.DataType, blocks[i], scores[i], res.writeDone()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WriteAsync(ctx, venti.DataType, nil, venti.ZeroScore, res.writeDone()); err != nil {
		t.Fatal(err)
	}
	res.wait(t)
	if len(res.errs) > 0 {
		t.Fatal(res.errs[0])
	}
	if st.Len() != n {
		t.Fatalf("store holds %d blocks, want %d", st.Len(), n)
	}
	bufs := make([][]byte, n)
	for i := range blocks {
		bufs[i] = make([]byte, 0, 64)
		if err := c.ReadAsync(ctx, scores[i], venti.DataType, 64, bufs[i], res.readDone(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.ReadAsync(ctx, venti.ZeroScore, venti.DataType, 64, nil, res.readDone(-1)); err != nil {
		t.Fatal(err)
	}
	res.wait(t)
	if len(res.errs) > 0 {
		t.Fatal(res.errs[0])
	}
	for i := range blocks {
		if string(res.data[i]) != string(blocks[i]) {
			t.Fatalf("block %d read back as %q", i, res.data[i])
		}
		if string(bufs[i][:len(blocks[i])]) != string(blocks[i]) {
			t.Fatalf("block %d was not read into the caller's buffer", i)
		}
	}
	if len(res.data[-1]) != 0 {
		t.Fatalf("zero score read as %q", res.data[-1])
	}
}

// Errors reach the callbacks: a missing block, a wrong score claimed for
// a write, a server that returns the wrong bytes.
func TestClientAsyncErrors(t *testing.T) {
	ctx := context.Background()
	c := dial(t, serve(t, venti.NewMemStore()))
	res := &asyncResult{data: map[int][]byte{}}
	missing := venti.Sum([]byte("missing"))
	if err := c.ReadAsync(ctx, missing, venti.DataType, 100, nil, res.readDone(0)); err != nil {
		t.Fatal(err)
	}
	res.wait(t)
	if len(res.errs) != 1 || !errors.Is(res.errs[0], venti.ErrNotFound) {
		t.Fatalf("read of a missing block: %v, want ErrNotFound", res.errs)
	}
	res.errs = nil
	if err := c.WriteAsync(ctx, venti.DataType, []byte("data"), missing, res.writeDone()); err != nil {
		t.Fatal(err)
	}
	res.wait(t)
	if len(res.errs) != 1 {
		t.Fatalf("write under a wrong score: %v, want an error", res.errs)
	}
	t.Logf("wrong score: %v", res.errs[0])
	if err := c.WriteAsync(ctx, venti.DataType, nil, missing, func(error) { t.Error("callback of a refused write") }); err == nil {
		t.Fatal("empty write under a non-zero score was accepted")
	}
	if err := c.ReadAsync(ctx, missing, venti.Type(99), 100, nil, func([]byte, error) { t.Error("callback of a refused read") }); err == nil {
		t.Fatal("read of an invalid type was accepted")
	}

	// A lying server: every read returns the same bytes.
	lie := venti.Sum([]byte("asked"))
	addr := serve(t, lyingStore{venti.NewMemStore()})
	lc := dial(t, addr)
	res.errs = nil
	if err := lc.ReadAsync(ctx, lie, venti.DataType, 100, nil, res.readDone(1)); err != nil {
		t.Fatal(err)
	}
	res.wait(t)
	if len(res.errs) != 1 || !errors.Is(res.errs[0], venti.ErrCorrupt) {
		t.Fatalf("read of wrong bytes: %v, want ErrCorrupt", res.errs)
	}
}

// A connection that dies completes every asynchronous call in flight with
// an error, and later calls fail without a callback.
func TestClientAsyncConnectionFailure(t *testing.T) {
	ctx := context.Background()
	st := newGateStore()
	cc, sc := net.Pipe()
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go venti.NewServer(st).ServeConn(sctx, sc)
	c, err := venti.NewClient(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	slow, _ := st.MemStore.Write(ctx, venti.DataType, []byte("slow block"))
	open := st.gate(slow)
	defer open()
	res := &asyncResult{data: map[int][]byte{}}
	for i := 0; i < 10; i++ {
		if err := c.ReadAsync(ctx, slow, venti.DataType, 100, nil, res.readDone(i)); err != nil {
			t.Fatal(err)
		}
	}
	<-st.entered
	sc.Close()
	res.wait(t)
	if len(res.errs) != 10 {
		t.Fatalf("%d of 10 pending reads failed, want all: %v", len(res.errs), res.errs)
	}
	var se *venti.ServerError
	if errors.As(res.errs[0], &se) {
		t.Fatalf("pending read: %v, want a connection error", res.errs[0])
	}
	// Wait for the reader to notice, then a new call must fail at once.
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx) == nil && time.Now().Before(deadline) {
	}
	if err := c.ReadAsync(ctx, slow, venti.DataType, 100, nil, func([]byte, error) { t.Error("callback of a failed call") }); err == nil {
		t.Fatal("ReadAsync on a dead connection succeeded")
	}
}

// Close completes the calls still in flight.
func TestClientAsyncClose(t *testing.T) {
	ctx := context.Background()
	st := newGateStore()
	c, err := venti.Dial(ctx, serve(t, st))
	if err != nil {
		t.Fatal(err)
	}
	slow, _ := st.MemStore.Write(ctx, venti.DataType, []byte("slow block"))
	open := st.gate(slow)
	defer open()
	res := &asyncResult{data: map[int][]byte{}}
	if err := c.ReadAsync(ctx, slow, venti.DataType, 100, nil, res.readDone(0)); err != nil {
		t.Fatal(err)
	}
	<-st.entered
	c.Close()
	res.wait(t)
	if len(res.errs) != 1 || !errors.Is(res.errs[0], venti.ErrClientClosed) {
		t.Fatalf("read pending at Close: %v, want ErrClientClosed", res.errs)
	}
}

// lyingStore answers every read with the same bytes.
type lyingStore struct{ st venti.Store }

func (l lyingStore) Read(context.Context, venti.Score, venti.Type, int) ([]byte, error) {
	return []byte("other"), nil
}

func (l lyingStore) Write(ctx context.Context, t venti.Type, b []byte) (venti.Score, error) {
	return l.st.Write(ctx, t, b)
}

func (l lyingStore) Sync(ctx context.Context) error { return l.st.Sync(ctx) }
