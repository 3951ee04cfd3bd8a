package venti_test

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"sync/atomic"
	"testing"

	"gridlord/engine/venti"
)

// Benchmarks of the protocol layer over loopback TCP with 8 KiB blocks.
// Compare their MB/s with BenchmarkSHA1 from the same run:
//
//	go test -run '^$' -bench . -benchtime 2s ./engine/venti/
//
// Each also reports cpu-ns/op, the process CPU time (client, server and
// store together) per block, which stays comparable when other work
// shares the machine and wall-clock MB/s does not.

const benchBlock = 8192

// BenchmarkSHA1 is the baseline: single-core SHA-1 of 8 KiB blocks.
func BenchmarkSHA1(b *testing.B) {
	data := make([]byte, benchBlock)
	b.SetBytes(benchBlock)
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(data, uint64(i))
		sha1.Sum(data)
	}
}

// reportCPU starts measuring process CPU time; the returned function
// reports it per operation.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if used := processCPU() - start; used > 0 && b.N > 0 {
			b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// hashStore hashes and forgets: a store that costs what a real store's
// hashing costs and keeps no memory, so unique-write benchmarks can run
// long.
type hashStore struct{ venti.MemStore }

func (h *hashStore) Write(ctx context.Context, t venti.Type, data []byte) (venti.Score, error) {
	if err := venti.CheckWrite(t, data); err != nil {
		return venti.Score{}, err
	}
	return venti.Sum(data), nil
}

// benchClient serves st on loopback and dials it.
func benchClient(b *testing.B, st venti.Store, opts ...venti.ClientOption) *venti.Client {
	return dial(b, serve(b, st), opts...)
}

// parallel runs f from 32 goroutines sharing one connection (pipelined).
// Each goroutine has its own 8 KiB buffer, so the loop allocates nothing.
func parallel(b *testing.B, f func(i uint64, buf []byte) error) {
	var n atomic.Uint64
	b.SetParallelism(16)
	b.SetBytes(benchBlock)
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, benchBlock)
		for pb.Next() {
			if err := f(n.Add(1), buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkWriteUnique: every block is new (client and store both hash).
func BenchmarkWriteUnique(b *testing.B) {
	c := benchClient(b, &hashStore{})
	ctx := context.Background()
	parallel(b, func(i uint64, data []byte) error {
		data[benchBlock-1] = 1
		binary.BigEndian.PutUint64(data, i)
		_, err := c.Write(ctx, venti.DataType, data)
		return err
	})
}

// BenchmarkWriteDup: the same block again and again (MemStore dedups).
func BenchmarkWriteDup(b *testing.B) {
	c := benchClient(b, venti.NewMemStore())
	ctx := context.Background()
	data := make([]byte, benchBlock)
	for i := range data {
		data[i] = byte(i)
	}
	parallel(b, func(uint64, []byte) error {
		_, err := c.Write(ctx, venti.DataType, data)
		return err
	})
}

// BenchmarkRead: 1024 distinct stored blocks read round robin; the client
// checks each block's hash.
func BenchmarkRead(b *testing.B) {
	st := venti.NewMemStore()
	ctx := context.Background()
	var scores []venti.Score
	for i := 0; i < 1024; i++ {
		data := make([]byte, benchBlock)
		data[benchBlock-1] = 1
		binary.BigEndian.PutUint64(data, uint64(i))
		s, _ := st.Write(ctx, venti.DataType, data)
		scores = append(scores, s)
	}
	c := benchClient(b, st)
	parallel(b, func(i uint64, _ []byte) error {
		_, err := c.Read(ctx, scores[i%1024], venti.DataType, benchBlock)
		return err
	})
}

// BenchmarkReadSerial: one request at a time on tag 0 (liboventi style),
// to show what pipelining buys.
func BenchmarkReadSerial(b *testing.B) {
	st := venti.NewMemStore()
	ctx := context.Background()
	data := make([]byte, benchBlock)
	data[0] = 1
	s, _ := st.Write(ctx, venti.DataType, data)
	c := benchClient(b, st, venti.WithSerialTag0(), venti.WithVersions(venti.Version02))
	b.SetBytes(benchBlock)
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := c.Read(ctx, s, venti.DataType, benchBlock); err != nil {
			b.Fatal(err)
		}
	}
}
