package venti_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gridlord/engine/venti"
)

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serve starts a Server for st on a loopback port and returns its address.
// Cleanup stops it and checks that Serve returned nil.
func serve(t testing.TB, st venti.Store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var opts []venti.ServerOption
	if _, ok := t.(*testing.T); ok {
		opts = append(opts, venti.WithLogger(testLogger(t)))
	}
	srv := venti.NewServer(st, opts...)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10s of cancel")
		}
	})
	return ln.Addr().String()
}

// dial connects a Client to addr; cleanup closes it.
func dial(t testing.TB, addr string, opts ...venti.ClientOption) *venti.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := venti.Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveResult is the outcome of a ServeConn goroutine.
type serveResult struct {
	done chan struct{}
	err  error
}

// wait returns ServeConn's error, failing the test if it does not return
// within 10 seconds.
func (r *serveResult) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(10 * time.Second):
		t.Fatal("ServeConn did not return within 10s")
		return nil
	}
}

// pipeClient connects a Client to a ServeConn of st over net.Pipe.
func pipeClient(t testing.TB, st venti.Store, opts ...venti.ClientOption) (*venti.Client, *serveResult) {
	t.Helper()
	cc, sc := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	res := &serveResult{done: make(chan struct{})}
	srv := venti.NewServer(st, venti.WithLogger(testLogger(t)))
	go func() {
		res.err = srv.ServeConn(ctx, sc)
		close(res.done)
	}()
	t.Cleanup(func() {
		cancel()
		res.wait(t)
	})
	c, err := venti.NewClient(ctx, cc, opts...)
	if err != nil {
		t.Fatalf("NewClient over pipe: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, res
}

// gateStore wraps a MemStore: reads of gated scores and writes of gated
// data wait until the gate is opened (or ctx ends). It counts writes in
// progress so a test can check that Sync never overlaps one.
type gateStore struct {
	*venti.MemStore
	mu         sync.Mutex
	gates      map[venti.Score]chan struct{}
	entered    chan venti.Score // each gated call sends its score on entry
	writing    atomic.Int32
	syncs      atomic.Int32
	badSyncs   atomic.Int32 // Syncs that started while a write was in progress
	readsStart atomic.Int32
}

func newGateStore() *gateStore {
	return &gateStore{
		MemStore: venti.NewMemStore(),
		gates:    make(map[venti.Score]chan struct{}),
		entered:  make(chan venti.Score, 1024),
	}
}

// gate makes calls for s wait until the returned function is called.
func (g *gateStore) gate(s venti.Score) (open func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.gates[s] = ch
	g.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (g *gateStore) wait(ctx context.Context, s venti.Score) error {
	g.mu.Lock()
	ch := g.gates[s]
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	g.entered <- s
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gateStore) Read(ctx context.Context, s venti.Score, t venti.Type, max int) ([]byte, error) {
	g.readsStart.Add(1)
	if err := g.wait(ctx, s); err != nil {
		return nil, err
	}
	return g.MemStore.Read(ctx, s, t, max)
}

func (g *gateStore) Write(ctx context.Context, t venti.Type, data []byte) (venti.Score, error) {
	g.writing.Add(1)
	defer g.writing.Add(-1)
	if err := g.wait(ctx, venti.Sum(data)); err != nil {
		return venti.Score{}, err
	}
	return g.MemStore.Write(ctx, t, data)
}

func (g *gateStore) Sync(ctx context.Context) error {
	g.syncs.Add(1)
	if g.writing.Load() != 0 {
		g.badSyncs.Add(1)
	}
	return g.MemStore.Sync(ctx)
}
