package vac

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"gridlord/engine/venti"
)

// cancelStore cancels a context after a number of writes or reads.
type cancelStore struct {
	venti.Store
	n      atomic.Int64
	after  int64
	cancel context.CancelFunc
}

func (c *cancelStore) Write(ctx context.Context, t venti.Type, b []byte) (venti.Score, error) {
	if c.n.Add(1) == c.after {
		c.cancel()
	}
	if err := ctx.Err(); err != nil {
		return venti.Score{}, err
	}
	return c.Store.Write(ctx, t, b)
}

func (c *cancelStore) Read(ctx context.Context, s venti.Score, t venti.Type, max int) ([]byte, error) {
	if c.n.Add(1) == c.after {
		c.cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.Store.Read(ctx, s, t, max)
}

// TestCancel stops an archive and a restore half-way through: both return
// context.Canceled promptly and leave no temporary file.
func TestCancel(t *testing.T) {
	src := t.TempDir()
	data := make([]byte, 300*DefaultBlockSize)
	rand.NewChaCha8([32]byte{5}).Read(data)
	p := filepath.Join(src, "big")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &cancelStore{Store: venti.NewMemStore(), after: 100, cancel: cancel}
	if _, err := Create(ctx, st, []string{p}, Options{Workers: 4}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Create: %v", err)
	}

	mem := venti.NewMemStore()
	score, err := Create(context.Background(), mem, []string{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	st = &cancelStore{Store: mem, after: 100, cancel: cancel}
	a, err := Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Restore(ctx, a, dst, RestoreOptions{Workers: 4}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Restore: %v", err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("cancelled restore left %v", ents[0].Name())
	}
	ctx, cancel = context.WithCancel(context.Background())
	st = &cancelStore{Store: mem, after: 100, cancel: cancel}
	a, _ = Open(ctx, st, score)
	if err := Cat(ctx, a, io.Discard, RestoreOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Cat: %v", err)
	}
}
