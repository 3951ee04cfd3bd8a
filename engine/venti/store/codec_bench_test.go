package store

import (
	"bytes"
	"compress/flate"
	"crypto/sha1"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// BenchmarkCodecs measures the candidate block codecs on venti blocks:
// compressed size as a fraction of the input (reported as "ratio") and
// encode/decode speed, next to SHA-1 of the same bytes. The blocks are
// those of the store named by $GRIDLORD_CODEC_STORE (for instance a store
// the shipped seed was imported into) or, without it, 8 KiB blocks of
// random data; the random sub-benchmarks always run. This is how the
// store's codec was chosen:
//
//	GRIDLORD_CODEC_STORE=DIR go test -run XXX -bench Codecs ./engine/venti/store
func BenchmarkCodecs(b *testing.B) {
	sets := map[string][][]byte{"random": randomBlocks(2048)}
	if dir := os.Getenv("GRIDLORD_CODEC_STORE"); dir != "" {
		blocks, err := storeBlocks(dir)
		if err != nil {
			b.Fatal(err)
		}
		sets["store"] = blocks
	}
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		b.Fatal(err)
	}
	zdec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	var lzc lz4.Compressor
	fw, _ := flate.NewWriter(nil, flate.BestSpeed)
	type codec struct {
		name string
		enc  func(dst, src []byte) []byte
		dec  func(dst, src []byte) ([]byte, error)
	}
	codecs := []codec{
		{"sha1", func(dst, src []byte) []byte { s := sha1.Sum(src); return s[:] }, nil},
		{"s2", s2.Encode, s2.Decode},
		{"s2better", s2.EncodeBetter, s2.Decode},
		{"zstd-fastest", func(dst, src []byte) []byte { return zenc.EncodeAll(src, dst[:0]) },
			func(dst, src []byte) ([]byte, error) { return zdec.DecodeAll(src, dst[:0]) }},
		{"lz4", func(dst, src []byte) []byte {
			n, err := lzc.CompressBlock(src, dst[:cap(dst)])
			if err != nil || n == 0 {
				return src // lz4 says: incompressible
			}
			return dst[:n]
		}, func(dst, src []byte) ([]byte, error) {
			n, err := lz4.UncompressBlock(src, dst[:cap(dst)])
			return dst[:n], err
		}},
		{"flate1", func(dst, src []byte) []byte {
			var bb bytes.Buffer
			fw.Reset(&bb)
			fw.Write(src)
			fw.Close()
			return bb.Bytes()
		}, nil},
	}
	for _, set := range []string{"store", "random"} {
		blocks := sets[set]
		if blocks == nil {
			continue
		}
		var total int64
		for _, bl := range blocks {
			total += int64(len(bl))
		}
		for _, c := range codecs {
			dst := make([]byte, s2.MaxEncodedLen(64<<10)+1024)
			b.Run(set+"/"+c.name+"/encode", func(b *testing.B) {
				b.SetBytes(total)
				var out int64
				for i := 0; i < b.N; i++ {
					out = 0
					for _, bl := range blocks {
						out += int64(min(len(c.enc(dst, bl)), len(bl)))
					}
				}
				if c.name != "sha1" {
					b.ReportMetric(float64(out)/float64(total), "ratio")
				}
			})
			if c.dec == nil {
				continue
			}
			enc := make([][]byte, len(blocks))
			for i, bl := range blocks {
				enc[i] = bytes.Clone(c.enc(dst, bl))
			}
			out := make([]byte, 64<<10)
			b.Run(set+"/"+c.name+"/decode", func(b *testing.B) {
				b.SetBytes(total)
				for i := 0; i < b.N; i++ {
					for j, e := range enc {
						if len(e) >= len(blocks[j]) && c.name == "lz4" {
							continue // stored raw
						}
						if _, err := c.dec(out, e); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

func randomBlocks(n int) [][]byte {
	r := rand.NewChaCha8([32]byte{7})
	bs := make([][]byte, n)
	for i := range bs {
		bs[i] = make([]byte, benchBlock)
		r.Read(bs[i])
	}
	return bs
}

// storeBlocks returns the blocks of every good record in the store in dir.
func storeBlocks(dir string) ([][]byte, error) {
	nums, err := listArenas(dir)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, n := range nums {
		a, err := openArena(dir, n, os.O_RDONLY)
		if err != nil {
			return nil, err
		}
		fi, err := a.f.Stat()
		if err == nil {
			_, err = scanLog(a.f, fi.Size(), a.magic, arenaHeaderSize, func(r scanRec) error {
				if r.status == recOK {
					out = append(out, bytes.Clone(r.data))
				}
				return nil
			})
		}
		a.f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, fmt.Sprintf(arenaFmt, n)), err)
		}
	}
	return out, nil
}
