package vac

import (
	"context"
	"crypto/sha1"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"

	"gridlord/engine/venti"
)

// Benchmarks of the vac pipeline against a memory store (no network, no
// disk), to compare with BenchmarkSHA1: b.SetBytes makes go test print MB/s.
// The end-to-end figures over loopback TCP come from "gridlord bench vac".

const benchSize = 64 << 20

func BenchmarkSHA1(b *testing.B) {
	buf := make([]byte, DefaultBlockSize)
	rand.NewChaCha8([32]byte{}).Read(buf)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		sha1.Sum(buf)
	}
}

func benchFile(b *testing.B) string {
	p := filepath.Join(b.TempDir(), "random")
	buf := make([]byte, benchSize)
	rand.NewChaCha8([32]byte{3}).Read(buf)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkCreate(b *testing.B) {
	p := benchFile(b)
	ctx := context.Background()
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := Create(ctx, venti.NewMemStore(), []string{p}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCat(b *testing.B) {
	p := benchFile(b)
	ctx := context.Background()
	st := venti.NewMemStore()
	s, err := Create(ctx, st, []string{p}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	a, err := Open(ctx, st, s)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := Cat(ctx, a, io.Discard, RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// loopback serves st over loopback TCP and returns a client of it.
func loopback(b testing.TB, st venti.Store) *venti.Client {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); venti.NewServer(st).Serve(ctx, ln) }()
	c, err := venti.Dial(ctx, ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); cancel(); ln.Close(); <-done })
	return c
}

func BenchmarkCreateLoopback(b *testing.B) {
	p := benchFile(b)
	ctx := context.Background()
	b.SetBytes(benchSize)
	for b.Loop() {
		c := loopback(b, venti.NewMemStore())
		if _, err := Create(ctx, c, []string{p}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCatLoopback(b *testing.B) {
	p := benchFile(b)
	ctx := context.Background()
	c := loopback(b, venti.NewMemStore())
	s, err := Create(ctx, c, []string{p}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	a, err := Open(ctx, c, s)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := Cat(ctx, a, io.Discard, RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
