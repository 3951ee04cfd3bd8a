package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gridlord/engine/venti"
	"gridlord/engine/venti/arena"
	"gridlord/engine/venti/store"
)

// "gridlord venti import": copy the blocks of a venti arena partition (a
// ventidata/arenas file or the arenas partition of a Plan 9 disk image,
// raw or qcow2) into the embedded venti's store or a running venti.

// importStateDir is the subdirectory of a store directory that holds the
// import checkpoints.
const importStateDir = "import-state"

func runVentiImport(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "venti import", "[-store DIR | -h venti | -n] [-state DIR] [-j N] [-q] ARENAS-FILE|DISK-IMAGE")
	dir := fs.String("store", "", "import into the store `directory` (default: the user data directory's gridlord/venti); the store must not be in use")
	host := fs.String("h", "", "import into the running venti at this `address` instead of a store directory")
	dry := fs.Bool("n", false, "only read, decode and verify every block; store nothing")
	state := fs.String("state", "", "`directory` for the checkpoints that make an interrupted import resumable (default: DIR/"+importStateDir+" with -store; none with -h)")
	workers := fs.Int("j", 0, "`workers` decoding and writing blocks (default: one per CPU)")
	quiet := fs.Bool("q", false, "no progress lines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want one arenas file or disk image", errUsage)
	}
	if (*host != "" && (*dir != "" || *dry)) || (*dir != "" && *dry) {
		return fmt.Errorf("%w: -store, -h and -n exclude each other", errUsage)
	}

	src, err := arena.OpenSource(fs.Arg(0))
	if err != nil {
		return err
	}
	defer src.Close()
	p, err := arena.Open(src, src.Size)
	if err != nil {
		return fmt.Errorf("%s: %w", src.Desc, err)
	}

	var (
		sink arena.Sink
		dest string
	)
	switch {
	case *dry:
		sink, dest = discard{}, "nowhere (-n: verify only)"
		*state = ""
	case *host != "":
		c, err := dialVenti(ctx, ventiHost(*host))
		if err != nil {
			return err
		}
		defer c.Close()
		sink, dest = c, "venti "+ventiHost(*host)
	default:
		if *dir == "" {
			if *dir, err = defaultStoreDir(); err != nil {
				return err
			}
		}
		st, err := store.Open(*dir, store.WithLogger(env.log))
		if err != nil {
			return err
		}
		defer func() {
			if err := st.Close(); err != nil {
				env.log.Error("venti store close", "err", err)
			}
		}()
		sink, dest = st, "store "+*dir
		if *state == "" {
			*state = filepath.Join(*dir, importStateDir)
		}
	}
	if *state != "" {
		if err := os.MkdirAll(*state, 0o755); err != nil {
			return fmt.Errorf("import state directory: %w", err)
		}
	}

	var clumps, total int64
	for _, a := range p.Arenas {
		clumps += int64(a.Mem.Clumps)
		total += int64(a.Mem.UncSize)
	}
	fmt.Fprintf(env.stderr, "importing %s: %d arenas, %d clumps, %s of blocks, into %s\n",
		src.Desc, len(p.Arenas), clumps, mb(total), dest)

	start := time.Now()
	var last time.Time
	opts := arena.ImportOptions{
		StateDir: *state,
		Workers:  *workers,
		Log:      env.log,
		Problem: func(e *arena.Error) {
			fmt.Fprintf(env.stderr, "skipped: %v\n", e)
		},
	}
	if !*quiet {
		opts.Progress = func(pr arena.Progress) {
			if now := time.Now(); now.Sub(last) >= time.Second || pr.Clumps == pr.TotalClumps {
				last = now
				printProgress(env.stderr, pr)
			}
		}
	}
	res, err := arena.Import(ctx, p, sink, opts)
	el := time.Since(start)
	fmt.Fprintf(env.stdout, "%d blocks (%s) written to %s in %v (%s/s); %d clumps done by an earlier import; %d corrupt clumps skipped\n",
		res.Written, mb(res.Bytes), dest, el.Round(time.Millisecond), mb(int64(float64(res.Bytes)/max(el.Seconds(), 1e-9))), res.Resumed, res.Corrupt)
	if err != nil {
		if errors.Is(err, context.Canceled) && *state != "" {
			return fmt.Errorf("%w; run the same command again to continue", err)
		}
		return err
	}
	if n := len(res.Problems); n > 0 {
		return fmt.Errorf("%d problems in %s (listed above); every block that could be verified was imported", n, src.Desc)
	}
	return nil
}

func printProgress(w io.Writer, pr arena.Progress) {
	pct := 100.0
	if pr.TotalBytes > 0 {
		pct = 100 * float64(pr.Bytes) / float64(pr.TotalBytes)
	}
	fmt.Fprintf(w, "%s: %d/%d clumps, %s/%s (%.0f%%)", pr.Arena, pr.Clumps, pr.TotalClumps, mb(pr.Bytes), mb(pr.TotalBytes), pct)
	if pr.Corrupt > 0 {
		fmt.Fprintf(w, ", %d corrupt", pr.Corrupt)
	}
	fmt.Fprintln(w)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// discard is the sink of "venti import -n": it stores nothing.
type discard struct{}

func (discard) Write(ctx context.Context, t venti.Type, data []byte) (venti.Score, error) {
	return venti.Sum(data), nil
}

func (discard) Sync(ctx context.Context) error { return nil }
