//go:build !windows

package gridfs_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkUnixRoundTrip is the baseline: one 64-byte request and reply
// over a unix socket, the floor under any gridfs operation.
func BenchmarkUnixRoundTrip(b *testing.B) {
	sock := filepath.Join(shortTempDir(b), "echo.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for b.Loop() {
		c.Write(buf)
		c.Read(buf)
	}
}

// BenchmarkReadStatus reads /nodes/cpu1/status through the client (walk,
// open, read, read EOF, clunk: 5 round trips).
func BenchmarkReadStatus(b *testing.B) {
	s := startServer(b)
	c := dial(b, s)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.ReadFile(ctx, "nodes/cpu1/status"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNodeCtl writes a node command through the client (walk, open,
// write, clunk).
func BenchmarkNodeCtl(b *testing.B) {
	s := startServer(b)
	c := dial(b, s)
	ctx := context.Background()
	for b.Loop() {
		if err := c.NodeCtl(ctx, "cpu1", "reset"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsThroughput streams console output through OpenCons.
func BenchmarkConsThroughput(b *testing.B) {
	s := startServer(b)
	c := dial(b, s)
	h, vm := newHubTB(b)
	s.e.SetConsole("cpu1", h)
	cons, err := c.OpenCons(context.Background(), "cpu1")
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	chunk := make([]byte, 4096)
	b.SetBytes(int64(len(chunk)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		want := int64(b.N) * int64(len(chunk))
		for got := int64(0); got < want; {
			n, err := cons.Read(buf)
			if err != nil {
				return
			}
			got += int64(n)
		}
	}()
	for range b.N {
		vm.Write(chunk)
	}
	<-done
}
