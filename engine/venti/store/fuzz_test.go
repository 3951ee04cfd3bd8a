package store

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"gridlord/engine/venti"
	"gridlord/engine/venti/whack"
)

const fuzzMagic = 0x5eed1e55

// fuzzArena returns arena bytes (header included) holding n records,
// compressed ones (odd i) and raw ones.
func fuzzArena(n int, end bool) []byte {
	b := arenaHeader{version: arenaVersion, num: 0, magic: fuzzMagic, size: 1 << 20}.encode()
	for i := 0; i < n; i++ {
		d := bytes.Repeat([]byte{byte(i + 1)}, 10+i*70)
		flags, payload := byte(flagRaw), d
		if i%2 == 1 {
			flags, payload = compressBlock(make([]byte, compBufSize), d)
		}
		b = append(b, encodeRecord(make([]byte, recHeaderSize+len(payload)), fuzzMagic, venti.DataType, venti.Sum(d), flags, payload)...)
	}
	if end {
		b = append(b, encodeEnd(fuzzMagic)...)
	}
	return b
}

// FuzzScanLog feeds arbitrary bytes to the recovery scanner as an arena
// file: it must not panic, must report only records that lie inside the
// file and match their checksums, and must place the log end inside the
// file, with the zeros it takes for a direct write's padding at the end of
// the file. Decoding a good record's payload (as Check and Read do) must not
// panic either, and a block it yields must match its size and checksum.
func FuzzScanLog(f *testing.F) {
	good := fuzzArena(4, false)
	f.Add(good)
	f.Add(fuzzArena(3, true))
	f.Add(good[:len(good)-5]) // torn tail
	bad := append([]byte(nil), good...)
	bad[arenaHeaderSize+recHeaderSize+3] ^= 1 // damaged block
	f.Add(bad)
	bad2 := append([]byte(nil), good...)
	bad2[arenaHeaderSize+1] ^= 1 // damaged header
	f.Add(bad2)
	f.Add([]byte{})
	f.Add(append(good, make([]byte, alignUp(int64(len(good)))-int64(len(good)))...)) // padded by a direct write
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b))
		from := int64(min(arenaHeaderSize, len(b)))
		last := int64(-1)
		ls, err := scanLog(bytes.NewReader(b), size, fuzzMagic, from, func(r scanRec) error {
			if r.off < from || r.off+recHeaderSize+int64(r.h.size) > size {
				t.Fatalf("record at %d (+%d) lies outside the %d-byte file", r.off, r.h.size, size)
			}
			rec := b[r.off : r.off+recHeaderSize+int64(r.h.size)]
			if r.status == recOK {
				if !dataOK(rec) || !bytes.Equal(r.data, rec[recHeaderSize:]) {
					t.Fatalf("record at %d reported good but does not check", r.off)
				}
				if r.off <= last {
					t.Fatalf("good record at %d after one at %d", r.off, last)
				}
				last = r.off
				if d, err := decodePayload(r.h, r.data, nil); err == nil && len(d) != blockSize(r.h, r.data) {
					t.Fatalf("record at %d decodes to %d bytes, names %d", r.off, len(d), blockSize(r.h, r.data))
				}
			}
			if _, err := decodeRecHeader(rec, fuzzMagic); err != nil {
				t.Fatalf("record at %d has a bad header: %v", r.off, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan of in-memory bytes failed: %v", err)
		}
		if ls.end < from || ls.end > size || ls.end > ls.stop {
			t.Fatalf("log end %d, stop %d outside [%d, %d]", ls.end, ls.stop, from, size)
		}
		if p := ls.padding; p < 0 || p >= dioAlign || ls.end+p > size || p > 0 && (size%dioAlign != 0 || !bytes.Equal(b[size-p:], make([]byte, p))) {
			t.Fatalf("padding of %d bytes (log end %d) in a %d-byte file is not a block's zero tail", p, ls.end, size)
		}
		if len(b) >= arenaHeaderSize {
			decodeArenaHeader(b)
		}
	})
}

// FuzzReadIndex feeds arbitrary bytes to the index-file decoder: it must
// not panic, and whatever it accepts must be sorted and consistent with
// its header.
func FuzzReadIndex(f *testing.F) {
	var x index
	for i := 0; i < 5; i++ {
		d := block(i)
		x.insert(indexKey(venti.Sum(d), venti.DataType), makeLoc(0, int64(arenaHeaderSize+i*4000), len(d)))
	}
	dir := f.TempDir()
	if _, err := x.writeCheckpoint(dir, indexHeader{covered: makeAddr(1, 0)}); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, indexName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:indexHdrSize])
	f.Add([]byte(indexMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		var n uint64
		var prev uint64
		h, err := readIndex(bytes.NewReader(b), int64(len(b)), func(e entry) {
			if n > 0 && e.key < prev {
				t.Fatalf("entry %d out of order", n)
			}
			prev = e.key
			n++
		})
		if err == nil && (n != h.count || int64(len(b)) != indexHdrSize+int64(n)*indexEntrySz) {
			t.Fatalf("accepted %d entries, header says %d, file %d bytes", n, h.count, len(b))
		}
	})
}

// FuzzDecodePayload feeds arbitrary bytes to the decoder of compressed
// record payloads: it must not panic or allocate beyond MaxBlock, it must
// accept only payloads whose block matches the size and CRC32C they name,
// and what compressBlock produces must decode to the block.
func FuzzDecodePayload(f *testing.F) {
	buf := make([]byte, compBufSize)
	for _, d := range [][]byte{bytes.Repeat([]byte("venti "), 1000), block(3), make([]byte, 100)} {
		_, p := compressBlock(buf, d)
		f.Add(bytes.Clone(p), true)
		wb := make([]byte, len(d))
		if n := whack.Encode(wb, d); n > 0 {
			p, _ := whackPayload(make([]byte, compBufSize), d, wb[:n])
			f.Add(bytes.Clone(p), false)
		}
	}
	f.Add([]byte{0, 10, 0, 0, 0, 0, 10}, false)
	f.Fuzz(func(t *testing.T, b []byte, asBlock bool) {
		for _, fl := range []byte{flagS2, flagWhack} {
			h := recHeader{typ: venti.DataType, flags: fl, size: len(b)}
			if d, err := decodePayload(h, b, nil); err == nil {
				if len(d) != blockSize(h, b) || len(d) > venti.MaxBlock {
					t.Fatalf("flags %d: decoded %d bytes, payload names %d", fl, len(d), blockSize(h, b))
				}
				if crc32.Checksum(d, castagnoli) != binary.BigEndian.Uint32(b[2:]) {
					t.Fatalf("flags %d: accepted a block that does not match its CRC32C", fl)
				}
			}
		}
		if !asBlock || len(b) > venti.MaxBlock {
			return
		}
		// b as a block: whatever compressBlock makes of it reads back.
		flags, p := compressBlock(buf, b)
		d, err := decodePayload(recHeader{flags: flags, size: len(p)}, p, nil)
		if err != nil || !bytes.Equal(d, b) {
			t.Fatalf("block of %d bytes (flags %d) does not round-trip: %v", len(b), flags, err)
		}
		if len(p) > len(b) {
			t.Fatalf("payload of %d bytes for a block of %d", len(p), len(b))
		}
		// And its whack encoding, as WriteWhacked stores it.
		wb := make([]byte, len(b))
		if n := whack.Encode(wb, b); n > 0 {
			if p, ok := whackPayload(buf, b, wb[:n]); ok {
				d, err := decodePayload(recHeader{flags: flagWhack, size: len(p)}, p, nil)
				if err != nil || !bytes.Equal(d, b) {
					t.Fatalf("whack payload of a block of %d bytes does not round-trip: %v", len(b), err)
				}
			}
		}
	})
}
