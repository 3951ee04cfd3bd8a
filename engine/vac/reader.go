package vac

import (
	"bufio"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"gridlord/engine/venti"
)

// Reading hash trees. A streamReader walks one entry's tree; random access
// goes root to leaf with a small cache of pointer blocks, sequential copies
// (copyTo) walk the tree once and fetch leaves concurrently.

// streamReader reads the blocks of one stream. It is safe for concurrent
// use.
type streamReader struct {
	st    venti.Reader
	e     Entry
	name  string // for errors: the file's path
	ppb   uint64
	nb    uint64
	mu    sync.Mutex
	cache map[cacheKey]*list.Element
	lru   *list.List
}

type cacheKey struct {
	s venti.Score
	t venti.Type
}

type cacheVal struct {
	k cacheKey
	b []byte
}

const pointerCacheSize = 32

func newStreamReader(st venti.Reader, e Entry, name string) (*streamReader, error) {
	if !e.Active {
		return nil, fmt.Errorf("%s: entry is not active", name)
	}
	if e.PSize < venti.ScoreSize*2 || e.DSize <= 0 {
		return nil, fmt.Errorf("%s: %w", name, formatErr("entry psize %d dsize %d", e.PSize, e.DSize))
	}
	r := &streamReader{st: st, e: e, name: name, ppb: uint64(e.PSize / venti.ScoreSize), nb: e.blocks(),
		cache: make(map[cacheKey]*list.Element), lru: list.New()}
	// The tree must be deep enough for the size.
	capacity := uint64(1)
	for i := 0; i < e.Depth && capacity < r.nb; i++ {
		capacity *= r.ppb
	}
	if capacity < r.nb {
		return nil, fmt.Errorf("%s: %w", name, formatErr("entry of depth %d cannot hold %d bytes", e.Depth, e.Size))
	}
	return r, nil
}

// read reads one block and checks it fits in max bytes, naming the file,
// score and type on error.
func (r *streamReader) read(ctx context.Context, s venti.Score, t venti.Type, max int) ([]byte, error) {
	return r.readInto(ctx, s, t, max, nil)
}

// readInto is read, reading into buf when the store can (the result may
// then alias buf).
func (r *streamReader) readInto(ctx context.Context, s venti.Score, t venti.Type, max int, buf []byte) ([]byte, error) {
	if s == venti.ZeroScore {
		return nil, nil
	}
	var b []byte
	var err error
	if ri, ok := r.st.(venti.ReaderInto); ok && buf != nil {
		b, err = ri.ReadInto(ctx, s, t, max, buf)
	} else {
		b, err = r.st.Read(ctx, s, t, max)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %v block %v: %w", r.name, t, s, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("%s: %v block %v: %w", r.name, t, s, formatErr("%d bytes, more than %d", len(b), max))
	}
	return b, nil
}

// pointer reads a pointer block through the cache.
func (r *streamReader) pointer(ctx context.Context, s venti.Score, t venti.Type) ([]byte, error) {
	k := cacheKey{s, t}
	r.mu.Lock()
	if el, ok := r.cache[k]; ok {
		r.lru.MoveToFront(el)
		b := el.Value.(*cacheVal).b
		r.mu.Unlock()
		return b, nil
	}
	r.mu.Unlock()
	b, err := r.read(ctx, s, t, r.e.PSize)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if _, ok := r.cache[k]; !ok {
		r.cache[k] = r.lru.PushFront(&cacheVal{k, b})
		if r.lru.Len() > pointerCacheSize {
			old := r.lru.Remove(r.lru.Back()).(*cacheVal)
			delete(r.cache, old.k)
		}
	}
	r.mu.Unlock()
	return b, nil
}

// span returns the number of leaves under one block at level, ppb^level,
// saturated at the stream's block count (so it cannot overflow; a span that
// large only ever has its first child in use).
func (r *streamReader) span(level int) uint64 {
	n := uint64(1)
	limit := max(r.nb, 1)
	for i := 0; i < level && n < limit; i++ {
		n *= r.ppb
	}
	return min(n, limit)
}

// childScore returns slot i of a stored (zero-truncated) pointer block.
func childScore(p []byte, i uint64) venti.Score {
	off := i * venti.ScoreSize
	if off+venti.ScoreSize > uint64(len(p)) {
		return venti.ZeroScore
	}
	return venti.Score(p[off : off+venti.ScoreSize])
}

// leafScore walks from the top to the score of leaf bn.
func (r *streamReader) leafScore(ctx context.Context, bn uint64) (venti.Score, error) {
	s := r.e.Score
	for level := r.e.Depth; level > 0; level-- {
		if s == venti.ZeroScore {
			return s, nil
		}
		p, err := r.pointer(ctx, s, venti.PointerType(level))
		if err != nil {
			return s, err
		}
		s = childScore(p, (bn/r.span(level-1))%r.ppb)
	}
	return s, nil
}

// block returns the stored (zero-truncated) bytes of leaf bn; nil means all
// zero.
func (r *streamReader) block(ctx context.Context, bn uint64) ([]byte, error) {
	b, _, err := r.blockScore(ctx, bn)
	return b, err
}

// blockScore is block that also returns the leaf's score.
func (r *streamReader) blockScore(ctx context.Context, bn uint64) ([]byte, venti.Score, error) {
	if bn >= r.nb {
		return nil, venti.Score{}, fmt.Errorf("%s: block %d past the end (%d blocks)", r.name, bn, r.nb)
	}
	s, err := r.leafScore(ctx, bn)
	if err != nil {
		return nil, s, err
	}
	b, err := r.read(ctx, s, r.e.leafType(), r.e.DSize)
	return b, s, err
}

// FileReader reads the data of one archived file. ReadAt is safe for
// concurrent use and reads only the blocks it needs (with a small cache of
// pointer blocks), so large files such as disk images can be read without
// materialising them. Every read is bounded by the context given to Open;
// Read keeps a position and is not safe for concurrent use.
type FileReader struct {
	sr   *streamReader
	ctx  context.Context
	pos  int64
	opts readOpts
}

type readOpts struct {
	workers  int
	progress func(int64)
}

// Size returns the file's length in bytes.
func (f *FileReader) Size() int64 { return int64(f.sr.e.Size) }

// ReadAt implements io.ReaderAt.
func (f *FileReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.sr.name, off)
	}
	size := int64(f.sr.e.Size)
	n := 0
	ds := int64(f.sr.e.DSize)
	for n < len(p) && off < size {
		bn := off / ds
		b, err := f.sr.block(f.ctx, uint64(bn))
		if err != nil {
			return n, err
		}
		in := off % ds
		want := min(int64(len(p)-n), ds-in, size-off)
		got := int64(0)
		if in < int64(len(b)) {
			got = int64(copy(p[n:n+int(want)], b[in:]))
		}
		clear(p[n+int(got) : n+int(want)])
		n += int(want)
		off += want
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read implements io.Reader (sequential reads from the start).
func (f *FileReader) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.pos)
	f.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteTo implements io.WriterTo: it copies the whole file to w, fetching
// blocks ahead of the writer concurrently.
func (f *FileReader) WriteTo(w io.Writer) (int64, error) {
	return f.sr.copyTo(f.ctx, &plainSink{w: w}, f.opts)
}

// sink receives a file's contents in order. b is only valid during the
// call: it is reused for a later block.
type sink interface {
	data(off int64, b []byte, n int) error // b zero-extended to n bytes
	zeros(off int64, n int64) error
}

// plainSink writes everything, zeros included, to an io.Writer.
type plainSink struct {
	w    io.Writer
	zero []byte
	// bw, if set, is the buffered writer w is, over raw: runs of at least
	// directWrite bytes bypass its buffer (one copy less).
	bw  *bufio.Writer
	raw io.Writer
}

// directWrite is the least data a sink writes straight from the caller's
// buffer instead of copying it into its own.
const directWrite = 256 << 10

func (s *plainSink) data(off int64, b []byte, n int) error {
	w := s.w
	if s.bw != nil && len(b) >= directWrite {
		if err := s.bw.Flush(); err != nil {
			return err
		}
		w = s.raw
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	return s.zeros(off+int64(len(b)), int64(n-len(b)))
}

func (s *plainSink) zeros(off, n int64) error {
	if s.zero == nil && n > 0 {
		s.zero = make([]byte, 64*1024)
	}
	for n > 0 {
		k := min(n, int64(len(s.zero)))
		if _, err := s.w.Write(s.zero[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// DefaultFetchAhead is how many leaves a restore fetches ahead by default:
// enough requests in flight to keep both ends of a loopback connection
// busy on two cores ("gridlord bench vac -size 512M -workers N", unvac to
// /dev/null: 32 gave 904 MB/s, 128 gave 1035 MB/s, 250 gave 1001 MB/s).
// A venti connection has 256 tags.
const DefaultFetchAhead = 128

// fetchJob is one leaf being fetched.
type fetchJob struct {
	bn    uint64
	s     venti.Score
	zeros uint64 // > 0: a run of zero leaves, nothing to fetch
	b     []byte
	buf   []byte // from copyTo's free list: what b may alias
	err   error
	done  chan struct{}
	slot  int // copyToAsync: the job's slot in the ring
}

// copyTo sends the whole stream to out in order. A walker goroutine
// descends the tree (zero pointers become zero runs without descending),
// workers fetch leaves concurrently, and this goroutine hands them to out.
func (r *streamReader) copyTo(ctx context.Context, out sink, o readOpts) (int64, error) {
	workers := o.workers
	if workers <= 0 {
		workers = DefaultFetchAhead
	}
	if ar, ok := r.st.(venti.AsyncReader); ok {
		return r.copyToAsync(ctx, ar, out, o, workers)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ordered := make(chan *fetchJob, 4*workers)
	jobs := make(chan *fetchJob)
	// Leaf buffers go round a free list: reused, they stay in cache, and
	// the garbage collector has nothing to do.
	free := make(chan []byte, 5*workers+1)
	var wg sync.WaitGroup
	wg.Add(workers)
	for i := 0; i < workers; i++ {
		go func() {
			defer wg.Done()
			for j := range jobs {
				select {
				case j.buf = <-free:
				default:
					j.buf = make([]byte, r.e.DSize)
				}
				j.b, j.err = r.readInto(ctx, j.s, r.e.leafType(), r.e.DSize, j.buf)
				close(j.done)
			}
		}()
	}
	walkErr := make(chan error, 1)
	go func() {
		defer close(ordered)
		defer close(jobs)
		walkErr <- r.walk(ctx, r.e.Score, r.e.Depth, 0, ordered, func(j *fetchJob) error {
			if err := send(ctx, ordered, j); err != nil {
				return err
			}
			if err := send(ctx, jobs, j); err != nil {
				j.err = err
				close(j.done)
				return err
			}
			return nil
		})
	}()
	var written int64
	size := int64(r.e.Size)
	ds := int64(r.e.DSize)
	var err error
	for j := range ordered {
		if err != nil {
			continue
		}
		<-j.done
		if j.err != nil {
			err = j.err
			cancel()
			continue
		}
		off := int64(j.bn) * ds
		if j.zeros > 0 {
			n := min(int64(j.zeros)*ds, size-off)
			err = out.zeros(off, n)
			written += n
		} else {
			n := min(ds, size-off)
			b := j.b
			if int64(len(b)) > n {
				err = fmt.Errorf("%s: block %d: %w", r.name, j.bn, formatErr("%d bytes past the end of the file", int64(len(b))-n))
			} else {
				err = out.data(off, b, int(n))
				written += n
			}
			select {
			case free <- j.buf:
			default:
			}
			j.b, j.buf = nil, nil
		}
		if err != nil {
			cancel()
			continue
		}
		if o.progress != nil {
			o.progress(min(int64(max(j.zeros, 1))*ds, size-off))
		}
	}
	wg.Wait()
	return written, r.copyEnd(ctx, err, <-walkErr, written, size)
}

// walk emits the leaves under the block s at level, starting at leaf
// first: zero runs go to ordered, leaves to fetch (which queues them on
// ordered too).
func (r *streamReader) walk(ctx context.Context, s venti.Score, level int, first uint64, ordered chan<- *fetchJob, fetch func(*fetchJob) error) error {
	if first >= r.nb {
		return nil
	}
	if s == venti.ZeroScore {
		n := min(r.span(level), r.nb-first)
		j := &fetchJob{bn: first, zeros: n, done: make(chan struct{})}
		close(j.done)
		return send(ctx, ordered, j)
	}
	if level == 0 {
		return fetch(&fetchJob{bn: first, s: s, done: make(chan struct{})})
	}
	p, err := r.read(ctx, s, venti.PointerType(level), r.e.PSize)
	if err != nil {
		return err
	}
	child := r.span(level - 1)
	if uint64(len(p))/venti.ScoreSize > r.ppb {
		return fmt.Errorf("%s: pointer block %v: %w", r.name, s, formatErr("%d scores, more than %d", len(p)/venti.ScoreSize, r.ppb))
	}
	for i := uint64(0); i < r.ppb; i++ {
		start := first + i*child
		if start >= r.nb {
			break
		}
		if err := r.walk(ctx, childScore(p, i), level-1, start, ordered, fetch); err != nil {
			return err
		}
	}
	return nil
}

func send(ctx context.Context, ch chan<- *fetchJob, j *fetchJob) error {
	select {
	case ch <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxAsyncFetch bounds the asynchronous reads in flight below a venti
// connection's 256 tags (see maxAsyncWindow).
const maxAsyncFetch = 192

// lookahead is how many jobs past the one it needs the consumer of
// copyToAsync waits for when it would otherwise wait: replies come
// roughly in order, so it then finds a run of finished blocks instead of
// sleeping and waking once per block.
const lookahead = 16

// minParallelCheck is the least run of blocks whose SHA-1 checks
// copyToAsync shares with a second goroutine.
const minParallelCheck = 8

// maxRun bounds the bytes of consecutive blocks copyToAsync hands to its
// sink in one call.
const maxRun = 1 << 20

// copyToAsync is copyTo over an asynchronous reader (a venti.Client):
// the walker goroutine queues the reads itself, with up to ahead in
// flight, and the reader's callbacks hand the blocks over, with no
// fetching goroutines. Leaves are read into consecutive slots of one
// ring buffer, in order, so a run of finished full blocks goes to the
// sink as one slice, without being copied again.
func (r *streamReader) copyToAsync(ctx context.Context, ar venti.AsyncReader, out sink, o readOpts, ahead int) (int64, error) {
	// No more slots than the stream has leaves: a small file costs a
	// small ring.
	ahead = max(min(ahead, maxAsyncFetch, int(min(r.nb, maxAsyncFetch))), 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds := int64(r.e.DSize)
	// A job holds its slot from the window's acquire to its release, and
	// both happen in leaf order, so leaf k's slot k%ahead is free when
	// leaf k acquires.
	win := newWindow(ahead)
	ring := make([]byte, int64(ahead)*ds)
	ordered := make(chan *fetchJob, ahead+lookahead)
	leaf := r.e.leafType()
	// The leaves' SHA-1 is checked here, by the goroutine that hands
	// them to out, rather than by the connection's reader goroutine,
	// when the reader allows it: the hashing then runs in parallel with
	// the reading (unvac to /dev/null: the reader goroutine had the
	// socket reads, the copies and the hashing, a serial stage of
	// about 0.4 CPU-seconds per 256 MiB, while this one idled).
	read := ar.ReadAsync
	check := func(*fetchJob) error { return nil }
	ur, unchecked := ar.(venti.UncheckedAsyncReader)
	if unchecked {
		read = ur.ReadAsyncUnchecked
		check = func(j *fetchJob) error {
			if err := venti.CheckRead(j.s, leaf, j.b); err != nil {
				return fmt.Errorf("%s: read %v block %v: %w", r.name, leaf, j.s, err)
			}
			return nil
		}
	}
	// checkRun checks a run of finished blocks; a long run's second half
	// is hashed by a goroutine of its own meanwhile when the hashing is
	// ours (unchecked reads) and there is a second core: the checks are
	// the consumer's main work (an unvac to /dev/null: 0.15 of its 0.27
	// CPU-seconds per 256 MiB in SHA-1), a serial stage the connection's
	// reader and the server otherwise wait behind.
	parallel := unchecked && runtime.GOMAXPROCS(0) > 1
	checkRun := func(js []*fetchJob) error {
		var herr error
		var done chan struct{}
		if parallel && len(js) >= minParallelCheck {
			h := len(js) / 2
			done = make(chan struct{})
			go func(js []*fetchJob) {
				defer close(done)
				for _, j := range js {
					if herr = check(j); herr != nil {
						return
					}
				}
			}(js[h:])
			js = js[:h]
		}
		var err error
		for _, j := range js {
			if err = check(j); err != nil {
				break
			}
		}
		if done != nil {
			<-done
			if err == nil {
				err = herr
			}
		}
		return err
	}
	walkErr := make(chan error, 1)
	go func() {
		defer close(ordered)
		var seq int
		walkErr <- r.walk(ctx, r.e.Score, r.e.Depth, 0, ordered, func(j *fetchJob) error {
			if err := win.acquire(ctx); err != nil {
				return err
			}
			j.slot = seq % ahead
			seq++
			at := int64(j.slot) * ds
			j.buf = ring[at : at : at+ds]
			err := read(ctx, j.s, leaf, r.e.DSize, j.buf, func(b []byte, err error) {
				j.b, j.err = b, err
				if err != nil {
					j.err = fmt.Errorf("%s: read %v block %v: %w", r.name, leaf, j.s, err)
				}
				close(j.done)
			})
			if err != nil {
				win.release(1)
				return fmt.Errorf("%s: read %v block %v: %w", r.name, leaf, j.s, err)
			}
			return send(ctx, ordered, j)
		})
	}()
	var written int64
	size := int64(r.e.Size)
	var err error
	var q []*fetchJob // jobs taken from ordered, oldest first
	closed := false
	// fill takes jobs from ordered without waiting until q holds n.
	fill := func(n int) {
		for !closed && len(q) < n {
			select {
			case k, ok := <-ordered:
				if !ok {
					closed = true
					return
				}
				q = append(q, k)
			default:
				return
			}
		}
	}
	// full reports whether j is a finished leaf of dsize bytes.
	full := func(j *fetchJob) bool {
		return j.zeros == 0 && isDone(j.done) && j.err == nil && int64(len(j.b)) == ds && int64(j.bn+1)*ds <= size
	}
	for err == nil {
		if len(q) == 0 {
			j, ok := <-ordered
			if !ok {
				break
			}
			q = append(q, j)
		}
		j := q[0]
		if !isDone(j.done) {
			fill(lookahead)
			if err = waitDone(ctx, q[len(q)-1].done); err == nil {
				err = waitDone(ctx, j.done)
			}
			if err != nil {
				break
			}
		}
		off := int64(j.bn) * ds
		switch {
		case j.zeros > 0:
			q = q[1:]
			n := min(int64(j.zeros)*ds, size-off)
			err = out.zeros(off, n)
			written += n
			if err == nil && o.progress != nil {
				o.progress(n)
			}
		case j.err != nil:
			err = j.err
		case full(j):
			// The finished full blocks after it in adjacent slots go too.
			k := 1
			for int64(k+1)*ds <= maxRun {
				if k == len(q) {
					fill(len(q) + lookahead)
				}
				if k == len(q) {
					break
				}
				next := q[k]
				if !full(next) || next.slot != j.slot+k || next.bn != j.bn+uint64(k) {
					break
				}
				k++
			}
			if err = checkRun(q[:k]); err != nil {
				break
			}
			at := int64(j.slot) * ds
			n := int64(k) * ds
			err = out.data(off, ring[at:at+n], int(n))
			written += n
			for i := 0; i < k; i++ {
				q[i].b, q[i].buf = nil, nil
			}
			q = q[k:]
			win.release(k)
			if err == nil && o.progress != nil {
				o.progress(n)
			}
		default:
			q = q[1:]
			n := min(ds, size-off)
			if b := j.b; int64(len(b)) > n {
				err = fmt.Errorf("%s: block %d: %w", r.name, j.bn, formatErr("%d bytes past the end of the file", int64(len(b))-n))
			} else if err = check(j); err == nil {
				err = out.data(off, b, int(n))
				written += n
			}
			j.b, j.buf = nil, nil
			win.release(1)
			if err == nil && o.progress != nil {
				o.progress(n)
			}
		}
	}
	if err != nil {
		// Reads still in flight complete into a ring nobody reuses.
		cancel()
		for range ordered {
		}
	}
	return written, r.copyEnd(ctx, err, <-walkErr, written, size)
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitDone(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyEnd is the error a copy of size bytes that wrote written ends with:
// err, else the tree walk's error werr (unless it only saw the copy's own
// cancellation), else ctx's, else a short copy.
func (r *streamReader) copyEnd(ctx context.Context, err, werr error, written, size int64) error {
	if err == nil && werr != nil && !errors.Is(werr, context.Canceled) {
		err = werr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil && written != size {
		err = fmt.Errorf("%s: internal error: copied %d of %d bytes", r.name, written, size)
	}
	return err
}
