package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// maxProblems bounds the problems a VerifyReport lists.
const maxProblems = 100

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Addr string    // the mirror
	End  store.Pos // the durable end of the store when Verify began: it checked the records before it
	// Blocks and Bytes count the blocks the mirror returned correctly.
	Blocks, Bytes int64
	Missing       int64 // blocks the mirror does not have
	Wrong         int64 // blocks it answered with an error or other bytes
	Damaged       int64 // records of the store itself that are damaged (not checked)
	// Problems describes the first maxProblems missing, wrong or damaged
	// blocks.
	Problems []string
}

// OK reports whether every block of the store read back from the mirror.
func (r *VerifyReport) OK() bool { return r.Missing == 0 && r.Wrong == 0 && r.Damaged == 0 }

func (r *VerifyReport) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Verify checks that every block of the mirror's store, up to its durable
// end now, reads back from the mirror with the right score, type and
// bytes. It streams the store in log order and keeps the mirror's window
// of reads in flight on a connection of its own, so it may run while Run
// pushes. The error is for a verification that could not finish (the
// mirror unreachable, the connection lost, the store closed); what it
// finds goes in the report.
func (m *Mirror) Verify(ctx context.Context) (*VerifyReport, error) {
	return verify(ctx, m.st, m.addr, m.log, m.o)
}

// Verify is Mirror.Verify for the venti at addr, which need not be a
// configured mirror (any venti that should hold a copy of st). Of opts,
// the window and dial timeout apply.
func Verify(ctx context.Context, st *store.Store, addr string, log *slog.Logger, opts ...Option) (*VerifyReport, error) {
	canon, o, log, err := prepare(addr, log, opts)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return verify(ctx, st, canon, log, o)
}

// verify is Verify for a canonical address; log names the mirror.
func verify(ctx context.Context, st *store.Store, canon string, log *slog.Logger, o options) (*VerifyReport, error) {
	rep := &VerifyReport{Addr: canon, End: st.Durable()}
	cl, err := venti.Dial(ctx, canon, venti.WithDialTimeout(o.dialTimeout))
	if err != nil {
		return nil, fmt.Errorf("verify mirror: %w", err)
	}
	defer cl.Close()
	it, err := st.Records(store.StartPos())
	if err != nil {
		return nil, fmt.Errorf("verify mirror %s: %w", canon, err)
	}
	pool := newPool(ctx, o.window, true, func(ctx context.Context, j *job) error {
		got, err := cl.ReadInto(ctx, j.score, j.typ, venti.MaxBlock, j.rbuf)
		if err == nil && !bytes.Equal(got, j.data) {
			err = fmt.Errorf("block %v/%v: %w: %d bytes, the store's %d", j.score, j.typ, errOtherBytes, len(got), len(j.data))
		}
		return err
	})
	defer pool.close()
	end := rep.End
	// result accounts for one finished read. An answer of the mirror is a
	// finding; any other error (the connection's) ends the verification.
	result := func(j *job) error {
		pool.received(j)
		defer pool.put(j)
		var se *venti.ServerError
		switch {
		case j.err == nil:
			rep.Blocks++
			rep.Bytes += int64(len(j.data))
		case errors.Is(j.err, venti.ErrNotFound):
			rep.Missing++
			rep.problem("missing: %v/%v", j.score, j.typ)
		case errors.As(j.err, &se), errors.Is(j.err, venti.ErrCorrupt), errors.Is(j.err, errOtherBytes):
			rep.Wrong++
			rep.problem("wrong: %v", j.err)
		default:
			return fmt.Errorf("verify mirror %s: %w", canon, j.err)
		}
		return nil
	}
	for done := false; !done || pool.busy > 0; {
		for !done && len(pool.free) > 0 {
			if it.Pos().Compare(end) >= 0 {
				done = true
				break
			}
			rec, err := it.Next(ctx)
			switch {
			case errors.Is(err, store.ErrCaughtUp):
				done = true
				continue
			case errors.Is(err, venti.ErrCorrupt):
				rep.Damaged++
				rep.problem("damaged in the store: %v", err)
				continue
			case err != nil:
				return nil, fmt.Errorf("verify mirror %s: read store: %w", canon, err)
			}
			pool.submit(pool.take(rec))
		}
		if pool.busy == 0 {
			continue
		}
		select {
		case j := <-pool.results:
			if err := result(j); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("verify mirror %s: %w", canon, ctx.Err())
		}
	}
	log.Info("venti mirror: verified", "blocks", rep.Blocks, "missing", rep.Missing, "wrong", rep.Wrong, "damaged", rep.Damaged)
	return rep, nil
}

// errOtherBytes marks a block the mirror returned with bytes other than
// the store's. The client has checked that they hash to the score, so
// only a SHA-1 collision gets here; comparing costs little next to that
// hash.
var errOtherBytes = errors.New("the mirror returned other bytes")
