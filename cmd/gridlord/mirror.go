package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gridlord/engine/gridfs"
	"gridlord/engine/mirror"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// Subcommands of "gridlord mirror": the venti mirrors of a store (issue
// 14). For now they work on a store directory that no other process has
// open; the grid's engine will run the same Manager continuously.

// hasFlag reports whether args set -name (or --name), before a "--".
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// mirrorDirName is the directory inside a store that holds its mirrors'
// list and positions unless -dir says otherwise.
const mirrorDirName = "mirrors"

// mirrorFlags adds the -store and -dir flags every mirror subcommand takes.
func mirrorFlags(fs *flag.FlagSet) (storeDir, dir *string) {
	storeDir = fs.String("store", "", "store `directory` (default: the user data directory's gridlord/venti); it must not be in use")
	dir = fs.String("dir", "", "`directory` of the mirror list and positions (default: STORE/"+mirrorDirName+")")
	return storeDir, dir
}

// openMirrors opens the store and its mirror manager; closeAll stops the
// mirrors and closes the store (once: later calls return the first
// result).
func openMirrors(env *cmdEnv, storeDir, dir string, opts ...mirror.Option) (st *store.Store, mg *mirror.Manager, closeAll func() error, err error) {
	if storeDir == "" {
		if storeDir, err = defaultStoreDir(); err != nil {
			return nil, nil, nil, err
		}
	}
	if dir == "" {
		dir = filepath.Join(storeDir, mirrorDirName)
	}
	st, err = store.Open(storeDir, store.WithLogger(env.log))
	if errors.Is(err, store.ErrLocked) {
		return nil, nil, nil, fmt.Errorf("%w (stop the engine, \"venti serve\" or \"mirror run\" that uses it first)", err)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	mg, err = mirror.New(st, dir, env.log, opts...)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return st, mg, sync.OnceValue(func() error { return errors.Join(mg.Close(), st.Close()) }), nil
}

// parseOpenMirrors parses the flags of a subcommand that takes no
// arguments and opens the mirrors of the store they name (see
// openMirrors).
func parseOpenMirrors(env *cmdEnv, fs *flag.FlagSet, args []string, storeDir, dir *string) (*store.Store, *mirror.Manager, func() error, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, nil, err
	}
	if fs.NArg() != 0 {
		return nil, nil, nil, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return openMirrors(env, *storeDir, *dir)
}

// runMirrorEdit is a subcommand that changes the mirror list: it parses
// [-store DIR] [-dir DIR] ADDR, applies edit and prints what it did.
func runMirrorEdit(name, help string, edit func(mg *mirror.Manager, addr string) (string, error)) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		fs := newFlags(env, name, "[-grid DIR | -store DIR [-dir DIR]] ADDR\n"+help)
		storeDir, dir := mirrorFlags(fs)
		if !hasFlag(args, "store") {
			// The grid's engine owns its store and pushes continuously.
			return withEngine(ctx, env, fs, args, 1, 1, func(c *gridfs.Client, _ string, a []string) error {
				verb := strings.Fields(name)[1]
				if err := c.Ctl(ctx, gridfs.QuoteWords([]string{"mirror", verb, a[0]})); err != nil {
					return err
				}
				fmt.Fprintf(env.stdout, "mirror %s: %s done; the grid's engine pushes every block to its mirrors\n", a[0], verb)
				return nil
			})
		}
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: want one venti address (host:port or tcp!host!port)", errUsage)
		}
		_, mg, closeAll, err := openMirrors(env, *storeDir, *dir)
		if err != nil {
			return err
		}
		msg, err := edit(mg, fs.Arg(0))
		if err != nil {
			closeAll()
			return err
		}
		fmt.Fprintln(env.stdout, msg)
		return closeAll()
	}
}

// runMirrorAdd is "mirror add ADDR".
var runMirrorAdd = runMirrorEdit("mirror add",
	"Makes the venti at ADDR a mirror of the store: \"mirror run\" (or the grid's engine) pushes every block to it.",
	func(mg *mirror.Manager, addr string) (string, error) {
		canon, err := mg.Add(addr)
		return "mirror " + canon + " added", err
	})

// runMirrorRm is "mirror rm ADDR".
var runMirrorRm = runMirrorEdit("mirror rm",
	"Stops mirroring to ADDR and forgets its position; the blocks already there stay.",
	func(mg *mirror.Manager, addr string) (string, error) {
		return "mirror " + addr + " removed", mg.Remove(addr)
	})

func runMirrorStatus(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "mirror status", "[-store DIR] [-dir DIR] [-probe=true]\n"+
		"Lists the mirrors with their saved position and lag (blocks and bytes of blocks not yet on the mirror).")
	storeDir, dir := mirrorFlags(fs)
	probe := fs.Bool("probe", true, "dial each mirror (5 s timeout) and say whether it answers")
	if !hasFlag(args, "store") {
		return withEngine(ctx, env, fs, args, 0, 0, func(c *gridfs.Client, _ string, _ []string) error {
			b, err := c.ReadFile(ctx, "/venti/mirrors")
			if err != nil {
				return err
			}
			if len(b) == 0 {
				b = []byte("the grid's venti has no mirrors (add one with \"gridlord mirror add ADDR\")\n")
			}
			_, err = env.stdout.Write(b)
			return err
		})
	}
	st, mg, closeAll, err := parseOpenMirrors(env, fs, args, storeDir, dir)
	if err != nil {
		return err
	}
	defer closeAll()
	sts := mg.Status()
	if len(sts) == 0 {
		fmt.Fprintf(env.stdout, "store %s has no mirrors (add one with \"gridlord mirror add ADDR\")\n", st.Dir())
		return closeAll()
	}
	reach := make([]string, len(sts))
	if *probe {
		var wg sync.WaitGroup
		for i, s := range sts {
			wg.Go(func() { reach[i] = probeVenti(ctx, s.Addr) })
		}
		wg.Wait()
	}
	mirror.WriteStatus(env.stdout, sts, reach)
	return closeAll()
}

// probeVenti says whether a venti answers a handshake at addr.
func probeVenti(ctx context.Context, addr string) string {
	c, err := venti.Dial(ctx, addr, venti.WithDialTimeout(5*time.Second))
	if err != nil {
		return "unreachable: " + err.Error()
	}
	c.Close()
	return "answers"
}

func runMirrorVerify(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "mirror verify", "[-store DIR] [-dir DIR] [ADDR]\n"+
		"Reads every block of the store back from the mirror at ADDR (any venti), or from every mirror,\n"+
		"and checks its score, type and bytes. Exits 1 if a block is missing or wrong.")
	storeDir, dir := mirrorFlags(fs)
	if !hasFlag(args, "store") {
		return withEngine(ctx, env, fs, args, 1, 1, func(c *gridfs.Client, _ string, a []string) error {
			if err := c.Ctl(ctx, gridfs.QuoteWords([]string{"mirror", "verify", a[0]})); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "mirror %s holds every block of the grid's venti\nok\n", a[0])
			return nil
		})
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: want at most one venti address", errUsage)
	}
	st, mg, closeAll, err := openMirrors(env, *storeDir, *dir)
	if err != nil {
		return err
	}
	defer closeAll()
	addrs := mg.List()
	if fs.NArg() == 1 {
		addrs = []string{fs.Arg(0)}
	} else if len(addrs) == 0 {
		return fmt.Errorf("store %s has no mirrors: name a venti to verify against", st.Dir())
	}
	var bad []string
	for _, a := range addrs {
		var rep *mirror.VerifyReport
		if _, err := mg.Mirror(a); err == nil {
			rep, err = mg.Verify(ctx, a)
		} else {
			rep, err = mirror.Verify(ctx, st, a, env.log)
		}
		if err != nil {
			return err
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(env.stdout, "BAD: %s: %s\n", rep.Addr, p)
		}
		fmt.Fprintf(env.stdout, "mirror %s: %d blocks (%d bytes) up to %v read back correctly; %d missing, %d wrong, %d damaged in the store\n",
			rep.Addr, rep.Blocks, rep.Bytes, rep.End, rep.Missing, rep.Wrong, rep.Damaged)
		if !rep.OK() {
			bad = append(bad, rep.Addr)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("mirrors %s do not hold every block of the store (see above)", strings.Join(bad, ", "))
	}
	fmt.Fprintln(env.stdout, "ok")
	return closeAll()
}

func runMirrorRun(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "mirror run", "[-store DIR] [-dir DIR] [-serve ADDR] [-every 10s]\n"+
		"Pushes the store's blocks to every mirror until interrupted, printing their status.")
	storeDir, dir := mirrorFlags(fs)
	serve := fs.String("serve", "", "also serve the store with the venti protocol at `address` (writes made there are mirrored as they become durable)")
	every := fs.Duration("every", 10*time.Second, "how often to print the mirrors' status (0: only at the end)")
	st, mg, closeAll, err := parseOpenMirrors(env, fs, args, storeDir, dir)
	if err != nil {
		return err
	}
	defer closeAll()
	if len(mg.List()) == 0 {
		return fmt.Errorf("store %s has no mirrors: add one with \"gridlord mirror add ADDR\" first", st.Dir())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var serveErr error // set by the server's goroutine before wg.Done
	defer wg.Wait()    // after cancel: the server's connections are done before the store closes
	if *serve != "" {
		ln, err := net.Listen("tcp", *serve)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", *serve, err)
		}
		fmt.Fprintf(env.stdout, "venti %s store %s\n", ln.Addr(), st.Dir())
		wg.Go(func() {
			serveErr = venti.NewServer(st, venti.WithLogger(env.log)).Serve(ctx, ln)
			cancel() // a failed server ends the run
		})
	}
	fmt.Fprintf(env.stdout, "mirroring store %s to %s\n", st.Dir(), strings.Join(mg.List(), ", "))
	mg.Start(ctx)
	var tick <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
			mirror.WriteStatus(env.stdout, mg.Status(), nil)
		case <-ctx.Done():
			cancel()
			wg.Wait()
			mg.Close()
			mirror.WriteStatus(env.stdout, mg.Status(), nil)
			return errors.Join(serveErr, closeAll())
		}
	}
}

// "gridlord bench mirror": mirror throughput in MB/s of blocks, against
// the same run's speed of copying the store's arena files with cp -r
// (and sync): the cost of what venti/rdarena | venti/wrarena did against
// a plain file copy of the log.

func runBenchMirror(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "bench mirror", "[-size 512M] [-dir DIR] [-window 64]")
	sizeFlag := fs.String("size", "512M", "bytes of fresh random 8 KiB blocks in the primary store, with an optional K, M or G suffix")
	dir := fs.String("dir", "", "empty or new `directory` for the stores and the copy (default: a temporary directory, removed afterwards)")
	window := fs.Int("window", 64, "writes in flight on the mirror's connection")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	size, err := parseSize(*sizeFlag)
	if err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "gridlord-bench-mirror-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	res, err := benchMirror(ctx, env, *dir, size, *window)
	if err != nil {
		return err
	}
	res.print(env.stdout)
	return nil
}

// mirrorBench is what benchMirror measured.
type mirrorBench struct {
	blocks      int
	blockBytes  int64         // block bytes in the primary
	logBytes    int64         // bytes of its arena files
	cp, mirror  time.Duration // cp -r + sync of the arenas; mirroring every block, synced
	loadBefore  string        // /proc/loadavg before and after, if there is one
	loadAfter   string
	verifyBlock int64
}

func (b mirrorBench) print(w io.Writer) {
	mbps := func(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }
	fmt.Fprintf(w, "primary: %d blocks of 8 KiB (%d bytes), %d bytes of arena files\n", b.blocks, b.blockBytes, b.logBytes)
	fmt.Fprintf(w, "baseline cp -r arenas + sync: %8.1f MB/s of arena bytes (%v)\n", mbps(b.logBytes, b.cp), b.cp.Round(time.Millisecond))
	fmt.Fprintf(w, "mirror over loopback:         %8.1f MB/s of blocks (%v; every block written, Tsync'd, position saved)\n", mbps(b.blockBytes, b.mirror), b.mirror.Round(time.Millisecond))
	fmt.Fprintf(w, "mirror / cp: %.2f× (same bytes: the blocks are random, so stored raw)\n", mbps(b.blockBytes, b.mirror)/mbps(b.logBytes, b.cp))
	if b.loadBefore != "" {
		fmt.Fprintf(w, "load average before: %s, after: %s (2 cores are shared: a high load makes every figure noisy)\n", b.loadBefore, b.loadAfter)
	}
	fmt.Fprintf(w, "verified afterwards: %d blocks on the mirror\n", b.verifyBlock)
}

// loadAvg returns the 1, 5 and 15 minute load averages, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// benchMirror fills a primary store in dir with size bytes of fresh
// random 8 KiB blocks, times cp -r of its arena files (and sync), then
// times mirroring it to an empty store served on loopback until the
// mirror has acknowledged a Tsync of the last block.
func benchMirror(ctx context.Context, env *cmdEnv, dir string, size int64, window int) (mirrorBench, error) {
	var res mirrorBench
	pdir, cdir, mdir := filepath.Join(dir, "primary"), filepath.Join(dir, "cp"), filepath.Join(dir, "mirror")
	prim, err := store.Open(pdir, store.WithLogger(env.log))
	if err != nil {
		return res, err
	}
	defer prim.Close()
	n := int(max(size/benchBlockSize, 1))
	if err := fillRandom(ctx, prim, n); err != nil {
		return res, err
	}
	res.blocks, res.blockBytes = n, int64(n)*benchBlockSize
	res.logBytes = prim.Stats().LogBytes
	if err := exec.CommandContext(ctx, "sync").Run(); err != nil {
		return res, fmt.Errorf("sync before the baseline: %w", err)
	}
	res.loadBefore = loadAvg()

	// Baseline: the arena files copied, as a backup of the log would be.
	arenas, err := filepath.Glob(filepath.Join(pdir, "arena.*"))
	if err != nil || len(arenas) == 0 {
		return res, fmt.Errorf("no arena files in %s: %v", pdir, err)
	}
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return res, err
	}
	start := time.Now()
	if out, err := exec.CommandContext(ctx, "cp", append(append([]string{"-r"}, arenas...), cdir)...).CombinedOutput(); err != nil {
		return res, fmt.Errorf("cp -r: %v: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "sync").CombinedOutput(); err != nil {
		return res, fmt.Errorf("sync: %v: %s", err, out)
	}
	res.cp = time.Since(start)
	os.RemoveAll(cdir)

	// The mirror: an empty store behind a venti server on loopback.
	mst, err := store.Open(mdir, store.WithLogger(env.log))
	if err != nil {
		return res, err
	}
	defer mst.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { venti.NewServer(mst).Serve(sctx, ln) })
	defer func() { stop(); wg.Wait() }()
	mg, err := mirror.New(prim, filepath.Join(dir, "mirrors"), env.log, mirror.WithWindow(window))
	if err != nil {
		return res, err
	}
	defer mg.Close()
	addr, err := mg.Add(ln.Addr().String())
	if err != nil {
		return res, err
	}
	m, _ := mg.Mirror(addr)
	start = time.Now()
	mg.Start(ctx)
	for {
		s := m.Status()
		if s.Pos == s.Durable && s.Blocks >= int64(n) {
			break
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		time.Sleep(5 * time.Millisecond) // Status counts the index: not too often
	}
	res.mirror = time.Since(start)
	res.loadAfter = loadAvg()
	mg.Close()
	rep, err := mg.Verify(ctx, addr)
	if err != nil {
		return res, err
	}
	if !rep.OK() || rep.Blocks != int64(n) {
		return res, fmt.Errorf("the mirror holds %d of %d blocks after the benchmark: %q", rep.Blocks, n, rep.Problems)
	}
	res.verifyBlock = rep.Blocks
	return res, nil
}

// fillRandom writes n fresh random 8 KiB blocks to st from two
// goroutines and syncs.
func fillRandom(ctx context.Context, st venti.Store, n int) error {
	const workers = 2
	seed := rand.Uint64()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.NewChaCha8([32]byte{byte(w), byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
			b := make([]byte, benchBlockSize)
			for i := w; i < n; i += workers {
				r.Read(b)
				if _, err := st.Write(ctx, venti.DataType, b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return st.Sync(ctx)
}
