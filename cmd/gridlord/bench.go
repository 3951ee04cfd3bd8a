package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// "gridlord bench venti": throughput of the embedded venti over loopback
// TCP, as ratios to the speed of SHA-1 on one core measured in the same
// run (every block written is hashed at least once, so SHA-1 is the
// natural yardstick).

const benchBlockSize = 8 << 10

// parseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: size %q: want a positive number with an optional K, M or G suffix", errUsage, s)
	}
	return n * mult, nil
}

func runBenchVenti(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "bench venti", "[-size 256M] [-workers 64] [-store DIR] [-verify=true] [-cpuprofile FILE] | -seed FILE [-store DIR]")
	seed := fs.String("seed", "", "instead: import the disk image `FILE` into an empty store as \"seed import\" does and print the bytes the store takes against the file's size")
	sizeFlag := fs.String("size", "256M", "bytes to write (8 KiB blocks), with an optional K, M or G suffix")
	workers := fs.Int("workers", 64, "goroutines sharing the one client connection")
	dir := fs.String("store", "", "empty or new store `directory` (default: a temporary directory, removed afterwards)")
	verify := fs.Bool("verify", true, "server recomputes SHA-1 on every read (the client always does)")
	mem := fs.Bool("mem", false, "serve an in-memory store instead of the disk store, to tell the disk store's cost from the protocol's")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the measured phases to `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	size, err := parseSize(*sizeFlag)
	if err != nil {
		return err
	}
	if *workers < 1 {
		return fmt.Errorf("%w: -workers must be at least 1", errUsage)
	}
	n := int(max(size/benchBlockSize, 1))
	if *seed != "" {
		if *dir == "" {
			d, err := os.MkdirTemp("", "gridlord-bench-seed-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(d)
			*dir = d
		}
		return benchSeed(ctx, env, *seed, *dir)
	}

	// Baseline: SHA-1 of 8 KiB blocks on one core.
	base := make([]byte, benchBlockSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range base {
		base[i] = byte(r.Uint32())
	}
	// The best of several rounds: on a shared machine a single timing
	// mostly measures the neighbours.
	const shaRounds = 8
	chunk := max(n/shaRounds, 2048)
	cpu0, haveCPU := processCPU()
	shaRate := 0.0
	for r := 0; r < shaRounds; r++ {
		t0 := time.Now()
		for i := 0; i < chunk; i++ {
			binary.LittleEndian.PutUint64(base, uint64(r*chunk+i))
			sha1.Sum(base)
		}
		shaRate = max(shaRate, float64(chunk*benchBlockSize)/time.Since(t0).Seconds())
	}
	cpu1, _ := processCPU()
	shaCPU := (cpu1 - cpu0) / time.Duration(shaRounds*chunk)

	if *dir == "" {
		d, err := os.MkdirTemp("", "gridlord-bench-venti-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	var served venti.Store
	var st *store.Store
	if *mem {
		served = venti.NewMemStore()
	} else {
		st, err = store.Open(*dir, store.WithLogger(env.log), store.WithReadVerify(*verify))
		if err != nil {
			return err
		}
		defer st.Close()
		if st.Stats().Blocks != 0 {
			return fmt.Errorf("store %s is not empty: give an empty or new -store directory", *dir)
		}
		served = st
	}
	ballast := newGCBallast() // as "venti serve" has
	defer runtime.KeepAlive(ballast)
	c, stop, err := serveLoopback(ctx, served)
	if err != nil {
		return err
	}
	defer stop()

	stopProfile, err := startCPUProfile(*profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	scores := make([]venti.Score, n)
	// phase runs fn for blocks 0..n-1 on the workers, then Tsync, and
	// returns bytes per second and CPU time per block (client and server
	// together: they share this process).
	// Each worker has its own read buffer, as a real client reusing
	// buffers would.
	phase := func(fn func(i int, buf, rbuf []byte) error) (float64, time.Duration, error) {
		cpu0, _ := processCPU()
		var next atomic.Int64
		var firstErr atomic.Value
		var pw sync.WaitGroup
		start := time.Now()
		for w := 0; w < *workers; w++ {
			pw.Add(1)
			go func() {
				defer pw.Done()
				buf := bytes.Clone(base)
				rbuf := make([]byte, benchBlockSize)
				for {
					i := int(next.Add(1) - 1)
					if i >= n || firstErr.Load() != nil {
						return
					}
					binary.LittleEndian.PutUint64(buf, uint64(i))
					if err := fn(i, buf, rbuf); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
				}
			}()
		}
		pw.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return 0, 0, err
		}
		if err := c.Sync(ctx); err != nil {
			return 0, 0, err
		}
		rate := float64(n*benchBlockSize) / time.Since(start).Seconds()
		cpu1, _ := processCPU()
		return rate, (cpu1 - cpu0) / time.Duration(n), nil
	}
	write := func(i int, buf, _ []byte) error {
		s, err := c.Write(ctx, venti.DataType, buf)
		scores[i] = s
		return err
	}
	unique, uniqueCPU, err := phase(write)
	if err != nil {
		return fmt.Errorf("unique writes: %w", err)
	}
	dedup, dedupCPU, err := phase(write)
	if err != nil {
		return fmt.Errorf("dedup writes: %w", err)
	}
	reads, readsCPU, err := phase(func(i int, buf, rbuf []byte) error {
		got, err := c.ReadInto(ctx, scores[i], venti.DataType, venti.MaxBlock, rbuf)
		if err == nil && !bytes.Equal(got, buf) {
			err = fmt.Errorf("block %d read back wrong", i)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("reads: %w", err)
	}
	var s store.Stats
	kind := fmt.Sprintf("disk store, server read SHA-1 check %v", *verify)
	if st != nil {
		s = st.Stats()
		if s.Blocks != int64(n) {
			return fmt.Errorf("store holds %d blocks after writing %d distinct ones twice", s.Blocks, n)
		}
	} else {
		kind = "memory store"
	}
	fmt.Fprintf(env.stdout, "venti over loopback TCP: %d blocks of 8 KiB (%d MiB), %d workers on one connection, %s\n",
		n, int64(n)*benchBlockSize>>20, *workers, kind)
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	mb := func(r float64) string { return fmt.Sprintf("%.1f MB/s", r/1e6) }
	row := func(name string, rate float64, cpu time.Duration) {
		fmt.Fprintf(tw, "%s\t%s\t%.2f× sha1\t", name, mb(rate), rate/shaRate)
		if haveCPU && cpu > 0 {
			fmt.Fprintf(tw, "%.1f µs CPU/block\t= %.1f sha1s\t", float64(cpu.Nanoseconds())/1e3, float64(cpu)/float64(shaCPU))
		}
		fmt.Fprintln(tw)
	}
	row("sha1 (one core, best of 8)", shaRate, shaCPU)
	row("unique writes + Tsync", unique, uniqueCPU)
	row("dedup writes + Tsync", dedup, dedupCPU)
	row("reads", reads, readsCPU)
	tw.Flush()
	if haveCPU {
		fmt.Fprintf(env.stdout, "CPU/block counts client and server (one process). On %d otherwise idle cores a phase can reach at most cores ÷ (sha1s per block) × sha1 speed.\n", runtime.NumCPU())
	}
	if st != nil {
		fmt.Fprintf(env.stdout, "store: %d blocks, dedup ratio %.2f, index %.1f bytes/block in RAM, %d syncs, %d fsyncs\n",
			s.Blocks, s.DedupRatio, s.RAMPerBlock, s.Syncs, s.Fsyncs)
	}
	return nil
}

// startCPUProfile starts a CPU profile into the file path ("" starts
// none); stop ends it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("CPU profile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// serveLoopback serves st with the venti protocol on a free loopback port
// and returns a client connected to it; stop closes the client and waits
// for the server to finish. The benchmarks measure through it.
func serveLoopback(ctx context.Context, st venti.Store) (c *venti.Client, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		venti.NewServer(st).Serve(sctx, ln)
	}()
	c, err = venti.Dial(ctx, ln.Addr().String())
	if err != nil {
		cancel()
		<-done
		return nil, nil, err
	}
	return c, func() { c.Close(); cancel(); <-done }, nil
}
