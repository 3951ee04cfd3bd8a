package store

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"gridlord/engine/atomicfile"
	"gridlord/engine/venti"
)

// The index maps (score, type) to the record's location in the log.
//
// In memory it is 2^16 buckets, chosen by the top 16 bits of the score, each
// a slice of 16-byte entries sorted by key:
//
//	key = first 7 bytes of the score, then the type byte
//	loc = arena number (16 bits) | offset in the arena (32 bits) | block size (16 bits)
//
// so the resident cost is 16 bytes per block plus slice slack (none after a
// load; buckets grow by an eighth, so at most 18 and on average about 17
// bytes per block after heavy writing; BenchmarkIndexInsert measures it)
// plus a fixed 1.5 MiB of slice headers: a 1 TiB store of 8 KiB blocks
// (~134 M blocks) needs about 2.0-2.3 GiB. A key
// names a block only up to its 56-bit score prefix; every lookup reads the
// record and compares the full score, so colliding prefixes (expected about
// 0.1 pairs among 134 M blocks) cost one extra read and nothing more.
// Insertion shifts a bucket's tail (on average 8 bytes times the bucket
// length: 16 KiB at 134 M blocks), cheap next to the SHA-1 of the block.
//
// On disk (file "index") the index is a checkpoint: a header naming the log
// address it covers (every record before it is in the file, none after it)
// followed by all entries in key order. Opening the store loads it and scans
// the log from the covered address on, so a missing, damaged or stale
// index file costs a scan, never a block.
const (
	bucketBits    = 16
	indexName     = "index"
	indexMagic    = "GLVINDX1"
	indexHdrSize  = 64
	indexEntrySz  = 16
	maxArenas     = 1 << 16
	maxArenaSize  = 1 << 32
	locSizeBits   = 16
	locOffsetBits = 32
)

type entry struct{ key, loc uint64 }

func indexKey(s venti.Score, t venti.Type) uint64 {
	return binary.BigEndian.Uint64(s[:8])&^0xff | uint64(t)
}

func makeLoc(arena int, off int64, size int) uint64 {
	return uint64(arena)<<(locOffsetBits+locSizeBits) | uint64(off)<<locSizeBits | uint64(size)
}

// addr is a position in the whole log: arena<<32 | offset. Addresses grow
// with every append.
func makeAddr(arena int, off int64) uint64 { return uint64(arena)<<locOffsetBits | uint64(off) }

func addrArena(a uint64) int    { return int(a >> locOffsetBits) }
func addrOffset(a uint64) int64 { return int64(a & (1<<locOffsetBits - 1)) }

func locAddr(l uint64) uint64      { return l >> locSizeBits }
func locArena(l uint64) int        { return addrArena(locAddr(l)) }
func locOffset(l uint64) int64     { return addrOffset(locAddr(l)) }
func locSize(l uint64) int         { return int(l & (1<<locSizeBits - 1)) }
func bucketOf(key uint64) int      { return int(key >> (64 - bucketBits)) }
func cmpEntry(a, b entry) int      { return cmp.Compare(a.key, b.key) }
func cmpKey(e entry, k uint64) int { return cmp.Compare(e.key, k) }

// index is the in-memory index. Its lock guards the buckets and counters;
// it is never held during I/O.
type index struct {
	mu      sync.RWMutex
	buckets [1 << bucketBits][]entry
	n       int   // entries
	bytes   int64 // sum of block sizes
}

// lookup appends to locs the locations of entries with key k, in insertion
// order.
func (x *index) lookup(k uint64, locs []uint64) []uint64 {
	x.mu.RLock()
	b := x.buckets[bucketOf(k)]
	i, _ := slices.BinarySearchFunc(b, k, cmpKey)
	for ; i < len(b) && b[i].key == k; i++ {
		locs = append(locs, b[i].loc)
	}
	x.mu.RUnlock()
	return locs
}

// insert adds an entry after any with the same key.
func (x *index) insert(k, loc uint64) {
	x.mu.Lock()
	bi := bucketOf(k)
	b := x.buckets[bi]
	i, _ := slices.BinarySearchFunc(b, k+1, cmpKey)
	if k == ^uint64(0) {
		i = len(b)
	}
	if len(b) == cap(b) {
		// Grow by an eighth, not Go's default doubling, to keep the slack
		// (and so the bytes per block) low; the extra copying is a few
		// entries per insert.
		nb := make([]entry, len(b), len(b)+max(len(b)/8, 1))
		copy(nb, b)
		b = nb
	}
	x.buckets[bi] = slices.Insert(b, i, entry{k, loc})
	x.n++
	x.bytes += int64(locSize(loc))
	x.mu.Unlock()
}

// replace changes the location of the entry (k, old) to loc. It is used
// when a damaged record is replaced by a fresh copy.
func (x *index) replace(k, old, loc uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.buckets[bucketOf(k)]
	i, _ := slices.BinarySearchFunc(b, k, cmpKey)
	for ; i < len(b) && b[i].key == k; i++ {
		if b[i].loc == old {
			b[i].loc = loc
			x.bytes += int64(locSize(loc) - locSize(old))
			return
		}
	}
}

// appendUnsorted adds an entry without keeping its bucket sorted; call
// sortAll before any lookup. Used by bulk loads (log scans).
func (x *index) appendUnsorted(k, loc uint64) {
	bi := bucketOf(k)
	x.buckets[bi] = append(x.buckets[bi], entry{k, loc})
	x.n++
	x.bytes += int64(locSize(loc))
}

// sortAll sorts every bucket, keeping log order among equal keys, and
// trims the slack that bulk appending left.
func (x *index) sortAll() {
	for i, b := range x.buckets {
		slices.SortStableFunc(b, cmpEntry)
		if cap(b) > len(b) {
			x.buckets[i] = append(make([]entry, 0, len(b)), b...)
		}
	}
}

// reset empties the index.
func (x *index) reset() {
	for i := range x.buckets {
		x.buckets[i] = nil
	}
	x.n, x.bytes = 0, 0
}

// counts returns the number of entries, their block bytes, the bytes of
// memory the entries occupy (with slice slack) and the fixed bytes of the
// bucket table.
func (x *index) counts() (n int, bytes, ram, fixed int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, b := range x.buckets {
		ram += int64(cap(b)) * indexEntrySz
	}
	return x.n, x.bytes, ram, int64(len(x.buckets)) * 24
}

// indexHeader is the header of the index file:
//
//	0  [8] "GLVINDX1"
//	8  u64 covered log address: every record before it is indexed, none after
//	16 u64 number of entries
//	24 u64 client writes (store statistics carried across restarts)
//	32 u64 client bytes
//	40 u32 CRC32C of all entries
//	44     zero padding
//	60 u32 CRC32C of bytes 0..59
type indexHeader struct {
	covered      uint64
	count        uint64
	clientWrites uint64
	clientBytes  uint64
	entriesCRC   uint32
}

func (h indexHeader) encode() []byte {
	b := make([]byte, indexHdrSize)
	copy(b, indexMagic)
	binary.BigEndian.PutUint64(b[8:], h.covered)
	binary.BigEndian.PutUint64(b[16:], h.count)
	binary.BigEndian.PutUint64(b[24:], h.clientWrites)
	binary.BigEndian.PutUint64(b[32:], h.clientBytes)
	binary.BigEndian.PutUint32(b[40:], h.entriesCRC)
	binary.BigEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

func decodeIndexHeader(b []byte) (indexHeader, error) {
	var h indexHeader
	if len(b) < indexHdrSize || string(b[:8]) != indexMagic {
		return h, errors.New("not a gridlord index file (bad magic)")
	}
	if crc32.Checksum(b[:60], castagnoli) != binary.BigEndian.Uint32(b[60:]) {
		return h, errors.New("index header checksum mismatch")
	}
	h.covered = binary.BigEndian.Uint64(b[8:])
	h.count = binary.BigEndian.Uint64(b[16:])
	h.clientWrites = binary.BigEndian.Uint64(b[24:])
	h.clientBytes = binary.BigEndian.Uint64(b[32:])
	h.entriesCRC = binary.BigEndian.Uint32(b[40:])
	return h, nil
}

// readIndex decodes an index file from r (size bytes) and calls fn for
// every entry in file order. It checks the header and entry checksums, that
// the file size matches the entry count and that entries are sorted and lie
// before the covered address; the bytes come from disk and are untrusted.
// fn's entries must be discarded if readIndex fails.
func readIndex(r io.Reader, size int64, fn func(entry)) (indexHeader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	hb := make([]byte, indexHdrSize)
	if _, err := io.ReadFull(br, hb); err != nil {
		return indexHeader{}, fmt.Errorf("read index header: %w", err)
	}
	h, err := decodeIndexHeader(hb)
	if err != nil {
		return h, err
	}
	if want := uint64(size-indexHdrSize) / indexEntrySz; size < indexHdrSize || uint64(size-indexHdrSize)%indexEntrySz != 0 || h.count != want {
		return h, fmt.Errorf("index file is %d bytes, which does not hold the %d entries its header names", size, h.count)
	}
	crc := uint32(0)
	var eb [indexEntrySz]byte
	var prev uint64
	for i := uint64(0); i < h.count; i++ {
		if _, err := io.ReadFull(br, eb[:]); err != nil {
			return h, fmt.Errorf("read index entry %d: %w", i, err)
		}
		crc = crc32.Update(crc, castagnoli, eb[:])
		e := entry{binary.BigEndian.Uint64(eb[:]), binary.BigEndian.Uint64(eb[8:])}
		if i > 0 && e.key < prev {
			return h, fmt.Errorf("index entry %d is out of order", i)
		}
		if locAddr(e.loc) >= h.covered {
			return h, fmt.Errorf("index entry %d points past the covered log address", i)
		}
		prev = e.key
		fn(e)
	}
	if crc != h.entriesCRC {
		return h, errors.New("index entries checksum mismatch")
	}
	return h, nil
}

// loadIndex reads the index file at path into x, which must be empty. On
// failure x is left empty.
func (x *index) load(path string) (indexHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return indexHeader{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return indexHeader{}, err
	}
	// Entries arrive sorted, so each bucket's entries are contiguous: gather
	// a bucket in run, then give it an exactly sized slice.
	var run []entry
	cur := -1
	done := func() {
		if len(run) > 0 {
			x.buckets[cur] = append(make([]entry, 0, len(run)), run...)
		}
		run = run[:0]
	}
	h, err := readIndex(f, fi.Size(), func(e entry) {
		if b := bucketOf(e.key); b != cur {
			done()
			cur = b
		}
		run = append(run, e)
		x.n++
		x.bytes += int64(locSize(e.loc))
	})
	done()
	if err != nil {
		x.reset()
		return h, err
	}
	return h, nil
}

// writeCheckpoint writes the entries before covered to dir/index atomically
// (see atomicfile.WriteFunc: temporary file, fsync, rename, fsync of the
// directory). It holds x's read lock only while copying one bucket at a
// time.
func (x *index) writeCheckpoint(dir string, h indexHeader) (int64, error) {
	err := atomicfile.WriteFunc(filepath.Join(dir, indexName), 0o600, func(tmp *os.File) error {
		// The header goes last, once the count and checksum are known.
		if _, err := tmp.Write(make([]byte, indexHdrSize)); err != nil {
			return err
		}
		bw := bufio.NewWriterSize(tmp, 1<<20)
		var buf []entry
		var eb [indexEntrySz]byte
		for i := range x.buckets {
			x.mu.RLock()
			buf = append(buf[:0], x.buckets[i]...)
			x.mu.RUnlock()
			for _, e := range buf {
				if locAddr(e.loc) >= h.covered {
					continue
				}
				binary.BigEndian.PutUint64(eb[:], e.key)
				binary.BigEndian.PutUint64(eb[8:], e.loc)
				h.entriesCRC = crc32.Update(h.entriesCRC, castagnoli, eb[:])
				h.count++
				if _, err := bw.Write(eb[:]); err != nil {
					return err
				}
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		_, err := tmp.WriteAt(h.encode(), 0)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("write index checkpoint: %w", err)
	}
	return indexHdrSize + int64(h.count)*indexEntrySz, nil
}
