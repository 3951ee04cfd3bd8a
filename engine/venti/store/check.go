package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gridlord/engine/venti"
)

// Problem is damage found by Check.
type Problem struct {
	File   string      // arena or index file
	Offset int64       // byte offset in File, or -1
	Score  venti.Score // the block concerned, if HasScore
	Type   venti.Type
	// HasScore reports whether Score and Type name a block.
	HasScore bool
	Msg      string
}

// String formats the problem for a report.
func (p Problem) String() string {
	s := p.File
	if p.Offset >= 0 {
		s += fmt.Sprintf(" offset %d", p.Offset)
	}
	if p.HasScore {
		s += fmt.Sprintf(" block %v/%v", p.Score, p.Type)
	}
	return s + ": " + p.Msg
}

// CheckReport is the result of Check.
type CheckReport struct {
	Dir          string
	Arenas       int
	Records      int   // good records in the log
	Bytes        int64 // block bytes in them (uncompressed)
	Compressed   int   // good records stored compressed
	StoredBytes  int64 // bytes of those records' payloads on disk (after compression)
	IndexEntries int   // entries in the index file
	// Problems is damage: bad records, unreadable log, index entries that
	// point nowhere, records the index should hold but does not.
	Problems []Problem
	// Notes are conditions a crash leaves behind and the next Open
	// repairs by itself: a torn tail, log after the index checkpoint, a
	// missing index.
	Notes []string
}

// OK reports whether Check found no damage.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// Check verifies a store that no process has open: every record's
// checksums, that compressed ones decode to their block, every block's
// SHA-1, and that the index file holds exactly the records
// before the log address it covers. It changes nothing. The error is
// for a store that cannot be checked at all (missing, in use); damage goes
// in the report.
func Check(ctx context.Context, dir string) (*CheckReport, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("check store %s: no such store directory", dir)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer unlockDir(lock)
	rep := &CheckReport{Dir: dir}
	nums, err := listArenas(dir)
	if err != nil {
		return nil, fmt.Errorf("check store %s: %w", dir, err)
	}
	var as []*arena
	defer func() {
		for _, a := range as {
			if a != nil {
				a.f.Close()
			}
		}
	}()
	for _, n := range nums {
		a, err := openArena(dir, n, os.O_RDONLY)
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{File: filepath.Join(dir, fmt.Sprintf(arenaFmt, n)), Offset: 0, Msg: err.Error()})
		}
		as = append(as, a)
	}
	rep.Arenas = len(as)

	// The index: every entry must point at a record of its key.
	ipath := filepath.Join(dir, indexName)
	var locs []uint64 // sorted locations of index entries
	covered := uint64(0)
	haveIndex := false
	if f, err := os.Open(ipath); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			rep.Notes = append(rep.Notes, "no index file; the next open builds it from the log")
		} else {
			rep.Problems = append(rep.Problems, Problem{File: ipath, Offset: -1, Msg: err.Error()})
		}
	} else {
		fi, _ := f.Stat()
		var entries []entry
		h, err := readIndex(f, fi.Size(), func(e entry) { entries = append(entries, e) })
		f.Close()
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{File: ipath, Offset: -1, Msg: err.Error() + " (the next open rebuilds the index from the log)"})
		} else {
			haveIndex, covered = true, h.covered
			rep.IndexEntries = len(entries)
			for i, e := range entries {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				if p, ok := checkEntry(as, e); !ok {
					p.File, p.Offset = ipath, indexHdrSize+int64(i)*indexEntrySz
					rep.Problems = append(rep.Problems, p)
				}
				locs = append(locs, e.loc)
			}
			slices.Sort(locs)
			for i := 1; i < len(locs); i++ {
				if locs[i] == locs[i-1] {
					rep.Problems = append(rep.Problems, Problem{File: ipath, Offset: -1,
						Msg: fmt.Sprintf("two entries for the record at arena %d offset %d", locArena(locs[i]), locOffset(locs[i]))})
				}
			}
		}
	}

	// The log: every record, and its presence in the index.
	var unindexed int
	var unindexedBytes int64
	for i, a := range as {
		if a == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fi, err := a.f.Stat()
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", a.path, err)
		}
		last := i == len(as)-1
		block := make([]byte, venti.MaxBlock)
		res, err := scanLog(a.f, fi.Size(), a.magic, arenaHeaderSize, func(r scanRec) error {
			size := r.h.size
			bad := func(msg string) {
				rep.Problems = append(rep.Problems, Problem{File: a.path, Offset: r.off, Score: r.h.score, Type: r.h.typ, HasScore: true, Msg: msg})
			}
			if r.status == recCorrupt {
				bad("damaged block: checksum mismatch (a read of it fails; writing the block again stores a fresh copy)")
			} else if data, err := decodePayload(r.h, r.data, block); err != nil {
				bad(err.Error() + " (a read of it fails; writing the block again stores a fresh copy)")
			} else if sum := venti.Sum(data); sum != r.h.score {
				bad(fmt.Sprintf("block hashes to %v", sum))
			} else {
				size = len(data)
				rep.Records++
				rep.Bytes += int64(size)
				rep.StoredBytes += int64(r.h.size)
				if r.h.flags != flagRaw {
					rep.Compressed++
				}
			}
			loc := makeLoc(a.num, r.off, size)
			if !haveIndex {
				return nil
			}
			if locAddr(loc) >= covered {
				unindexed++
				unindexedBytes += int64(r.h.size)
			} else if _, found := slices.BinarySearchFunc(locs, locAddr(loc), func(l, addr uint64) int { return cmp.Compare(locAddr(l), addr) }); !found {
				// By address: checkEntry has compared the sizes.
				bad("record is missing from the index (delete the index file to rebuild it)")
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", a.path, err)
		}
		for _, d := range res.damaged {
			rep.Problems = append(rep.Problems, Problem{File: a.path, Offset: d.off,
				Msg: fmt.Sprintf("%d unreadable bytes before the record at offset %d: %s", d.end-d.off, d.end, d.why)})
		}
		if tail := fi.Size() - res.end - res.padding; tail > 0 {
			what := "torn tail (an append cut short by a crash)"
			if !last {
				what = "bytes after the last record of a full arena"
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %s: %d bytes from offset %d (%d damaged-looking records; %v); the next open ignores them",
				a.path, what, tail, res.end, len(res.torn), res.stopErr))
		}
		if !last && !res.sealed {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: full arena without an end marker (a crash as it filled)", a.path))
		}
	}
	if unindexed > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d blocks (%d bytes) written after the index checkpoint; the next open indexes them", unindexed, unindexedBytes))
	}
	return rep, nil
}

// checkEntry checks that index entry e points at a record of its key.
func checkEntry(as []*arena, e entry) (Problem, bool) {
	p := Problem{Msg: ""}
	n, off, size := locArena(e.loc), locOffset(e.loc), locSize(e.loc)
	if n >= len(as) || as[n] == nil {
		p.Msg = fmt.Sprintf("entry points at arena %d, which is missing or unreadable", n)
		return p, false
	}
	hb := make([]byte, recHeaderSize+compPrefix)
	var h recHeader
	var err error
	if _, rerr := as[n].f.ReadAt(hb[:recHeaderSize], off); rerr != nil {
		err = rerr
	} else if h, err = decodeRecHeader(hb, as[n].magic); err == nil && h.flags != flagRaw {
		// The block size is in the compressed payload's prefix.
		_, err = as[n].f.ReadAt(hb[recHeaderSize:], off+recHeaderSize)
	}
	if err != nil {
		p.Msg = fmt.Sprintf("entry points at %s offset %d: %v", as[n].path, off, err)
		return p, false
	}
	if bs := blockSize(h, hb[recHeaderSize:]); indexKey(h.score, h.typ) != e.key || bs != size {
		p.Score, p.Type, p.HasScore = h.score, h.typ, true
		p.Msg = fmt.Sprintf("entry (key %016x, %d bytes) points at %s offset %d, which holds another block of %d bytes", e.key, size, as[n].path, off, bs)
		return p, false
	}
	return p, true
}
