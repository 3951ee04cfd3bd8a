package arena

import (
	"bytes"
	"context"
	"crypto/sha1"
	"sync"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

var benchOnce struct {
	sync.Once
	part   []byte
	blocks [][]byte
	bytes  int64
}

// benchPartition builds (once) a partition like a seed's: block size 8192,
// four arenas of 8 MiB filled with a mix of text, random, small and mostly
// zero blocks, compressed by venti's rules where that helps.
func benchPartition(b *testing.B) ([]byte, [][]byte, int64) {
	benchOnce.Do(func() {
		var arenas []specArena
		for i := range 4 {
			blocks := syntheticBlocks(i, 1400)
			arenas = append(arenas, specArena{name: "arenas" + string(rune('0'+i)), version: 5, blocks: blocks, sealed: i < 3})
			for _, bl := range blocks {
				benchOnce.blocks = append(benchOnce.blocks, bl.data)
				benchOnce.bytes += int64(len(bl.data))
			}
		}
		benchOnce.part = buildPartition(8192, 8<<20, arenas)
	})
	return benchOnce.part, benchOnce.blocks, benchOnce.bytes
}

// BenchmarkImport measures import speed in MB/s of uncompressed block data
// and clumps/s. The sha1 sub-benchmark hashes the same blocks once each:
// the floor any import that verifies every score must pay, to quote the
// import figures against. decode is reading, decompressing and verifying
// without a store; memstore and memstore-1worker import into memory;
// diskstore imports into the embedded venti's disk store (fsync included).
func BenchmarkImport(b *testing.B) {
	part, blocks, total := benchPartition(b)
	p, err := Open(bytes.NewReader(part), int64(len(part)))
	if err != nil || len(p.Problems) != 0 {
		b.Fatal(err, p.Problems)
	}
	clumps := float64(len(blocks))
	report := func(b *testing.B) {
		b.ReportMetric(clumps*float64(b.N)/b.Elapsed().Seconds(), "clumps/s")
	}
	b.Run("sha1", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			for _, d := range blocks {
				sha1.Sum(d)
			}
		}
		report(b)
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(total)
		buf := make([]byte, venti.MaxBlock)
		for b.Loop() {
			for _, a := range p.Arenas {
				err := a.Walk(context.Background(), Position{}, true, func(e *Entry) error {
					_, err := e.Header.Decode(e.Stored, buf)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b)
	})
	for _, w := range []int{0, 1} {
		name := "memstore"
		if w == 1 {
			name = "memstore-1worker"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				st := venti.NewMemStore()
				res, err := Import(context.Background(), p, st, ImportOptions{Workers: w})
				if err != nil || res.Written != int64(len(blocks)) {
					b.Fatal(err, res)
				}
			}
			report(b)
		})
	}
	b.Run("diskstore", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			b.StopTimer()
			st, err := store.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := Import(context.Background(), p, st, ImportOptions{})
			if err != nil || res.Written != int64(len(blocks)) {
				b.Fatal(err, res)
			}
			b.StopTimer()
			st.Close()
			b.StartTimer()
		}
		report(b)
	})
}

// BenchmarkImportReal imports the real plan9port partition (59 clumps).
func BenchmarkImportReal(b *testing.B) {
	raw, _ := realArenas(b)
	p, err := Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(222321)
	for b.Loop() {
		if _, err := Import(context.Background(), p, venti.NewMemStore(), ImportOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
