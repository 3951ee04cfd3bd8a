package mirror

import (
	"context"
	"sync"

	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// job is one record of the store on its way to (or being checked
// against) a mirror.
type job struct {
	seq   uint64 // order in the log, from 0 per session
	score venti.Score
	typ   venti.Type
	data  []byte    // the block, in buf
	size  int       // its size (see store.Record.Size)
	next  store.Pos // the log position after the record
	skip  bool      // damaged in the store: nothing to send
	done  bool      // finished (see err)
	err   error     // the worker's result
	buf   []byte    // MaxBlock bytes owned by the job
	rbuf  []byte    // MaxBlock+64 bytes for reading the block back (Verify)
}

// pool runs fn on jobs in width goroutines, so that width requests are
// in flight on the one connection of a mirror at once (the venti client
// multiplexes them by tag). The goroutine that made the pool owns it:
// only it takes free jobs, submits them and receives results.
type pool struct {
	jobs    chan *job
	results chan *job
	free    []*job
	busy    int // jobs submitted and not yet received
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// newPool starts the workers. fn's ctx is cancelled by close.
func newPool(ctx context.Context, width int, verify bool, fn func(ctx context.Context, j *job) error) *pool {
	ctx, cancel := context.WithCancel(ctx)
	p := &pool{jobs: make(chan *job, width), results: make(chan *job, width), cancel: cancel}
	for range width {
		j := &job{buf: make([]byte, venti.MaxBlock)}
		if verify {
			j.rbuf = make([]byte, venti.MaxBlock+64)
		}
		p.free = append(p.free, j)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				j.err = fn(ctx, j)
				p.results <- j // never blocks: at most width jobs are out
			}
		}()
	}
	return p
}

// take returns a free job for rec (its block copied into the job), or nil
// when every job is out.
func (p *pool) take(rec store.Record) *job {
	if len(p.free) == 0 {
		return nil
	}
	j := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	j.score, j.typ, j.next, j.size = rec.Score, rec.Type, rec.Next, rec.Size
	j.data = append(j.buf[:0], rec.Data...)
	j.skip, j.done, j.err = false, false, nil
	return j
}

// submit hands j to a worker; it never blocks.
func (p *pool) submit(j *job) {
	p.busy++
	p.jobs <- j
}

// put returns a finished job to the free list.
func (p *pool) put(j *job) { p.free = append(p.free, j) }

// received accounts for a job read from p.results.
func (p *pool) received(j *job) { p.busy-- }

// close cancels the jobs still out and waits for the workers.
func (p *pool) close() {
	p.cancel()
	close(p.jobs)
	p.wg.Wait()
}
