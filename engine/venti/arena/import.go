package arena

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"

	"gridlord/engine/venti"
)

// Sink receives imported blocks; every venti.Store is one.
type Sink interface {
	venti.Writer
	venti.Syncer
}

// WhackSink is a Sink that can keep a whack-compressed clump as it is
// (store.Store is one): Import then hands it the clump's stored bytes
// beside the block they decode to, instead of leaving the sink to
// compress the block again.
type WhackSink interface {
	Sink
	WriteWhacked(ctx context.Context, t venti.Type, data, whacked []byte) (venti.Score, error)
}

// ImportOptions tunes Import. The zero value imports with one worker per
// CPU, no progress reports and no resumption.
type ImportOptions struct {
	// StateDir holds one small checkpoint file per arena so that an
	// interrupted import continues where it stopped and a repeated import
	// skips what is done. Empty disables checkpoints.
	StateDir string
	// Workers is the number of goroutines decoding, verifying and writing
	// blocks; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// CheckpointEvery is the number of clumps between checkpoints (each
	// preceded by a Sync of the sink); 0 means 4096.
	CheckpointEvery int
	// Progress, if set, is called after every clump, from one goroutine.
	Progress func(Progress)
	// Problem, if set, is called for every corrupt clump and unusable
	// arena, from one goroutine.
	Problem func(*Error)
	// Log receives a line per arena; nil discards.
	Log *slog.Logger
}

// Progress is the state of an import.
type Progress struct {
	Arena        string // arena being imported
	Clumps       int64  // clumps done, those of earlier runs included
	TotalClumps  int64  // clumps in the partition according to the trailers
	Bytes        int64  // uncompressed bytes of the clumps done
	TotalBytes   int64  // uncompressed bytes according to the trailers
	Corrupt      int64  // corrupt clumps met in this run
	WrittenBytes int64  // uncompressed bytes written in this run
}

// Result sums up an import.
type Result struct {
	Arenas   int      // arenas imported
	Written  int64    // blocks written to the sink in this run
	Bytes    int64    // uncompressed bytes written in this run
	Resumed  int64    // clumps skipped because an earlier run imported them
	Corrupt  int64    // corrupt clumps skipped
	Problems []*Error // the problems met, at most MaxProblems of them
}

// MaxProblems caps Result.Problems; the Problem callback sees them all.
const MaxProblems = 1000

// job is one clump on its way from the walk to a worker.
type job struct {
	arena int
	e     *Entry
	skip  bool // done by an earlier run
}

// outcome is a worker's report on a job.
type outcome struct {
	arena   int
	clump   int
	next    Position
	bytes   int64 // uncompressed size
	written bool
	skip    bool
	problem *Error
	fatal   error
}

// arenaState is the collector's view of one arena.
type arenaState struct {
	a       *Arena
	cp      checkpoint      // position below which everything is done
	loaded  map[int]bool    // Done list of the loaded checkpoint
	pending map[int]outcome // done, but above the contiguous prefix
	dirty   bool            // cp changed since the last save
}

// Import copies every block of partition p into dst. Each clump is read,
// decoded and verified against its score before it is written; corrupt
// clumps are reported (Problem, Result.Problems) and skipped, so no block
// is ever stored under a wrong score. Reading is sequential and decoding
// and writing run on opts.Workers goroutines. With opts.StateDir set the
// import saves checkpoints (after syncing dst) and resumes from them. On
// cancellation or a write error Import saves what it finished and returns
// the error with the partial Result.
func Import(ctx context.Context, p *Partition, dst Sink, opts ImportOptions) (*Result, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	every := opts.CheckpointEvery
	if every <= 0 {
		every = 4096
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := &Result{}
	var prog Progress
	report := func(e *Error) {
		res.Corrupt++
		prog.Corrupt++
		if len(res.Problems) < MaxProblems {
			res.Problems = append(res.Problems, e)
		}
		if opts.Problem != nil {
			opts.Problem(e)
		}
	}
	for _, e := range p.Problems {
		if len(res.Problems) < MaxProblems {
			res.Problems = append(res.Problems, e)
		}
		if opts.Problem != nil {
			opts.Problem(e)
		}
	}

	if opts.StateDir != "" {
		if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
			return res, fmt.Errorf("import state directory: %w", err)
		}
	}
	states := make([]*arenaState, len(p.Arenas))
	for i, a := range p.Arenas {
		cp, err := loadCheckpoint(opts.StateDir, a)
		if err != nil {
			return res, err
		}
		st := &arenaState{a: a, cp: cp, loaded: make(map[int]bool), pending: make(map[int]outcome)}
		for _, c := range cp.Done {
			st.loaded[c] = true
		}
		states[i] = st
		prog.TotalClumps += int64(a.Mem.Clumps)
		prog.TotalBytes += int64(a.Mem.UncSize)
		prog.Clumps += int64(cp.Next.Clump)
		prog.Bytes += cp.Bytes
		res.Resumed += int64(cp.Next.Clump)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, 4*workers)
	outs := make(chan outcome, 4*workers)
	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader: walks the arenas in order
		defer wg.Done()
		defer close(jobs)
		for i, st := range states {
			err := st.a.Walk(ctx, st.cp.Next, true, func(e *Entry) error {
				select {
				case jobs <- job{arena: i, e: e, skip: st.loaded[e.Clump]}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil {
				if ctx.Err() == nil {
					readErr = err
					cancel()
				}
				return
			}
		}
	}()
	var wwg sync.WaitGroup
	for range workers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			buf := make([]byte, venti.MaxBlock)
			for j := range jobs {
				outs <- work(ctx, p.Arenas[j.arena], j, dst, buf)
			}
		}()
	}
	go func() {
		wg.Wait()
		wwg.Wait()
		close(outs)
	}()

	var fatal error
	since := 0
	checkpointAll := func(ctx context.Context) error {
		if opts.StateDir == "" {
			return nil
		}
		if err := dst.Sync(ctx); err != nil {
			return fmt.Errorf("sync store before checkpoint: %w", err)
		}
		for _, st := range states {
			if !st.dirty {
				continue
			}
			cp := st.cp
			cp.Done = nil
			for c := range st.pending {
				cp.Done = append(cp.Done, c)
			}
			for c := range st.loaded {
				if _, ok := st.pending[c]; !ok && c >= cp.Next.Clump {
					cp.Done = append(cp.Done, c)
				}
			}
			if err := saveCheckpoint(opts.StateDir, st.a, cp); err != nil {
				return err
			}
			st.dirty = false
		}
		return nil
	}
	current := -1
	for o := range outs {
		if o.fatal != nil {
			if fatal == nil {
				fatal = o.fatal
				cancel()
			}
			continue
		}
		st := states[o.arena]
		if o.arena != current {
			current = o.arena
			log.Info("importing arena", "arena", st.a.Name, "clumps", st.a.Mem.Clumps, "resume", st.cp.Next.Clump)
		}
		if o.problem != nil {
			report(o.problem)
		}
		if o.skip {
			res.Resumed++
		}
		if o.written {
			res.Written++
			res.Bytes += o.bytes
			prog.WrittenBytes += o.bytes
		}
		if o.clump >= int(st.a.Mem.Clumps) && o.next.Clump > o.clump {
			prog.TotalClumps++ // beyond the directory: not in the trailer's count
			prog.TotalBytes += o.bytes
		}
		prog.Clumps++
		prog.Bytes += o.bytes
		prog.Arena = st.a.Name
		// Advance the contiguous prefix of finished clumps.
		st.pending[o.clump] = o
		for {
			d, ok := st.pending[st.cp.Next.Clump]
			if !ok {
				break
			}
			delete(st.pending, d.clump)
			if d.next.Clump <= d.clump {
				// The walk stopped at this clump: the checkpoint stays on
				// it, so a resumed import walks (and counts) it again.
				break
			}
			st.cp.Bytes += d.bytes
			st.cp.Next = d.next
		}
		st.dirty = true
		if opts.Progress != nil {
			opts.Progress(prog)
		}
		if since++; since >= every && fatal == nil && ctx.Err() == nil {
			since = 0
			if err := checkpointAll(ctx); err != nil {
				fatal = err
				cancel()
			}
		}
	}
	if fatal == nil {
		fatal = readErr
	}
	// Save what was finished even when the import is stopping: the
	// context may be cancelled, but the checkpoint must still be written.
	if err := checkpointAll(context.WithoutCancel(ctx)); err != nil && fatal == nil {
		fatal = err
	}
	res.Arenas = len(p.Arenas)
	if fatal == nil {
		fatal = ctx.Err() // the caller's cancellation
	}
	if fatal != nil {
		return res, fmt.Errorf("import arenas: %w", fatal)
	}
	if opts.StateDir == "" {
		if err := dst.Sync(ctx); err != nil {
			return res, fmt.Errorf("import arenas: sync store: %w", err)
		}
	}
	return res, nil
}

// work decodes, verifies and writes one clump.
func work(ctx context.Context, a *Arena, j job, dst Sink, buf []byte) outcome {
	e := j.e
	o := outcome{arena: j.arena, clump: e.Clump, next: e.Next, bytes: int64(e.Header.UncSize), skip: j.skip}
	if e.Err != nil {
		o.problem, o.bytes = e.Err, 0
		return o
	}
	if j.skip {
		return o
	}
	data, err := e.Header.Decode(e.Stored, buf)
	if err != nil {
		o.problem = &Error{Arena: a.Name, Clump: e.Clump, Offset: a.PartitionOffset(e.Offset), Err: err}
		return o
	}
	var s venti.Score
	if ws, ok := dst.(WhackSink); ok && e.Header.Encoding == EncodingWhack {
		s, err = ws.WriteWhacked(ctx, e.Header.Type, data, e.Stored)
	} else {
		s, err = dst.Write(ctx, e.Header.Type, data)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			o.fatal = ctx.Err()
		} else {
			o.fatal = fmt.Errorf("write block %v/%v from arena %s clump %d: %w", e.Header.Score, e.Header.Type, a.Name, e.Clump, err)
		}
		return o
	}
	if s != e.Header.Score {
		o.fatal = fmt.Errorf("store returned score %v for block %v from arena %s clump %d", s, e.Header.Score, a.Name, e.Clump)
		return o
	}
	o.written = true
	return o
}
