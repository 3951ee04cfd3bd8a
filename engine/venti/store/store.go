// Package store is the embedded venti's disk store: an append-only log of
// checksummed block records in large segment files (arenas) and an index
// from (score, type) to log location that survives restarts and rebuilds
// itself from the log when it is missing, damaged or stale.
//
// A store is a directory:
//
//	lock            flock'd by the process that has the store open; holds its pid
//	arena.000000    log segments, each up to ArenaSize bytes (default 512 MiB)
//	arena.000001    ...
//	index           index checkpoint (written atomically: temp file, fsync, rename)
//
// Durability: Write appends the record to a 256 KiB buffer that is written
// out (one pwrite, by a goroutine of its own while appends go on into a
// second buffer) when full; with WithDirectWrites that write is direct
// (O_DIRECT), of whole 4 KiB blocks, the last one padded with zeros that
// the next write overwrites and that recovery after a crash drops (they
// are not a torn tail). Sync writes the buffer out and fsyncs every
// arena written since the last fsync. Concurrent Syncs share one fsync
// (group commit), and a Sync with nothing new to flush costs no system call.
// After a crash, Open scans the log from the index checkpoint on, indexes
// every record it finds and truncates a torn tail, so nothing a completed
// Sync covered is lost. Every Read checks the record's checksums and the
// SHA-1 of the block before answering; damage gives an error wrapping
// venti.ErrCorrupt that names the score.
//
// Compression: a block is stored compressed with S2
// (github.com/klauspost/compress/s2) when that saves at least a sixteenth
// of it, else raw; the record's flags byte says which (see record.go).
// S2 was chosen by BenchmarkCodecs on the blocks of the shipped seed: on
// its decoded arena clumps it keeps 64% of the bytes at 470 MB/s (zstd at
// its fastest: 52% at 130 MB/s; lz4: 66% at 250 MB/s; flate: 49% at 50
// MB/s, with SHA-1 at 1650 MB/s), and it gives up on random data at 3.4
// GB/s. Writers compress in their own goroutine before they take the
// append lock, so the work spreads over the cores. The score and a CRC32C
// of the uncompressed block are checked after decoding; stores written
// before compression (all records raw) read unchanged.
//
// Locking: Store.mu serialises appends and guards the log tail and the
// closed/broken state; the index has its own RWMutex, never held during I/O;
// Store.syncMu guards the group-commit state. Lock order: syncMu, then mu,
// then the index lock. Reads take only the index read lock, briefly.
// Iter (iter.go), which reads the log in order for mirrors, takes no lock:
// it reads the arena files up to the durable end, an atomic that Sync
// advances.
//
// Reads of records already written to an arena file copy them from a
// read-only mapping of the file (on unix; pread elsewhere), which spares a
// system call per block; a fault on the mapping (a file cut short behind
// the store's back) is recovered and the read falls back to pread.
// Store.mapMu (read-held while copying) keeps Close from unmapping under a
// reader.
package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"gridlord/engine/atomicfile"
	"gridlord/engine/venti"
)

const (
	wbufSize  = 256 << 10
	lockName  = "lock"
	arenaGlob = "arena.*"
	arenaFmt  = "arena.%06d"
	// newArenaSuffix marks an arena file still being created.
	newArenaSuffix = ".new"
	defArena       = 512 << 20
	defCkpt        = 1 << 30
	minArena       = arenaHeaderSize + 2*recHeaderSize + venti.MaxBlock
	ckptFactor     = 4 // checkpoint at most after ckptFactor × index-file bytes of new log
)

// ErrLocked is wrapped by Open's error when another process has the store open.
var ErrLocked = errors.New("store is locked")

// ErrClosed is returned by operations on a closed store.
var ErrClosed = errors.New("store is closed")

// Option configures Open.
type Option func(*options) error

type options struct {
	arenaSize  int64
	ckptBytes  int64
	log        *slog.Logger
	verifyRead bool
	direct     bool
}

// WithArenaSize sets the size limit of new arena files (default 512 MiB;
// at most 4 GiB). Existing arenas keep their size.
func WithArenaSize(n int64) Option {
	return func(o *options) error {
		if n < minArena || n > maxArenaSize {
			return fmt.Errorf("arena size %d: want %d..%d bytes", n, minArena, int64(maxArenaSize))
		}
		o.arenaSize = n
		return nil
	}
}

// WithCheckpointBytes sets how many bytes of new log trigger a background
// index checkpoint (default 1 GiB; in a large store at least four times the
// index file's size, so checkpoints add at most a quarter to the bytes
// written). This bounds the log scan after a crash.
func WithCheckpointBytes(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("checkpoint interval %d: must be positive", n)
		}
		o.ckptBytes = n
		return nil
	}
}

// WithLogger sets the logger for recovery and checkpoint messages.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithDirectWrites chooses whether the log is written with O_DIRECT where
// the system and file system allow it (default false; Linux only). Direct
// writes go from the append buffer to the device: the kernel neither
// copies them into the page cache nor has to find fresh pages for them,
// which on a virtual machine whose host reclaims free guest memory (free
// page reporting) costs about 6 µs per 4 KiB page. But reads are not
// direct: they come through the page cache (the arena mapping), so the
// first read of a block written so pays that cost instead, and a read of
// just-written data goes to the disk. Measured with "gridlord bench venti"
// on such a VM: unique writes 0.27-0.36x -> 0.33-0.42x SHA-1, dedup writes
// of the blocks just written 0.37-0.44x -> 0.19-0.24x; hence off.
func WithDirectWrites(on bool) Option {
	return func(o *options) error { o.direct = on; return nil }
}

// WithReadVerify chooses whether Read recomputes the SHA-1 of every block
// (default true). Without it Read still checks the record's CRC32C and
// that the stored score is the one asked for; turn it off only when the
// reader verifies the SHA-1 itself, as the venti protocol client does.
func WithReadVerify(on bool) Option {
	return func(o *options) error { o.verifyRead = on; return nil }
}

// arena is one open arena file.
type arena struct {
	num     int
	magic   uint32
	version uint32 // arena format version; only mu's holder changes it
	size    int64  // size limit recorded in the header
	path    string
	f       *os.File
	mm      []byte       // read-only mapping of the file (nil: use ReadAt); see Store.readAt
	dio     *os.File     // the current arena opened for direct writes (nil: appends use f); under Store.mu
	limit   atomic.Int64 // bytes from the start known to be in the file; reads below come from mm
	// prealloc is the end of the range past the file's end whose blocks
	// are reserved (see Store.preallocLocked); 0 if none, -1 if unknown.
	// Under Store.mu.
	prealloc int64
}

// Store is a venti.Store kept in a directory. Its methods are safe for
// concurrent use.
type Store struct {
	dir  string
	opts options
	lock *os.File
	idx  *index

	arenas atomic.Pointer[[]*arena] // copy-on-write; grows under mu

	mu         sync.Mutex
	cur        *arena
	noPrealloc bool     // preallocation failed once (unsupported): appends allocate as they go
	off        int64    // next append offset in cur
	dirty      []*arena // arenas written since the last fsync started
	closed     bool
	isClosed   atomic.Bool // closed, for readers that do not take mu
	broken     error       // set when an fsync or a failed append leaves the log in doubt
	// wbuf holds the log of cur from wbufOff on: its first wdone bytes
	// are in the file already (the part of the last dioAlign-block that
	// the file holds, so that a direct write can rewrite the whole block),
	// the rest are appended records not yet written.
	wbuf       []byte
	wbufOff    int64 // offset in cur of wbuf[0], a multiple of dioAlign
	wdone      int
	inflight   *flush        // the write of the previous append buffer, if one is under way
	spare      []byte        // the other append buffer, when it is not in flight
	noDirect   bool          // a direct write was refused once: appends use cur.f
	flushed    atomic.Uint64 // log address up to which appends are in the file (the rest is in wbuf or inflight)
	sinceCkpt  int64         // log bytes appended since the last checkpoint
	ckptActive bool
	tail       atomic.Uint64 // log address of the next append

	syncMu sync.Mutex
	synced uint64 // log address up to which everything is on stable storage

	durable     atomic.Uint64 // synced, for Iter, which takes no lock
	durableWake waker         // woken when durable advances or the store closes
	round       *syncRound    // the fsync in progress, if any

	ckptMu    sync.Mutex // serialises checkpoints
	indexFile atomic.Int64
	bg        sync.WaitGroup

	recPool  sync.Pool // *[]byte of recHeaderSize+MaxBlock, for dedup checks and compressed payloads
	compPool sync.Pool // *[]byte of compBufSize, for compressing blocks

	mapMu    sync.RWMutex // held (read) while copying from an arena mapping; Close sets unmapped under the write lock
	unmapped bool
	// mapRefs counts the holders of the arena mappings: the store itself
	// until Close, and each block ReadRef hands out until its release.
	// The last one to let go unmaps them (unmapAll).
	mapRefs atomic.Int64
	unrefFn func() // st.unref, the release ReadRef hands out, allocated once

	clientWrites, clientBytes atomic.Uint64
	syncs, fsyncs             atomic.Uint64
	recovered                 RecoveryInfo
}

type syncRound struct {
	upto uint64
	done chan struct{}
	err  error
}

var _ venti.Store = (*Store)(nil)

// RecoveryInfo says what Open had to do to bring the index up to date.
type RecoveryInfo struct {
	IndexLoaded   bool   // an index checkpoint was loaded
	IndexProblem  string // why the checkpoint was not used, if it was not ("" if missing or fine)
	ScannedBytes  int64  // log bytes scanned after the checkpoint
	ScannedBlocks int    // records indexed by the scan
	Corrupt       int    // damaged records found by the scan (indexed; reads of them fail)
	Damaged       int    // stretches of unreadable bytes the scan stepped over
	TornBytes     int64  // bytes of torn tail truncated from the last arena
}

// Open opens the store in dir, creating it if needed. It takes a lock that
// keeps other processes out until Close, loads the index checkpoint and
// scans the log written after it.
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{arenaSize: defArena, ckptBytes: defCkpt, log: slog.New(slog.DiscardHandler), verifyRead: true}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: o, lock: lock, idx: new(index)}
	s.mapRefs.Store(1)
	s.unrefFn = s.unref
	s.recPool.New = func() any { b := make([]byte, recHeaderSize+venti.MaxBlock); return &b }
	s.compPool.New = func() any { b := make([]byte, compBufSize); return &b }
	if err := s.open(); err != nil {
		s.closeFiles()
		unlockDir(lock)
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

// listArenas returns the arena numbers in dir, checking that they run
// from 0 without gaps.
func listArenas(dir string) ([]int, error) {
	names, err := filepath.Glob(filepath.Join(dir, arenaGlob))
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, p := range names {
		suffix := strings.TrimPrefix(filepath.Base(p), "arena.")
		n, err := strconv.Atoi(suffix)
		if err != nil || len(suffix) != 6 {
			continue // not ours (an editor backup, say)
		}
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for i, n := range nums {
		if n != i {
			return nil, fmt.Errorf("arena file %s is missing (found %s): the log has a hole; restore the file or move the later arenas away",
				filepath.Join(dir, fmt.Sprintf(arenaFmt, i)), fmt.Sprintf(arenaFmt, n))
		}
	}
	return nums, nil
}

// openArena opens an existing arena file and checks its header.
func openArena(dir string, num int, flag int) (*arena, error) {
	path := filepath.Join(dir, fmt.Sprintf(arenaFmt, num))
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open arena: %w", err)
	}
	hb := make([]byte, arenaHeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("arena %s: read header: %w", path, err)
	}
	h, err := decodeArenaHeader(hb)
	if err == nil && h.num != num {
		err = fmt.Errorf("header says arena %d", h.num)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("arena %s: %w", path, err)
	}
	a := &arena{num: num, magic: h.magic, version: h.version, size: h.size, path: path, f: f}
	if fi, err := f.Stat(); err == nil {
		a.mm = mapArena(f, max(h.size, fi.Size()))
		a.limit.Store(fi.Size())
	}
	return a, nil
}

// createArena creates arena file num with a fresh header, durably.
func (s *Store) createArena(num int) (*arena, error) {
	if num >= maxArenas {
		return nil, fmt.Errorf("store is full: %d arenas", maxArenas)
	}
	var mb [4]byte
	var magic uint32
	for magic == 0 {
		if _, err := rand.Read(mb[:]); err != nil {
			return nil, err
		}
		magic = binary.BigEndian.Uint32(mb[:])
	}
	// The header is made durable under a temporary name first and renamed
	// into place, so a crash never leaves an arena file without a header.
	path := filepath.Join(s.dir, fmt.Sprintf(arenaFmt, num))
	tmp := path + newArenaSuffix
	h := arenaHeader{version: arenaVersion, num: num, magic: magic, size: s.opts.arenaSize}
	if err := writeArenaHeader(tmp, h); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("create arena %s: %w", path, err)
	}
	if _, err := os.Stat(path); err == nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("create arena %s: it already exists", path)
	}
	err := os.Rename(tmp, path)
	if err == nil {
		err = atomicfile.SyncDir(s.dir)
	}
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("create arena %s: %w", path, err)
	}
	s.opts.log.Info("venti store: new arena", "path", path)
	a := &arena{num: num, magic: magic, version: arenaVersion, size: s.opts.arenaSize, path: path, f: f, mm: mapArena(f, s.opts.arenaSize)}
	a.limit.Store(arenaHeaderSize)
	return a, nil
}

// writeArenaHeader creates path holding h's header, durably.
func writeArenaHeader(path string, h arenaHeader) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.WriteAt(h.encode(), 0); err == nil {
		err = datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Store) open() error {
	// An arena whose creation a crash interrupted holds no records.
	stale, _ := filepath.Glob(filepath.Join(s.dir, arenaGlob+newArenaSuffix))
	for _, p := range stale {
		s.opts.log.Info("venti store: removing half-created arena", "path", p)
		os.Remove(p)
	}
	nums, err := listArenas(s.dir)
	if err != nil {
		return err
	}
	var as []*arena
	s.arenas.Store(&as)
	for _, n := range nums {
		a, err := openArena(s.dir, n, os.O_RDWR)
		if err != nil {
			return err
		}
		as = append(as, a)
		s.arenas.Store(&as)
	}
	if len(as) == 0 {
		a, err := s.createArena(0)
		if err != nil {
			return err
		}
		as = append(as, a)
		s.arenas.Store(&as)
	}

	// A crash while writing a checkpoint leaves its temporary file behind.
	// We hold the directory lock, so no checkpoint is being written.
	if err := atomicfile.RemoveTemps(filepath.Join(s.dir, indexName)); err != nil {
		s.opts.log.Warn("venti store: stale index checkpoint files", "err", err)
	}

	// Load the checkpoint; check that the log still reaches its address.
	start := makeAddr(0, arenaHeaderSize)
	h, err := s.idx.load(filepath.Join(s.dir, indexName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.opts.log.Info("venti store: no index; rebuilding it from the log", "dir", s.dir)
	case err != nil:
		s.recovered.IndexProblem = err.Error()
		s.opts.log.Warn("venti store: index unusable; rebuilding it from the log", "dir", s.dir, "err", err)
	default:
		ca, co := addrArena(h.covered), addrOffset(h.covered)
		var size int64 = -1
		if ca < len(as) {
			if fi, err := as[ca].f.Stat(); err == nil {
				size = fi.Size()
			}
		}
		if co < arenaHeaderSize || co > size {
			s.recovered.IndexProblem = fmt.Sprintf("index covers log address arena %d offset %d, past the end of the log", ca, co)
			s.opts.log.Warn("venti store: index is newer than the log; rebuilding it", "dir", s.dir, "problem", s.recovered.IndexProblem)
			s.idx.reset()
		} else {
			start = h.covered
			s.recovered.IndexLoaded = true
			s.clientWrites.Store(h.clientWrites)
			s.clientBytes.Store(h.clientBytes)
			s.indexFile.Store(indexHdrSize + int64(h.count)*indexEntrySz)
		}
	}

	// Scan the log after the checkpoint.
	var bulk index // new entries, merged in below
	var end int64
	for i := addrArena(start); i < len(as); i++ {
		a := as[i]
		from := int64(arenaHeaderSize)
		if i == addrArena(start) {
			from = addrOffset(start)
		}
		fi, err := a.f.Stat()
		if err != nil {
			return err
		}
		res, err := scanLog(a.f, fi.Size(), a.magic, from, func(r scanRec) error {
			size := r.h.size // a damaged record's block size is unknown; reads of it fail anyway
			if r.status == recOK {
				size = blockSize(r.h, r.data)
			}
			bulk.appendUnsorted(indexKey(r.h.score, r.h.typ), makeLoc(a.num, r.off, size))
			s.recovered.ScannedBlocks++
			if r.status == recCorrupt {
				s.recovered.Corrupt++
				s.opts.log.Error("venti store: damaged record", "arena", a.path, "offset", r.off, "score", r.h.score, "type", r.h.typ)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("recovery scan of %s: %w", a.path, err)
		}
		s.recovered.ScannedBytes += res.end - from
		for _, d := range res.damaged {
			s.recovered.Damaged++
			s.opts.log.Error("venti store: unreadable bytes in the log", "arena", a.path, "from", d.off, "to", d.end, "reason", d.why)
		}
		end = res.end
		if i < len(as)-1 {
			if !res.sealed {
				s.opts.log.Warn("venti store: arena has no end marker (crash while it filled?)", "arena", a.path, "end", res.end, "stop", res.stopErr)
			}
			continue
		}
		if fi.Size() > res.end {
			// A torn tail: an append that a crash cut short. Nothing
			// acknowledged by Sync lies there (it would have been complete).
			// The zeros that pad a direct write to a whole block are not
			// torn: they only go.
			if torn := fi.Size() - res.end - res.padding; torn > 0 {
				s.recovered.TornBytes = torn
				s.opts.log.Warn("venti store: truncating torn tail", "arena", a.path, "offset", res.end, "bytes", torn, "reason", res.stopErr)
			}
			if err := a.f.Truncate(res.end); err != nil {
				return fmt.Errorf("truncate torn tail of %s: %w", a.path, err)
			}
			a.limit.Store(res.end)
		}
		if res.sealed {
			// The last arena is full (a crash came between sealing it and
			// creating the next): start the next one now.
			a, err := s.createArena(len(as))
			if err != nil {
				return err
			}
			as = append(as, a)
			s.arenas.Store(&as)
			end = arenaHeaderSize
			break
		}
	}
	bulk.sortAll()
	if s.idx.n == 0 {
		s.idx.buckets, s.idx.n, s.idx.bytes = bulk.buckets, bulk.n, bulk.bytes
	} else {
		for bi := range bulk.buckets {
			for _, e := range bulk.buckets[bi] {
				s.idx.insert(e.key, e.loc)
			}
		}
	}

	s.cur = as[len(as)-1]
	if canPreallocate {
		// Space a process that died left preallocated past the end of
		// the current arena goes back (see trimLocked).
		s.cur.prealloc = -1
	}
	if err := s.trimLocked(s.cur, end); err != nil {
		return err
	}
	s.off = end
	s.wbuf = alignedBuf(wbufSize + dioAlign)
	if err := s.startTailLocked(end); err != nil {
		return err
	}
	s.tail.Store(makeAddr(s.cur.num, s.off))
	s.flushed.Store(s.tail.Load())
	if s.recovered.ScannedBytes > 0 || s.recovered.TornBytes > 0 || !s.recovered.IndexLoaded {
		// Make the scanned records durable (they may have been only in the
		// page cache when the previous process died) before a checkpoint
		// claims them.
		for i := addrArena(start); i < len(as); i++ {
			if err := datasync(as[i].f); err != nil {
				return fmt.Errorf("sync %s: %w", as[i].path, err)
			}
		}
		s.synced = s.tail.Load()
		s.durable.Store(s.synced)
		if err := s.checkpoint(); err != nil {
			return err
		}
		s.opts.log.Info("venti store: index brought up to date", "dir", s.dir,
			"scanned_bytes", s.recovered.ScannedBytes, "blocks", s.recovered.ScannedBlocks, "torn_bytes", s.recovered.TornBytes)
	} else {
		s.synced = s.tail.Load()
		s.durable.Store(s.synced)
	}
	return nil
}

// Recovery reports what Open did to bring the index up to date.
func (s *Store) Recovery() RecoveryInfo { return s.recovered }

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) arenaByNum(n int) (*arena, error) {
	as := *s.arenas.Load()
	if n >= len(as) {
		return nil, fmt.Errorf("index points at arena %d, which does not exist", n)
	}
	return as[n], nil
}

// errMismatch means a record holds another block whose key prefix collides.
var errMismatch = errors.New("record holds another block")

// check says how much of a record readRecord verifies.
type check int

const (
	checkStored check = iota // the data checksum of the bytes on disk and a compressed payload's header; no decoding (a dedup check)
	checkBlock               // also decode, and check the block's size and CRC32C
	checkSHA                 // also recompute the block's SHA-1
	// checkWhacked is checkStored for Whacked: the result is a copy of a
	// whack record's whack data, nil for a record of another encoding.
	checkWhacked
)

// readRecord reads the record at loc and checks that it holds block (s, t).
// It returns errMismatch for a record of another block and an error
// wrapping venti.ErrCorrupt (naming s) for a damaged one.
//
// locked says whether the caller holds st.mu; records still in the append
// buffer are read from it under st.mu.
// The block is read (a raw one) or decoded (a compressed one) into scratch
// if it is large enough, else into a new buffer; with checkStored a
// compressed record's payload is returned undecoded.
func (st *Store) readRecord(loc uint64, s venti.Score, t venti.Type, ck check, locked bool, scratch []byte) ([]byte, error) {
	data, err := st.readRecordFrom(loc, s, t, ck, locked, scratch, true)
	if err != nil && errors.Is(err, venti.ErrCorrupt) {
		// Damage seen through the mapping: read the file itself to be
		// sure, and for the precise error (a file cut short behind our
		// back reads as zeros up to its last page in the mapping).
		return st.readRecordFrom(loc, s, t, ck, locked, scratch, false)
	}
	return data, err
}

// readRecordFrom is readRecord; mapped says whether the record may be
// copied from the arena's mapping.
func (st *Store) readRecordFrom(loc uint64, s venti.Score, t venti.Type, ck check, locked bool, scratch []byte, mapped bool) ([]byte, error) {
	a, err := st.arenaByNum(locArena(loc))
	if err != nil {
		return nil, fmt.Errorf("read %v/%v: %w: %v", s, t, venti.ErrCorrupt, err)
	}
	off, size := locOffset(loc), locSize(loc)
	corrupt := func(why string) error {
		return fmt.Errorf("read %v/%v: %w: %s offset %d: %s", s, t, venti.ErrCorrupt, a.path, off, why)
	}
	var hb [recHeaderSize]byte
	if err := st.readLog(a, hb[:], off, locked, mapped); err != nil {
		return nil, st.readErr(a, s, t, off, err)
	}
	h, err := decodeRecHeader(hb[:], a.magic)
	if err != nil {
		return nil, corrupt(err.Error())
	}
	if h.score != s || h.typ != t {
		if h.flags == flagRaw && h.size != size {
			return nil, corrupt(fmt.Sprintf("index says %d bytes, record header %d", size, h.size))
		}
		return nil, errMismatch
	}
	if h.flags == flagRaw && h.size != size || h.size > size {
		// A compressed payload is never larger than its block.
		return nil, corrupt(fmt.Sprintf("index says %d bytes, record header %d", size, h.size))
	}
	// A raw block is read straight into scratch; a compressed payload into
	// a pooled buffer, then decoded into scratch.
	var payload []byte
	var pooled *[]byte
	switch {
	case h.flags != flagRaw && ck != checkStored:
		pooled = st.recPool.Get().(*[]byte)
		defer st.recPool.Put(pooled)
		payload = (*pooled)[:h.size]
	case cap(scratch) >= h.size:
		payload = scratch[:h.size]
	default:
		payload = make([]byte, h.size)
	}
	if err := st.readLog(a, payload, off+recHeaderSize, locked, mapped); err != nil {
		return nil, st.readErr(a, s, t, off, err)
	}
	if !payloadMatches(hb[:], payload) {
		return nil, corrupt("block checksum mismatch")
	}
	if ck == checkStored {
		if !payloadOK(h, payload) {
			return nil, corrupt(errBadPayload.Error() + ": bad size or S2 header")
		}
		return payload, nil
	}
	if ck == checkWhacked {
		if !payloadOK(h, payload) {
			return nil, corrupt(errBadPayload.Error() + ": bad size or header")
		}
		if h.flags != flagWhack {
			return nil, nil
		}
		return bytes.Clone(payload[compPrefix:]), nil
	}
	data, err := decodePayload(h, payload, scratch)
	if err != nil {
		return nil, corrupt(err.Error())
	}
	if len(data) != size {
		return nil, corrupt(fmt.Sprintf("index says %d bytes, block has %d", size, len(data)))
	}
	if ck == checkSHA {
		if got := venti.Sum(data); got != s {
			return nil, corrupt(fmt.Sprintf("block hashes to %v", got))
		}
	}
	return data, nil
}

// readErr is the error of a failed read of a record of (s, t) at off in a.
func (st *Store) readErr(a *arena, s venti.Score, t venti.Type, off int64, err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("read %v/%v: %w: %s offset %d: record is past the end of the file", s, t, venti.ErrCorrupt, a.path, off)
	}
	return fmt.Errorf("read %v/%v: %s offset %d: %w", s, t, a.path, off, err)
}

// readLog reads len(b) log bytes of arena a at off: from the append
// buffer or the one being written if they are still there (under st.mu,
// unless locked says the caller holds it), else from the file (see
// readAt).
func (st *Store) readLog(a *arena, b []byte, off int64, locked, mapped bool) error {
	if makeAddr(a.num, off) >= st.flushed.Load() {
		if !locked {
			st.mu.Lock()
		}
		inBuf := a == st.cur && off >= st.wbufOff && off+int64(len(b)) <= st.wbufOff+int64(len(st.wbuf))
		if inBuf {
			copy(b, st.wbuf[off-st.wbufOff:])
		} else if w := st.inflight; w != nil && a == w.a && off >= w.off && off+int64(len(b)) <= w.off+int64(len(w.buf)) {
			copy(b, w.buf[off-w.off:])
			inBuf = true
		}
		if !locked {
			st.mu.Unlock()
		}
		if inBuf {
			return nil
		}
	}
	return st.readAt(a, b, off, mapped)
}

// readAt reads len(b) bytes of arena a at off. Bytes the arena file is
// known to hold are copied from its mapping: a page-cache read without a
// system call, which costs a good part of a SHA-1 of the block. Anything
// else (no mapping, a range past what we know is written) goes to ReadAt,
// and so does a range whose mapped pages fault (the file was cut short
// behind our back): the fault becomes a recovered panic, not a crash.
func (st *Store) readAt(a *arena, b []byte, off int64, mapped bool) error {
	if mapped && a.mm != nil && off >= 0 && off+int64(len(b)) <= min(a.limit.Load(), int64(len(a.mm))) && st.copyMapped(a, b, off) {
		return nil
	}
	_, err := a.f.ReadAt(b, off)
	return err
}

// copyMapped copies from a's mapping at off into b; false if the mapping
// is gone or the copy faulted.
func (st *Store) copyMapped(a *arena, b []byte, off int64) (ok bool) {
	st.mapMu.RLock()
	defer st.mapMu.RUnlock()
	if st.unmapped {
		return false
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if recover() != nil {
			ok = false
		}
	}()
	copy(b, a.mm[off:])
	return true
}

// find looks (s, t) up. It returns ok when a good copy exists. Otherwise
// bad is the location of a damaged copy (0 if none) and err its error.
//
// The record is read into scratch when it fits (want's data then aliases
// it); with no scratch and no want, into a pooled buffer.
func (st *Store) find(s venti.Score, t venti.Type, ck check, locked bool, scratch []byte, want func([]byte) error) (ok bool, bad uint64, err error) {
	var arr [4]uint64
	locs := st.idx.lookup(indexKey(s, t), arr[:0])
	if len(locs) == 0 {
		return false, 0, nil
	}
	if want == nil && scratch == nil {
		// Nobody keeps the bytes (a dedup check): read into a pooled buffer.
		p := st.recPool.Get().(*[]byte)
		defer st.recPool.Put(p)
		scratch = *p
	}
	for _, loc := range locs {
		data, rerr := st.readRecord(loc, s, t, ck, locked, scratch)
		switch {
		case rerr == nil:
			if want != nil {
				if err := want(data); err != nil {
					return false, 0, err
				}
			}
			return true, 0, nil
		case errors.Is(rerr, errMismatch):
		case errors.Is(rerr, venti.ErrCorrupt):
			bad, err = loc, rerr
		default:
			return false, 0, rerr
		}
	}
	return false, bad, err
}

// Read implements venti.Reader. It verifies the record's checksums and
// (unless WithReadVerify(false)) the block's SHA-1 before answering; a
// damaged block gives an error wrapping venti.ErrCorrupt that names the
// score, file and offset.
func (st *Store) Read(ctx context.Context, s venti.Score, t venti.Type, max int) ([]byte, error) {
	return st.ReadInto(ctx, s, t, max, nil)
}

// ReadInto implements venti.ReaderInto: Read, except that the block is
// read into buf when buf has room for it and its record header
// (venti.MaxBlock+64 bytes always do); the result then aliases buf.
func (st *Store) ReadInto(ctx context.Context, s venti.Score, t venti.Type, max int, buf []byte) ([]byte, error) {
	if s == venti.ZeroScore {
		return []byte{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %v/%v: %w", s, t, err)
	}
	if st.isClosed.Load() {
		return nil, fmt.Errorf("read %v/%v: %w", s, t, ErrClosed)
	}
	var out []byte
	ck := checkBlock
	if st.opts.verifyRead {
		ck = checkSHA
	}
	ok, _, err := st.find(s, t, ck, false, buf, func(data []byte) error {
		if len(data) > max {
			return fmt.Errorf("read %v/%v: block is %d bytes, more than the %d asked for", s, t, len(data), max)
		}
		out = data
		return nil
	})
	if ok {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("read %v/%v: %w", s, t, venti.ErrNotFound)
}

// ReadRef implements venti.ReaderRef: ReadInto, except that a block
// stored raw in a part of an arena file the store has mapped is not
// copied: data is then the block's bytes in the mapping, checked as
// ReadInto checks them, and release (non-nil) must be called once data
// is no longer needed; the mapping outlives Close until then. Otherwise
// release is nil and data is ReadInto's, read into buf.
func (st *Store) ReadRef(ctx context.Context, s venti.Score, t venti.Type, max int, buf []byte) (data []byte, release func(), err error) {
	if s != venti.ZeroScore && ctx.Err() == nil && !st.isClosed.Load() {
		ck := checkBlock
		if st.opts.verifyRead {
			ck = checkSHA
		}
		if b, ok := st.refMapped(s, t, ck, false); ok {
			if len(b) > max {
				st.unref()
				return nil, nil, fmt.Errorf("read %v/%v: block is %d bytes, more than the %d asked for", s, t, len(b), max)
			}
			return b, st.unrefFn, nil
		}
	}
	data, err = st.ReadInto(ctx, s, t, max, buf)
	return data, nil, err
}

// ReadRefNoWait implements venti.ReaderNoWait: it serves a raw record
// from the arena's mapping, its checksums checked, when its pages are in
// the page cache (resident), so that touching them waits for no disk. A
// store that verifies every read's SHA-1 (WithReadVerify, the default)
// leaves that work to the caller's workers: ok is then false.
func (st *Store) ReadRefNoWait(s venti.Score, t venti.Type, max int) (data []byte, release func(), ok bool) {
	if s == venti.ZeroScore || st.opts.verifyRead || st.isClosed.Load() {
		return nil, nil, false
	}
	b, ok := st.refMapped(s, t, checkBlock, true)
	if !ok {
		return nil, nil, false
	}
	if len(b) > max {
		st.unref()
		return nil, nil, false
	}
	return b, st.unrefFn, true
}

// refMapped returns the block (s, t) from the first of its records that
// readMapped can reference (with ck), and with resident only from one in
// pages the page cache holds; the caller must drop the mapping reference.
func (st *Store) refMapped(s venti.Score, t venti.Type, ck check, resident bool) ([]byte, bool) {
	var arr [4]uint64
	for _, loc := range st.idx.lookup(indexKey(s, t), arr[:0]) {
		if resident && !st.mappedResident(loc) {
			continue
		}
		if b, ok := st.readMapped(loc, s, t, ck); ok {
			return b, true
		}
	}
	return nil, false
}

// mappedResident reports whether the record at loc lies in its arena's
// mapping in pages the page cache holds.
func (st *Store) mappedResident(loc uint64) bool {
	a, err := st.arenaByNum(locArena(loc))
	if err != nil || a.mm == nil {
		return false
	}
	off := locOffset(loc)
	end := off + recHeaderSize + int64(locSize(loc))
	if off < 0 || end > int64(len(a.mm)) {
		return false
	}
	return resident(a.mm, off, end)
}

// readMapped returns the raw record of (s, t) at loc as a slice of its
// arena's mapping, its checksums (and with checkSHA its score) checked,
// with a mapping reference (st.ref) the caller must drop. ok is false
// when the record cannot be referenced so: not yet known to be in the
// file, compressed, another block's, or damaged (an ordinary read then
// reports what is wrong).
func (st *Store) readMapped(loc uint64, s venti.Score, t venti.Type, ck check) (data []byte, ok bool) {
	a, err := st.arenaByNum(locArena(loc))
	if err != nil || a.mm == nil {
		return nil, false
	}
	off, size := locOffset(loc), locSize(loc)
	end := off + recHeaderSize + int64(size)
	if off < 0 || end > min(a.limit.Load(), int64(len(a.mm))) || !st.ref() {
		return nil, false
	}
	defer func() {
		if !ok {
			st.unref()
		}
	}()
	// A file cut short behind our back faults in the mapping: that is a
	// recovered panic and an ordinary read, not a crash.
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if recover() != nil {
			data, ok = nil, false
		}
	}()
	rec := a.mm[off:end:end]
	h, err := decodeRecHeader(rec, a.magic)
	if err != nil || h.score != s || h.typ != t || h.flags != flagRaw || h.size != size || !dataOK(rec) {
		return nil, false
	}
	data = rec[recHeaderSize:]
	if ck == checkSHA && venti.Sum(data) != s {
		return nil, false
	}
	return data, true
}

// Write implements venti.Writer. A block already stored costs one read of
// its record (checked by CRC, not decoded) and no write; a block whose
// stored copy is damaged is written again and the index switched to the
// new copy. A new block is compressed (see compressBlock) in the caller's
// goroutine before the append lock is taken.
func (st *Store) Write(ctx context.Context, t venti.Type, data []byte) (venti.Score, error) {
	return st.write(ctx, t, data, nil)
}

// WriteWhacked is Write for a block that arrives whack-compressed, as the
// clumps of a plan9port or Plan 9 venti arena do: whacked, the block's
// whack encoding as the arena holds it, is stored as it is (a whack
// record) instead of the block being compressed again, so the clump's
// bytes can be given back exactly (Whacked). The caller has decoded
// whacked into data; a whacked that does not decode to data is caught by
// the record's checksum of data on every read, never served. A block the
// store already holds is not written again, in whatever encoding it is.
func (st *Store) WriteWhacked(ctx context.Context, t venti.Type, data, whacked []byte) (venti.Score, error) {
	return st.write(ctx, t, data, whacked)
}

// Whacked returns the stored whack encoding of the block (s, t) when the
// store holds it as a whack record (see WriteWhacked), checked against the
// record's data checksum; ok is false when the block is stored in another
// encoding. A missing block is an error matching venti.ErrNotFound.
func (st *Store) Whacked(ctx context.Context, s venti.Score, t venti.Type) (whacked []byte, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("read %v/%v: %w", s, t, err)
	}
	if st.isClosed.Load() {
		return nil, false, fmt.Errorf("read %v/%v: %w", s, t, ErrClosed)
	}
	found, _, err := st.find(s, t, checkWhacked, false, nil, func(w []byte) error {
		whacked, ok = w, w != nil
		return nil
	})
	if found {
		return whacked, ok, nil
	}
	if err != nil {
		return nil, false, err
	}
	return nil, false, fmt.Errorf("read %v/%v: %w", s, t, venti.ErrNotFound)
}

// write stores data (see Write); a non-nil whacked is its whack encoding,
// kept as it is (see WriteWhacked).
func (st *Store) write(ctx context.Context, t venti.Type, data, whacked []byte) (venti.Score, error) {
	if err := venti.CheckWrite(t, data); err != nil {
		return venti.Score{}, err
	}
	if len(data) == 0 {
		return venti.ZeroScore, nil
	}
	if err := ctx.Err(); err != nil {
		return venti.Score{}, fmt.Errorf("write block: %w", err)
	}
	if st.isClosed.Load() {
		return venti.Score{}, fmt.Errorf("write block: %w", ErrClosed)
	}
	s := venti.Sum(data)
	st.clientWrites.Add(1)
	st.clientBytes.Add(uint64(len(data)))
	if ok, _, err := st.find(s, t, checkStored, false, nil, nil); ok {
		return s, nil
	} else if err != nil && !errors.Is(err, venti.ErrCorrupt) {
		return venti.Score{}, fmt.Errorf("write %v/%v: %w", s, t, err)
	}
	cp := st.compPool.Get().(*[]byte)
	defer st.compPool.Put(cp)
	var flags byte
	var payload []byte
	if p, ok := whackPayload(*cp, data, whacked); ok {
		flags, payload = flagWhack, p
	} else {
		flags, payload = compressBlock(*cp, data)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return venti.Score{}, fmt.Errorf("write %v/%v: %w", s, t, ErrClosed)
	}
	if st.broken != nil {
		return venti.Score{}, fmt.Errorf("write %v/%v: store failed earlier: %w", s, t, st.broken)
	}
	// Look again: another writer may have stored the block meanwhile.
	ok, bad, err := st.find(s, t, checkStored, true, nil, nil)
	if ok {
		return s, nil
	}
	if err != nil && !errors.Is(err, venti.ErrCorrupt) {
		return venti.Score{}, fmt.Errorf("write %v/%v: %w", s, t, err)
	}
	loc, err := st.appendLocked(t, s, flags, payload, len(data))
	if err != nil {
		return venti.Score{}, fmt.Errorf("write %v/%v: %w", s, t, err)
	}
	if bad != 0 {
		st.opts.log.Warn("venti store: replaced damaged record with a fresh copy", "score", s, "type", t,
			"old_arena", locArena(bad), "old_offset", locOffset(bad))
		st.idx.replace(indexKey(s, t), bad, loc)
	} else {
		st.idx.insert(indexKey(s, t), loc)
	}
	st.tail.Store(makeAddr(st.cur.num, st.off))
	st.maybeCheckpointLocked()
	return s, nil
}

// appendLocked appends the record of a block of size bytes, encoded as
// flags and payload say, to the log and returns its location. st.mu must be
// held. On failure the log is cut back to where it was.
func (st *Store) appendLocked(t venti.Type, s venti.Score, flags byte, payload []byte, size int) (uint64, error) {
	n := int64(recHeaderSize + len(payload))
	if st.off+n+recHeaderSize > st.opts.arenaSize {
		if err := st.rollLocked(); err != nil {
			return 0, err
		}
	}
	if v := versionFor(flags); st.cur.version < v {
		if err := st.upgradeLocked(st.cur, v); err != nil {
			return 0, err
		}
	}
	if len(st.wbuf)+int(n) > cap(st.wbuf) {
		if err := st.flushLocked(); err != nil {
			return 0, err
		}
	}
	k := len(st.wbuf)
	encodeRecord(st.wbuf[k:k+int(n)], st.cur.magic, t, s, flags, payload)
	st.wbuf = st.wbuf[:k+int(n)]
	loc := makeLoc(st.cur.num, st.off, size)
	st.markDirtyLocked(st.cur)
	st.off += n
	st.sinceCkpt += n
	return loc, nil
}

// upgradeLocked moves arena a, written by a gridlord that stored blocks
// raw (or without whack records), to format version v before the first
// record that needs it goes in, durably: an older gridlord then refuses
// the arena with a clear error instead of truncating the log at the record
// it cannot read. The header is one 64-byte write within a sector. st.mu
// must be held.
func (st *Store) upgradeLocked(a *arena, v uint32) error {
	// A write in flight may hold the header's block: it must land first.
	if err := st.reapLocked(); err != nil {
		return err
	}
	h := arenaHeader{version: v, num: a.num, magic: a.magic, size: a.size}
	if _, err := a.f.WriteAt(h.encode(), 0); err != nil {
		return fmt.Errorf("upgrade arena %s to format %d: %w", a.path, v, err)
	}
	if err := datasync(a.f); err != nil {
		st.broken = fmt.Errorf("upgrade arena %s to format %d: %w (reopen the store to recover)", a.path, v, err)
		return st.broken
	}
	st.opts.log.Info("venti store: arena upgraded for compressed records", "arena", a.path, "version", v)
	a.version = v
	if a == st.cur && st.wbufOff == 0 {
		copy(st.wbuf, h.encode()) // the next direct write rewrites the header's block
	}
	return nil
}

// startTailLocked makes st.cur's log end at end: the append buffer starts
// at the dioAlign-block holding end, read back from the file, so that
// direct writes always rewrite whole blocks; and the arena is opened for
// direct writes unless they are off or were refused. st.mu must be held
// (or the store be opening).
func (st *Store) startTailLocked(end int64) error {
	a := st.cur
	st.wbufOff = end &^ (dioAlign - 1)
	st.wbuf = st.wbuf[:end-st.wbufOff]
	st.wdone = len(st.wbuf)
	if _, err := a.f.ReadAt(st.wbuf, st.wbufOff); err != nil {
		return fmt.Errorf("read the end of the log in %s: %w", a.path, err)
	}
	if st.opts.direct && !st.noDirect && a.dio == nil {
		f, err := openDirect(a.path)
		if err != nil {
			st.noDirect = true
			st.opts.log.Debug("venti store: no direct writes", "arena", a.path, "err", err)
			return nil
		}
		a.dio = f
	}
	return nil
}

// flush is a write of an append buffer to an arena file, made by a
// goroutine of its own while appends go on into the other buffer.
type flush struct {
	a       *arena
	buf     []byte // the log from off on; its first done bytes are in the file already
	off     int64
	done    int
	fin     chan struct{} // closed when the write has returned
	err     error
	refused bool // a direct write was refused (EINVAL); the bytes went through the page cache
}

// flushLocked starts writing the append buffer out to the current arena
// and gives appends the other buffer, holding the part of the last block
// that the next direct write rewrites; it first waits for the write
// before (see reapLocked), so one write at a time is in flight and writes
// reach the file in order. st.mu must be held.
func (st *Store) flushLocked() error {
	if err := st.reapLocked(); err != nil {
		return err
	}
	if len(st.wbuf) == st.wdone {
		return nil
	}
	if st.broken != nil {
		return fmt.Errorf("store failed earlier: %w", st.broken)
	}
	if end := alignUp(st.wbufOff + int64(len(st.wbuf))); end > st.cur.prealloc && !st.noPrealloc {
		st.preallocLocked(end)
	}
	w := &flush{a: st.cur, buf: st.wbuf, off: st.wbufOff, done: st.wdone, fin: make(chan struct{})}
	next := st.spare
	if next == nil {
		next = alignedBuf(cap(st.wbuf))
	}
	keep := len(st.wbuf) % dioAlign
	cut := len(st.wbuf) - keep
	st.wbuf, st.spare = next[:copy(next[:keep], st.wbuf[cut:])], nil
	st.wbufOff, st.wdone = st.wbufOff+int64(cut), keep
	st.inflight = w
	go func() {
		defer close(w.fin)
		w.err = w.write()
	}()
	return nil
}

// syncFlushLocked is flushLocked that also waits for the write to end.
// st.mu must be held.
func (st *Store) syncFlushLocked() error {
	if err := st.flushLocked(); err != nil {
		return err
	}
	return st.reapLocked()
}

// reapLocked waits for the write in flight, if any, and makes what it
// wrote readable from the file. A failed write leaves the log in doubt
// (the records are already indexed), so it breaks the store: reopening
// rescans the log. st.mu must be held.
func (st *Store) reapLocked() error {
	w := st.inflight
	if w == nil {
		return nil
	}
	<-w.fin
	st.inflight, st.spare = nil, w.buf[:0]
	a := w.a
	if w.refused {
		st.opts.log.Info("venti store: direct writes refused; writing through the page cache", "arena", a.path)
		st.noDirect = true
		st.closeDirectLocked(a)
	}
	if w.err != nil {
		a.f.Truncate(w.off + int64(w.done))
		st.broken = fmt.Errorf("append to %s: %w (reopen the store to recover)", a.path, w.err)
		return st.broken
	}
	end := w.off + int64(len(w.buf))
	st.markDirtyLocked(a)
	a.limit.Store(end)
	st.flushed.Store(makeAddr(a.num, end))
	return nil
}

// write writes w's bytes not yet in the file: with a direct write of whole
// blocks from w.off (the last one padded with zeros, which the next write
// overwrites and a scan after a crash recognises), or else with a pwrite
// of just the new bytes. It runs without st.mu: nothing else writes the
// arena or closes its files while a write is in flight.
func (w *flush) write() error {
	if w.a.dio != nil {
		n := int(alignUp(int64(len(w.buf))))
		b := w.buf[:n]
		clear(b[len(w.buf):])
		_, err := w.a.dio.WriteAt(b, w.off)
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		w.refused = true
	}
	_, err := w.a.f.WriteAt(w.buf[w.done:], w.off+int64(w.done))
	return err
}

// preallocStep is how far past the end of the current arena's file its
// disk blocks are reserved ahead of the appends. A write into reserved
// blocks costs the kernel less than one that must allocate them
// (ext4 delayed allocation: 256 MiB in 256 KiB pwrites, 75 ms of CPU
// against 55 ms into preallocated space, and about 20% of "venti serve"'s
// CPU under "bench vac -cli" is that pwrite). The reservation is given
// back when the arena is sealed or the store closed, so a closed store
// takes no more disk than its records; an open one at most this much
// more.
const preallocStep = 8 << 20

// preallocLocked reserves the current arena's blocks up to preallocStep
// past end (at most to the arena's size limit). A system or file system
// that cannot preallocate is not asked again. st.mu must be held.
func (st *Store) preallocLocked(end int64) {
	a := st.cur
	from := max(a.prealloc, st.wbufOff+int64(st.wdone))
	to := max(min(end+preallocStep, a.size), end)
	if err := preallocate(a.f, from, to-from); err != nil {
		st.noPrealloc = true
		st.opts.log.Debug("venti store: no preallocation", "arena", a.path, "err", err)
		return
	}
	a.prealloc = to
}

// trimLocked cuts arena a's file to end, the end of its log: that gives
// back the blocks preallocated past it (on Linux, truncating a file to its
// own size frees what fallocate(FALLOC_FL_KEEP_SIZE) reserved past its
// end; punching a hole there does not, on ext4) and drops the zeros that
// padded the last direct write. A file shorter than end is left alone.
// st.mu must be held, or the store be opening or closing.
func (st *Store) trimLocked(a *arena, end int64) error {
	fi, err := a.f.Stat()
	if err == nil && (a.prealloc != 0 || fi.Size() > end) {
		err = a.f.Truncate(min(fi.Size(), end))
	}
	if err != nil {
		return fmt.Errorf("give back the space past the log's end in %s: %w", a.path, err)
	}
	a.prealloc = 0
	return nil
}

func (st *Store) markDirtyLocked(a *arena) {
	if len(st.dirty) == 0 || st.dirty[len(st.dirty)-1] != a {
		st.dirty = append(st.dirty, a)
	}
}

// rollLocked seals the current arena with an end marker and starts the
// next one. st.mu must be held.
func (st *Store) rollLocked() error {
	st.wbuf = append(st.wbuf, encodeEnd(st.cur.magic)...)
	st.off += recHeaderSize
	if err := st.syncFlushLocked(); err != nil {
		return err
	}
	if err := st.trimLocked(st.cur, st.off); err != nil {
		st.opts.log.Warn("venti store: sealed arena", "err", err)
	}
	st.closeDirectLocked(st.cur)
	a, err := st.createArena(st.cur.num + 1)
	if err != nil {
		st.broken = err
		return err
	}
	as := append(append([]*arena(nil), *st.arenas.Load()...), a)
	st.arenas.Store(&as)
	st.cur, st.off = a, arenaHeaderSize
	if err := st.startTailLocked(arenaHeaderSize); err != nil {
		st.broken = err
		return err
	}
	st.flushed.Store(makeAddr(a.num, arenaHeaderSize))
	return nil
}

// closeDirectLocked closes a's direct-write file, if it has one. st.mu
// must be held, or the store be closing.
func (st *Store) closeDirectLocked(a *arena) {
	if a.dio != nil {
		if err := a.dio.Close(); err != nil {
			st.opts.log.Warn("venti store: close", "arena", a.path, "err", err)
		}
		a.dio = nil
	}
}

// Sync implements venti.Syncer: it returns once every block whose Write
// returned before the call is on stable storage. Concurrent calls share
// one fsync per arena file; a call with nothing new to flush returns at
// once. Cancelling ctx abandons the wait, not the fsync. If an fsync fails
// the store refuses further writes (the kernel may have dropped the dirty
// pages, so what is on disk is unknown until the store is reopened, which
// rescans the log).
func (st *Store) Sync(ctx context.Context) error {
	st.syncs.Add(1)
	target := st.tail.Load()
	st.syncMu.Lock()
	for {
		if st.synced >= target {
			st.syncMu.Unlock()
			return nil
		}
		if r := st.round; r != nil {
			st.syncMu.Unlock()
			select {
			case <-r.done:
			case <-ctx.Done():
				return fmt.Errorf("sync: %w", ctx.Err())
			}
			if r.err != nil && r.upto >= target {
				return r.err
			}
			st.syncMu.Lock()
			continue
		}
		// Lead a round: fsync everything appended so far.
		st.mu.Lock()
		if st.broken != nil {
			st.mu.Unlock()
			st.syncMu.Unlock()
			return fmt.Errorf("sync: store failed earlier: %w", st.broken)
		}
		if err := st.syncFlushLocked(); err != nil {
			st.mu.Unlock()
			st.syncMu.Unlock()
			return fmt.Errorf("sync: %w", err)
		}
		r := &syncRound{upto: st.tail.Load(), done: make(chan struct{})}
		files := st.dirty
		st.dirty = nil
		st.mu.Unlock()
		st.round = r
		st.syncMu.Unlock()

		for _, a := range files {
			st.fsyncs.Add(1)
			if err := datasync(a.f); err != nil {
				r.err = fmt.Errorf("sync %s: %w", a.path, err)
				break
			}
		}
		if r.err != nil {
			st.mu.Lock()
			st.broken = r.err
			st.mu.Unlock()
		}
		st.syncMu.Lock()
		if r.err == nil && r.upto > st.synced {
			st.synced = r.upto
			st.durable.Store(r.upto)
			st.durableWake.wake()
		}
		st.round = nil
		close(r.done)
		if r.err != nil {
			st.syncMu.Unlock()
			return r.err
		}
	}
}

// maybeCheckpointLocked starts a background checkpoint when enough log has
// been written since the last one. st.mu must be held.
func (st *Store) maybeCheckpointLocked() {
	limit := max(st.opts.ckptBytes, ckptFactor*st.indexFile.Load())
	if st.sinceCkpt < limit || st.ckptActive || st.closed {
		return
	}
	st.ckptActive = true
	st.bg.Add(1)
	go func() {
		defer st.bg.Done()
		if err := st.checkpoint(); err != nil {
			st.opts.log.Error("venti store: index checkpoint failed", "dir", st.dir, "err", err)
		}
		st.mu.Lock()
		st.ckptActive = false
		st.mu.Unlock()
	}()
}

// checkpoint syncs the log and writes the index entries for everything
// synced to the index file.
func (st *Store) checkpoint() error {
	st.ckptMu.Lock()
	defer st.ckptMu.Unlock()
	st.mu.Lock()
	pending := st.sinceCkpt
	st.mu.Unlock()
	if err := st.Sync(context.Background()); err != nil {
		return err
	}
	st.syncMu.Lock()
	covered := st.synced
	st.syncMu.Unlock()
	n, err := st.idx.writeCheckpoint(st.dir, indexHeader{
		covered:      covered,
		clientWrites: st.clientWrites.Load(),
		clientBytes:  st.clientBytes.Load(),
	})
	if err != nil {
		return err
	}
	st.indexFile.Store(n)
	st.mu.Lock()
	st.sinceCkpt -= min(pending, st.sinceCkpt)
	st.mu.Unlock()
	return nil
}

// Close syncs the log, writes an index checkpoint, closes the files and
// releases the lock. It is idempotent; later operations fail with
// ErrClosed (reads in flight may fail too).
func (st *Store) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	st.isClosed.Store(true)
	broken := st.broken
	st.mu.Unlock()
	st.durableWake.wake()
	st.bg.Wait()
	var errs []error
	if broken == nil {
		errs = append(errs, st.checkpoint())
	}
	errs = append(errs, st.closeFiles(), unlockDir(st.lock))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %s: %w", st.dir, err)
	}
	return nil
}

func (st *Store) closeFiles() error {
	p := st.arenas.Load()
	if p == nil {
		return nil
	}
	var errs []error
	st.mu.Lock()
	st.reapLocked()                      // a write still in flight (the store broke, or Open failed) ends first; a failure of it breaks the store
	if st.cur != nil && st.wbuf != nil { // the log's end is known (see startTailLocked)
		errs = append(errs, st.trimLocked(st.cur, st.wbufOff+int64(st.wdone)))
		st.closeDirectLocked(st.cur)
	}
	st.mu.Unlock()
	st.mapMu.Lock()
	st.unmapped = true
	for _, a := range *p {
		errs = append(errs, a.f.Close()) // the mappings outlive the files
	}
	st.mapMu.Unlock()
	if st.mapRefs.Add(-1) == 0 {
		errs = append(errs, st.unmapAll())
	}
	return errors.Join(errs...)
}

// ref takes a reference on the arena mappings, unless the last one has
// been dropped (they are unmapped or about to be).
func (st *Store) ref() bool {
	for {
		n := st.mapRefs.Load()
		if n <= 0 {
			return false
		}
		if st.mapRefs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// unref drops a reference taken by ref; the last one unmaps the arenas.
func (st *Store) unref() {
	if st.mapRefs.Add(-1) == 0 {
		if err := st.unmapAll(); err != nil {
			st.opts.log.Warn("venti store: unmap arenas", "err", err)
		}
	}
}

// unmapAll unmaps every arena; only the holder of the last mapping
// reference calls it.
func (st *Store) unmapAll() error {
	p := st.arenas.Load()
	if p == nil {
		return nil
	}
	var errs []error
	for _, a := range *p {
		errs = append(errs, unmapArena(a.mm))
	}
	return errors.Join(errs...)
}

// Stats are a store's counters.
type Stats struct {
	Blocks       int64   // blocks indexed (distinct score and type)
	StoredBytes  int64   // bytes of those blocks, uncompressed (their logical size)
	LogBytes     int64   // bytes in arena files, headers included: what the blocks take on disk, compressed
	Arenas       int     // arena files
	ClientWrites uint64  // Write calls with data, duplicates included (kept across restarts at checkpoints)
	ClientBytes  uint64  // bytes passed to Write, duplicates included
	DedupRatio   float64 // ClientBytes / StoredBytes (0 if nothing stored)
	IndexEntries int64   // entries in the in-memory index
	IndexRAM     int64   // bytes of memory the index occupies: entries with slack plus a fixed 1.5 MiB bucket table
	IndexFile    int64   // bytes of the last index checkpoint file
	RAMPerBlock  float64 // bytes of entry memory per block: 16 plus slice slack (the fixed table excluded)
	Syncs        uint64  // Sync calls since Open
	Fsyncs       uint64  // fsyncs they caused (fewer than Syncs thanks to group commit)
}

// Stats returns the store's counters.
func (st *Store) Stats() Stats {
	n, bytes, ram, fixed := st.idx.counts()
	st.mu.Lock()
	as := *st.arenas.Load()
	logBytes := st.off
	st.mu.Unlock()
	for _, a := range as[:len(as)-1] {
		if fi, err := a.f.Stat(); err == nil {
			logBytes += fi.Size()
		}
	}
	s := Stats{
		Blocks:       int64(n),
		StoredBytes:  bytes,
		LogBytes:     logBytes,
		Arenas:       len(as),
		ClientWrites: st.clientWrites.Load(),
		ClientBytes:  st.clientBytes.Load(),
		IndexEntries: int64(n),
		IndexRAM:     ram + fixed,
		IndexFile:    st.indexFile.Load(),
		Syncs:        st.syncs.Load(),
		Fsyncs:       st.fsyncs.Load(),
	}
	if bytes > 0 {
		s.DedupRatio = float64(s.ClientBytes) / float64(bytes)
	}
	if n > 0 {
		s.RAMPerBlock = float64(ram) / float64(n)
	}
	return s
}
