package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"gridlord/engine/vac"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// Subcommands "vac", "unvac" and "bench vac": archives of files and
// directory trees in a venti, in the format of Plan 9's vac(1).

func runVac(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "vac", "[-h venti] [-d prev.vac] [-o out.vac] [-b blocksize] PATH...")
	host := hostFlag(fs)
	prev := fs.String("d", "", "previous `archive` (.vac file or vac:score): unchanged files (same size and mtime) are not re-read")
	out := fs.String("o", "", "also write vac:<score> to this `file` (atomically)")
	bsize := fs.Int("b", vac.DefaultBlockSize, "block `size` in bytes")
	workers := fs.Int("workers", 32, "block writes in flight")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: no PATH to archive", errUsage)
	}
	cliGC()
	cliProcs(ventiHost(*host))
	defer envCPUProfile(env, "vac")()
	c, err := dialVenti(ctx, ventiHost(*host))
	if err != nil {
		return err
	}
	defer c.Close()
	opts := vac.Options{BlockSize: *bsize, Workers: *workers, Logger: env.log}
	if *prev != "" {
		s, err := vac.ReadScoreFile(*prev)
		if err != nil {
			return err
		}
		if opts.Previous, err = vac.Open(ctx, c, s); err != nil {
			return fmt.Errorf("previous archive %s: %w", *prev, err)
		}
	}
	bar := newProgressBar(env.stderr, "vac")
	opts.Progress = bar.update
	score, err := vac.Create(ctx, c, fs.Args(), opts)
	bar.done()
	if err != nil {
		return err
	}
	if *out != "" {
		if err := vac.WriteScoreFile(*out, score); err != nil {
			return err
		}
	}
	fmt.Fprintln(env.stdout, vac.FormatScore(score))
	return nil
}

func runUnvac(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "unvac", "[-h venti] [-c] [-t [-v]] [-C dir] FILE.vac [pattern...]")
	host := hostFlag(fs)
	toStdout := fs.Bool("c", false, "write the selected files' data to standard output")
	list := fs.Bool("t", false, "list the archive instead of restoring")
	verbose := fs.Bool("v", false, "with -t: print mode, owner, group, size and mtime too")
	dir := fs.String("C", ".", "restore below this `directory`")
	workers := fs.Int("workers", vac.DefaultFetchAhead, "blocks fetched ahead")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: no archive given", errUsage)
	}
	score, err := vac.ReadScoreFile(fs.Arg(0))
	if err != nil {
		return err
	}
	cliGC()
	cliProcs(ventiHost(*host))
	defer envCPUProfile(env, "unvac")()
	c, err := dialVenti(ctx, ventiHost(*host))
	if err != nil {
		return err
	}
	defer c.Close()
	a, err := vac.Open(ctx, c, score)
	if err != nil {
		return err
	}
	patterns := fs.Args()[1:]
	switch {
	case *list:
		files, err := vac.Select(ctx, a, patterns)
		for _, f := range files {
			name := f.Path()
			if f.IsDir() {
				name += "/"
			}
			if *verbose {
				d := f.DirEntry()
				fmt.Fprintf(env.stdout, "%s %-10s %-10s %11d %s %s\n", vacModeString(d.Mode), d.UID, d.GID,
					f.Size(), f.ModTime().Format("2006-01-02 15:04"), name)
			} else {
				fmt.Fprintln(env.stdout, name)
			}
		}
		return err
	case *toStdout:
		bar := newProgressBar(env.stderr, "unvac")
		err := vac.Cat(ctx, a, env.stdout, vac.RestoreOptions{Patterns: patterns, Workers: *workers, Progress: bar.update})
		bar.done()
		return err
	default:
		bar := newProgressBar(env.stderr, "unvac")
		err := vac.Restore(ctx, a, *dir, vac.RestoreOptions{Patterns: patterns, Workers: *workers, Progress: bar.update, Logger: env.log})
		bar.done()
		return err
	}
}

// cliGCPercent is the GOGC of a vac or unvac process (see cliGC).
const cliGCPercent = 400

// cliGC makes the garbage collector of a vac or unvac process run less
// often than Go's default (GOGC=100), unless GOGC or GOMEMLIMIT in the
// environment say how it should run. Such a process keeps a few MiB live,
// but the heap goal also counts the 5 MiB of globals of this one binary
// (the window's packages): by default a cycle came after the first few
// MiB of buffers, and each cycle scans those globals (a vac of a one-line
// file: one cycle, about 20 ms of CPU of its 70; an unvac of 256 MiB: two).
// The heap may grow to five times what is live instead of twice.
func cliGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(cliGCPercent)
}

// cliProcs makes a vac or unvac process whose venti is on this machine
// (a loopback address) run its Go code on half the cores, at least one,
// unless GOMAXPROCS in the environment says how many: the venti serve
// process needs the others. With a thread per core in each process, the
// two processes' threads contend for the cores and hand work to each
// other's cores ("bench vac -cli" on 2 cores, median of 8 alternating
// runs of unvac of 256 MiB to /dev/null: 0.525 s with every core, 0.445 s
// with one; vac, mean of 7: 0.880 s and 0.824 s).
func cliProcs(ventiAddr string) {
	if os.Getenv("GOMAXPROCS") != "" || !loopbackAddr(ventiAddr) {
		return
	}
	runtime.GOMAXPROCS(max(1, runtime.NumCPU()/2))
}

// loopbackAddr reports whether the venti address addr (see
// venti.ParseAddr) names this machine: a loopback IP or "localhost".
func loopbackAddr(addr string) bool {
	hp, err := venti.ParseAddr(addr)
	if err != nil {
		return false
	}
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// envCPUProfile starts a CPU profile of the command into
// $GRIDLORD_CPUPROFILE.NAME.PID when that variable is set (a hidden aid
// for profiling "bench vac -cli", whose processes inherit it); the
// returned function ends it.
func envCPUProfile(env *cmdEnv, name string) func() {
	base := os.Getenv("GRIDLORD_CPUPROFILE")
	if base == "" {
		return func() {}
	}
	stop, err := startCPUProfile(fmt.Sprintf("%s.%s.%d", base, name, os.Getpid()))
	if err != nil {
		env.log.Warn("cpu profile", "err", err)
		return func() {}
	}
	return stop
}

// vacModeString formats vac mode bits like ls: d/L/p, then rwx triplets.
func vacModeString(m uint32) string {
	b := []byte("----------")
	switch {
	case m&vac.ModeDir != 0:
		b[0] = 'd'
	case m&vac.ModeLink != 0:
		b[0] = 'L'
	case m&vac.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&vac.ModeDevice != 0:
		b[0] = 'D'
	}
	for i, c := range "rwxrwxrwx" {
		if m&(1<<(8-i)) != 0 {
			b[1+i] = byte(c)
		}
	}
	if m&vac.ModeSetUID != 0 {
		b[3] = 's'
	}
	if m&vac.ModeSetGID != 0 {
		b[6] = 's'
	}
	if m&vac.ModeSticky != 0 {
		b[9] = 't'
	}
	return string(b)
}

// progressBar draws "label: done/total MiB pct% rate" on a terminal,
// redrawn at most five times a second. It draws nothing when w is not a
// terminal.
type progressBar struct {
	w     io.Writer
	label string
	on    bool
	start time.Time
	last  time.Time
	mu    sync.Mutex
	drawn bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	p := &progressBar{w: w, label: label, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

// update is the Progress callback of the vac engine.
func (p *progressBar) update(done, total int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond && done < total {
		return
	}
	p.last = now
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-3) / 1e6
	fmt.Fprintf(p.w, "\r%s: %.1f/%.1f MiB %3.0f%% %.1f MB/s  ", p.label, float64(done)/(1<<20), float64(total)/(1<<20), pct, rate)
	p.drawn = true
}

// done ends the bar's line.
func (p *progressBar) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// runBenchVac measures, in one run: SHA-1 speed on one core, vac of a
// random file into an embedded venti over loopback TCP, a second vac of the
// same file (every block a duplicate), and unvac to /dev/null and to a file.
// With -cli each phase is the command a user runs ("gridlord vac",
// "gridlord unvac") as its own process against "gridlord venti serve" in
// another.
func runBenchVac(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "bench vac", "[-size 1G] [-cli] [-store DIR] [-out DIR] [-workers N] [-cpuprofile FILE]")
	cli := fs.Bool("cli", false, "run \"gridlord venti serve\", \"gridlord vac\" and \"gridlord unvac\" as separate processes (this executable)")
	sizeFlag := fs.String("size", "1G", "size of the random file, with an optional K, M or G suffix")
	dir := fs.String("store", "", "empty or new store `directory` (default: a temporary directory, removed afterwards)")
	workers := fs.Int("workers", 0, "block writes in flight (vac) and blocks fetched ahead (unvac); 0: each one's default")
	outFlag := fs.String("out", "", "`directory` to unvac the file into (default: the temporary directory)")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the measured phases to `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	size, err := parseSize(*sizeFlag)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "gridlord-bench-vac-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *dir == "" {
		*dir = filepath.Join(tmp, "store")
	}

	// Baseline: SHA-1 of 8 KiB blocks on one core, best of five rounds of
	// 64 MiB (a shared machine can stall any one round).
	base := make([]byte, vac.DefaultBlockSize)
	rand.NewChaCha8([32]byte{1}).Read(base)
	var shaRate, shaCPURate float64
	for round := 0; round < 5; round++ {
		const shaN = 8192
		t0, c0 := time.Now(), vacProcessCPU()
		for i := 0; i < shaN; i++ {
			binary.LittleEndian.PutUint64(base, uint64(i))
			sha1.Sum(base)
		}
		shaRate = max(shaRate, float64(shaN*len(base))/time.Since(t0).Seconds())
		if c := vacProcessCPU() - c0; c > 0 { // per CPU-second: unaffected by other load
			shaCPURate = max(shaCPURate, float64(shaN*len(base))/c.Seconds())
		}
	}
	if shaCPURate == 0 {
		shaCPURate = shaRate
	}

	// The input: a random file (in the page cache, as a freshly written
	// image would be).
	src := filepath.Join(tmp, "random.img")
	if err := writeRandomFile(src, size); err != nil {
		return err
	}
	outDir := filepath.Join(tmp, "out")
	if *outFlag != "" {
		if outDir, err = os.MkdirTemp(*outFlag, "gridlord-bench-vac-out-"); err != nil {
			return err
		}
		defer os.RemoveAll(outDir)
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return err
	}
	b := &vacBench{size: size, src: src, outDir: outDir, shaRate: shaRate, shaCPURate: shaCPURate}
	if *cli {
		return b.processes(ctx, env, *dir, *workers)
	}

	// As "venti serve": the blocks reach vac through the protocol
	// client, which checks their SHA-1 (see runVentiServe).
	st, err := store.Open(*dir, store.WithLogger(env.log), store.WithReadVerify(false))
	if err != nil {
		return err
	}
	defer st.Close()
	if st.Stats().Blocks != 0 {
		return fmt.Errorf("store %s is not empty: give an empty or new -store directory", *dir)
	}
	c, stop, err := serveLoopback(ctx, st)
	if err != nil {
		return err
	}
	defer stop()

	stopProfile, err := startCPUProfile(*profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	var score venti.Score
	opts := vac.Options{Workers: *workers}
	vacRate, err := b.timed(func() (err error) {
		score, err = vac.Create(ctx, c, []string{src}, opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("vac: %w", err)
	}
	blocks := st.Stats().Blocks
	var score2 venti.Score
	revacRate, err := b.timed(func() (err error) {
		score2, err = vac.Create(ctx, c, []string{src}, opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("re-vac: %w", err)
	}
	if st.Stats().Blocks > blocks+4 {
		return fmt.Errorf("re-vac stored %d new blocks, want only metadata", st.Stats().Blocks-blocks)
	}
	a, err := vac.Open(ctx, c, score2)
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	ropts := vac.RestoreOptions{Workers: *workers}
	nullRate, err := b.timed(func() error { return vac.Cat(ctx, a, null, ropts) })
	if err != nil {
		return fmt.Errorf("unvac to %s: %w", os.DevNull, err)
	}
	cpRate, err := b.cpBaseline()
	if err != nil {
		return err
	}
	fileRate, err := b.timed(func() error { return vac.Restore(ctx, a, outDir, ropts) })
	if err != nil {
		return fmt.Errorf("unvac to a file: %w", err)
	}
	if err := sameFile(src, filepath.Join(outDir, filepath.Base(src))); err != nil {
		return err
	}
	inFlight := "default requests in flight"
	if *workers > 0 {
		inFlight = fmt.Sprintf("%d requests in flight", *workers)
	}
	fmt.Fprintf(env.stdout, "vac over loopback TCP into an embedded venti: %d MiB random file, 8 KiB blocks, %s; %s\n",
		size>>20, inFlight, vac.FormatScore(score))
	fmt.Fprintf(env.stdout, "rates: wall clock (ratio to SHA-1's wall-clock rate) and bytes per CPU-second of this whole process,\n"+
		"client+server+store (ratio to SHA-1 bytes per CPU-second; stays meaningful on a loaded machine)\n")
	return b.print(env.stdout, vacRate, revacRate, nullRate, cpRate, fileRate)
}

// vacBench is the state "bench vac" shares between its in-process and
// its -cli variant: the input and the baselines.
type vacBench struct {
	size                int64
	src, outDir         string
	shaRate, shaCPURate float64
}

// vacRate is a phase's throughput: wall clock, and per CPU-second of the
// processes measured (0 if not measured).
type vacRate struct{ wall, cpu float64 }

// timed runs fn and returns its rate over b.size bytes; the CPU time is
// this process's.
func (b *vacBench) timed(fn func() error) (vacRate, error) {
	start, cpu0 := time.Now(), vacProcessCPU()
	if err := fn(); err != nil {
		return vacRate{}, err
	}
	r := vacRate{wall: float64(b.size) / time.Since(start).Seconds()}
	if cpu := vacProcessCPU() - cpu0; cpu > 0 {
		r.cpu = float64(b.size) / cpu.Seconds()
	}
	return r, nil
}

// cpBaseline is the reference for unvac to a file: how fast this machine
// writes a file of that size right now (cp of the source; its pages are
// cached).
func (b *vacBench) cpBaseline() (vacRate, error) {
	cpDst := filepath.Join(b.outDir, "cp.img")
	r, err := b.timed(func() error { return copyFile(b.src, cpDst) })
	if err != nil {
		return r, fmt.Errorf("cp baseline: %w", err)
	}
	return r, os.Remove(cpDst)
}

// print writes the table of rates.
func (b *vacBench) print(w io.Writer, vacR, revacR, nullR, cpR, fileR vacRate) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	mb := func(r float64) string { return fmt.Sprintf("%.1f MB/s", r/1e6) }
	fmt.Fprintf(tw, "sha1 (one core)\t%s\t1.00\t\t%s/cpu-s\t1.00\t\n", mb(b.shaRate), mb(b.shaCPURate))
	line := func(name string, r vacRate, target string) {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t× sha1\t%s/cpu-s\t%.2f\t× sha1  %s\n", name, mb(r.wall), r.wall/b.shaRate, mb(r.cpu), r.cpu/b.shaCPURate, target)
	}
	line("vac", vacR, "(target ≥ 0.25 wall)")
	line("re-vac (all dedup)", revacR, "")
	line("unvac to "+os.DevNull, nullR, "(target ≥ 0.4 wall)")
	line("cp of the file (reference)", cpR, "")
	line("unvac to a file", fileR, fmt.Sprintf("(target ≥ 0.4 wall; %.2f× cp)", fileR.wall/cpR.wall))
	return tw.Flush()
}

// copyFile copies src to a new file dst with large writes, as cp does.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, make([]byte, 1<<20)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeRandomFile writes size pseudo-random bytes to name, durably.
func writeRandomFile(name string, size int64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{2})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	// On disk before the measurements start, so the kernel's writeback of
	// it does not compete with them for the CPU.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sameFile checks that two files have equal contents.
func sameFile(a, b string) error {
	sum := func(p string) ([]byte, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		h := sha1.New()
		if _, err := io.Copy(h, f); err != nil {
			return nil, err
		}
		return h.Sum(nil), nil
	}
	sa, err := sum(a)
	if err != nil {
		return err
	}
	sb, err := sum(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(sa, sb) {
		return errors.New("unvac restored a file that differs from the original")
	}
	return nil
}
