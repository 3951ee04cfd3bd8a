package store

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gridlord/engine/venti"
)

// Benchmarks on 8 KiB blocks. Compare MB/s with BenchmarkSHA1, the cost
// every write pays anyway:
//
//	go test -run XXX -bench . -benchtime 20000x ./engine/venti/store

const benchBlock = 8 << 10

func benchData(i int) []byte {
	b := make([]byte, benchBlock)
	for j := 0; j < benchBlock; j += 8 {
		binary.LittleEndian.PutUint64(b[j:], uint64(i)*0x9e3779b97f4a7c15+uint64(j))
	}
	return b
}

// BenchmarkSHA1 is the baseline: SHA-1 of an 8 KiB block on one core.
func BenchmarkSHA1(b *testing.B) {
	d := benchData(1)
	b.SetBytes(benchBlock)
	for i := 0; i < b.N; i++ {
		sha1.Sum(d)
	}
}

// BenchmarkWriteUnique writes distinct blocks from parallel goroutines.
func BenchmarkWriteUnique(b *testing.B) {
	st, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var n atomic.Int64
	b.SetBytes(benchBlock)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := benchData(0)
		for pb.Next() {
			binary.LittleEndian.PutUint64(d, uint64(n.Add(1)))
			if _, err := st.Write(ctx, venti.DataType, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := st.Sync(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWriteSync writes distinct blocks and Syncs after each, as
// fossil does, from 16 goroutines: group commit shares the fsyncs.
func BenchmarkWriteSync(b *testing.B) {
	st, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var n atomic.Int64
	b.SetBytes(benchBlock)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := benchData(0)
		for pb.Next() {
			binary.LittleEndian.PutUint64(d, uint64(n.Add(1)))
			if _, err := st.Write(ctx, venti.DataType, d); err != nil {
				b.Error(err)
				return
			}
			if err := st.Sync(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	s := st.Stats()
	b.ReportMetric(float64(s.Syncs)/float64(max(s.Fsyncs, 1)), "syncs/fsync")
}

// fill writes n distinct blocks and returns their scores.
func fill(b *testing.B, st *Store, n int) []venti.Score {
	var scores []venti.Score
	for i := 0; i < n; i++ {
		s, err := st.Write(ctx, venti.DataType, benchData(i))
		if err != nil {
			b.Fatal(err)
		}
		scores = append(scores, s)
	}
	if err := st.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	return scores
}

// BenchmarkWriteDedup rewrites blocks already stored.
func BenchmarkWriteDedup(b *testing.B) {
	st, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const n = 4096
	fill(b, st, n)
	blocks := make([][]byte, n)
	for i := range blocks {
		blocks[i] = benchData(i)
	}
	var k atomic.Int64
	b.SetBytes(benchBlock)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.Write(ctx, venti.DataType, blocks[k.Add(1)%n]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if st.Stats().Blocks != n {
		b.Fatal("dedup wrote new blocks")
	}
}

// BenchmarkRead reads stored blocks (page cache warm), verifying SHA-1.
func BenchmarkRead(b *testing.B) {
	for _, verify := range []bool{true, false} {
		name := "verify-sha1"
		if !verify {
			name = "crc-only"
		}
		b.Run(name, func(b *testing.B) {
			st, err := Open(b.TempDir(), WithReadVerify(verify))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			const n = 4096
			scores := fill(b, st, n)
			var k atomic.Int64
			b.SetBytes(benchBlock)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := st.Read(ctx, scores[k.Add(1)%n], venti.DataType, venti.MaxBlock); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkIndexInsert inserts b.N random keys into the in-memory index
// (as unique writes do) and reports the heap bytes per entry, which is
// the index's resident cost per block. Run with -benchtime 10000000x to
// see the figure for a large store.
func BenchmarkIndexInsert(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := new(index)
	r := rand.New(rand.NewPCG(1, 1))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x.insert(r.Uint64(), makeLoc(i>>16, int64(i&0xffff)*8228, benchBlock))
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	_, _, ram, _ := x.counts()
	b.ReportMetric(float64(ram)/float64(b.N), "entryB/block")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "heapB/block")
	runtime.KeepAlive(x)
}

// loopback serves st over loopback TCP and returns a client of it.
func loopback(b *testing.B, st venti.Store) *venti.Client {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { venti.NewServer(st).Serve(sctx, ln); close(done) }()
	c, err := venti.Dial(ctx, ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); stop(); <-done })
	return c
}

// BenchmarkLoopback measures the store behind the venti protocol over
// loopback TCP, 64 goroutines sharing one client, as "gridlord bench
// venti" does; compare with BenchmarkSHA1.
func BenchmarkLoopback(b *testing.B) {
	const workers = 64
	run := func(b *testing.B, fn func(i int, buf []byte) error) {
		var k atomic.Int64
		var wg sync.WaitGroup
		b.SetBytes(benchBlock)
		b.ResetTimer()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := benchData(0)
				for {
					i := int(k.Add(1) - 1)
					if i >= b.N {
						return
					}
					binary.LittleEndian.PutUint64(buf, uint64(i))
					if err := fn(i, buf); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	for _, phase := range []string{"unique", "dedup", "read", "mem-unique", "mem-dedup", "mem-read"} {
		b.Run(phase, func(b *testing.B) {
			var st venti.Store = venti.NewMemStore()
			if p, ok := strings.CutPrefix(phase, "mem-"); ok {
				phase = p // the memory store, to tell the disk store's cost from the protocol's
			} else {
				ds, err := Open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer ds.Close()
				st = ds
			}
			c := loopback(b, st)
			scores := make([]venti.Score, b.N)
			write := func(i int, buf []byte) error {
				s, err := c.Write(ctx, venti.DataType, buf)
				scores[i] = s
				return err
			}
			if phase != "unique" {
				b.StopTimer()
				run(b, write)
				b.StartTimer()
			}
			switch phase {
			case "read":
				run(b, func(i int, buf []byte) error {
					_, err := c.Read(ctx, scores[i], venti.DataType, venti.MaxBlock)
					return err
				})
			default:
				run(b, write)
			}
			if err := c.Sync(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkRebuild measures Open rebuilding the index from the log (no
// index file), the worst case after losing the index: b.N blocks of 8 KiB.
func BenchmarkRebuild(b *testing.B) {
	dir := b.TempDir()
	st, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := st.Write(ctx, venti.DataType, benchData(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, indexName)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchBlock)
	b.ResetTimer()
	st, err = Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if r := st.Recovery(); r.ScannedBlocks != b.N {
		b.Fatalf("rebuilt %d blocks, want %d", r.ScannedBlocks, b.N)
	}
	st.Close()
}
