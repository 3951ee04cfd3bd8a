package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gridlord/engine/venti"
	"gridlord/engine/venti/arena"
	"gridlord/engine/venti/store"
)

// Subcommands of "gridlord venti": the embedded venti server on a disk
// store, a command-line client, and the store's checker.

// gcBallastSize is the size of the GC ballast of a venti server process:
// an allocation that is never touched (so it costs address space, not
// RAM) and raises the heap size at which the collector runs. A venti's
// live heap is small (the index: 16 bytes per block) while every block
// read allocates, so without it the collector runs every few megabytes and
// costs up to a SHA-1's worth of CPU per block read; with it, about every
// 64 MiB, at the price of up to 64 MiB more resident garbage.
const gcBallastSize = 64 << 20

// newGCBallast returns the ballast; keep it reachable while serving.
func newGCBallast() []byte { return make([]byte, gcBallastSize) }

// defaultVentiAddr is where "venti serve" listens and the clients dial
// when neither -addr/-h nor $venti says otherwise: loopback only.
const defaultVentiAddr = "127.0.0.1:17034"

// hostFlag adds the client subcommands' -h flag; see ventiHost.
func hostFlag(fs *flag.FlagSet) *string {
	return fs.String("h", "", "venti `address` (default $venti, else "+defaultVentiAddr+")")
}

// typeFlag adds the -t flag of the block subcommands; see parseType.
func typeFlag(fs *flag.FlagSet) *string {
	return fs.String("t", "data", "block `type`: data, dir, root, pointer0..pointer6, or a wire type number")
}

// ventiHost returns the address the client subcommands dial: the -h flag,
// else $venti (as plan9port's tools read it), else the default.
func ventiHost(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := os.Getenv("venti"); v != "" {
		return v
	}
	return defaultVentiAddr
}

// defaultStoreDir is the store directory used without -store:
// $XDG_DATA_HOME/gridlord/venti, else ~/.local/share/gridlord/venti on
// Unix other than macOS, else the user config dir (macOS: Application
// Support; Windows: %AppData%) + gridlord/venti.
func defaultStoreDir() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "gridlord", "venti"), nil
	}
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, ".local", "share", "gridlord", "venti"), nil
		}
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no default venti store directory (%v): give -store DIR", err)
	}
	return filepath.Join(d, "gridlord", "venti"), nil
}

// parseType parses a block type: a name (data, dir, root, pointer0 ..
// pointer6) or a number in the wire/disk numbering of venti(7) (data 13,
// dir 2, root 1, pointer0..6 = 3..9), not libventi's internal numbers.
func parseType(s string) (venti.Type, error) {
	switch s {
	case "data":
		return venti.DataType, nil
	case "dir":
		return venti.DirType, nil
	case "root":
		return venti.RootType, nil
	}
	if d, ok := strings.CutPrefix(s, "pointer"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 && n <= 6 {
			return venti.PointerType(n + 1), nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 255 && venti.Type(n).Valid() {
		return venti.Type(n), nil
	}
	return 0, fmt.Errorf("%w: block type %q: want data, dir, root, pointer0..pointer6 or a wire type number (1, 2, 3..9, 13)", errUsage, s)
}

// statusAddr is the address of the HTTP status listener that goes with a
// venti address: same host, venti port + 1 (like venti's httpaddr).
func statusAddr(ventiAddr string) (string, error) {
	hp, err := venti.ParseAddr(ventiAddr)
	if err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(hp)
	p, _ := strconv.Atoi(port)
	if p == 0 {
		return net.JoinHostPort(host, "0"), nil
	}
	if p+1 > 65535 {
		return "", fmt.Errorf("venti address %s: no port above it for the HTTP status listener; give -http", ventiAddr)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}

func runVentiServe(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "venti serve", "[-addr host:port] [-http host:port|off] [-store DIR | -arenas FILE]")
	addr := fs.String("addr", defaultVentiAddr, "venti protocol `address`; anything but loopback must be asked for here")
	httpAddr := fs.String("http", "", "HTTP status `address` serving /stats (default: venti port + 1 on the same host; \"off\" for none)")
	dir := fs.String("store", "", "store `directory` (default: the user data directory's gridlord/venti)")
	arena := fs.Int64("arenasize", 512<<20, "size limit of new arena files in `bytes`")
	ckpt := fs.Int64("checkpoint", 1<<30, "`bytes` of new log between index checkpoints (bounds the log scan after a crash)")
	arenas := fs.String("arenas", "", "serve a venti arena partition `FILE` (or a disk image holding one) read-only instead of a store")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *arenas != "" {
		if *dir != "" {
			return fmt.Errorf("%w: give -store or -arenas, not both", errUsage)
		}
		return serveArenas(ctx, env, *addr, *arenas)
	}
	if *dir == "" {
		d, err := defaultStoreDir()
		if err != nil {
			return err
		}
		*dir = d
	}
	// Reads check each record's CRC32C and stored score but do not hash
	// the block again: the protocol client computes the SHA-1 of what it
	// reads and rejects a block that does not match its score (ours in
	// Client.Read, libventi in its block cache, which vac and fossil read
	// through), so a second SHA-1 here would only double the CPU a read
	// costs. Bit rot still shows as a CRC32C mismatch; "venti check" and
	// in-process readers of the store verify the SHA-1 too.
	st, err := store.Open(*dir, store.WithLogger(env.log), store.WithArenaSize(*arena), store.WithCheckpointBytes(*ckpt),
		store.WithReadVerify(false))
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			env.log.Error("venti store close", "err", err)
		}
	}()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	// The status listener: same host as the venti one unless told.
	var hln net.Listener
	if *httpAddr != "off" {
		ha := *httpAddr
		if ha == "" {
			if ha, err = statusAddr(ln.Addr().String()); err != nil {
				ln.Close()
				return err
			}
		}
		if hln, err = net.Listen("tcp", ha); err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s for HTTP status (use -http to choose another address or -http off): %w", ha, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(st.Stats())
		})
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(hln)
		defer hs.Close()
	}
	// One line on stdout says where we listen (tests and scripts read it).
	line := fmt.Sprintf("venti %s store %s", ln.Addr(), *dir)
	if hln != nil {
		line += fmt.Sprintf(" http %s", hln.Addr())
	}
	fmt.Fprintln(env.stdout, line)
	ballast := newGCBallast()
	defer runtime.KeepAlive(ballast)
	defer envCPUProfile(env, "venti-serve")()
	srv := venti.NewServer(st, venti.WithLogger(env.log))
	return srv.Serve(ctx, ln)
}

// serveArenas serves the blocks of a venti arena partition read-only, as the
// old grid distributions' ventidata/arenas files were served.
func serveArenas(ctx context.Context, env *cmdEnv, addr, path string) error {
	src, err := arena.OpenSource(path)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := arena.OpenStore(ctx, src, src.Size)
	if err != nil {
		return fmt.Errorf("serve arenas %s: %w", path, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	fmt.Fprintf(env.stdout, "venti %s arenas %s (%s, %d blocks, read-only)\n", ln.Addr(), path, src.Desc, st.Len())
	return venti.NewServer(st, venti.WithLogger(env.log)).Serve(ctx, ln)
}

func dialVenti(ctx context.Context, host string) (*venti.Client, error) {
	c, err := venti.Dial(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("%w (is \"gridlord venti serve\" running? set -h or $venti)", err)
	}
	return c, nil
}

func runVentiWrite(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "venti write", "[-h host] [-t type] < data\n"+
		"Stores standard input (at most 56 KiB) as one block exactly as given (no zero truncation),\n"+
		"syncs, and prints its score. Type numbers are venti(7) wire types: root 1, dir 2, pointer0..6 3..9, data 13.")
	host := hostFlag(fs)
	typ := typeFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	t, err := parseType(*typ)
	if err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: the block comes from standard input, not arguments", errUsage)
	}
	data, err := io.ReadAll(io.LimitReader(env.stdin, venti.MaxBlock+1))
	if err != nil {
		return fmt.Errorf("read standard input: %w", err)
	}
	if len(data) > venti.MaxBlock {
		return fmt.Errorf("standard input holds more than %d bytes, the largest venti block", venti.MaxBlock)
	}
	c, err := dialVenti(ctx, ventiHost(*host))
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.Write(ctx, t, data)
	if err != nil {
		return err
	}
	if err := c.Sync(ctx); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, s)
	return nil
}

func runVentiRead(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "venti read", "[-h host] [-t type] SCORE > data\n"+
		"Prints the stored bytes of the block (SCORE is 40 hex digits, optionally venti:-prefixed).")
	host := hostFlag(fs)
	typ := typeFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	t, err := parseType(*typ)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want one score (40 hex digits)", errUsage)
	}
	s, err := venti.ParseScore(strings.TrimPrefix(fs.Arg(0), "venti:"))
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	c, err := dialVenti(ctx, ventiHost(*host))
	if err != nil {
		return err
	}
	defer c.Close()
	data, err := c.Read(ctx, s, t, venti.MaxBlock)
	if err != nil {
		return err
	}
	_, err = env.stdout.Write(data)
	return err
}

func runVentiCheck(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "venti check", "[-store DIR]")
	dir := fs.String("store", "", "store `directory` (default: the user data directory's gridlord/venti); the store must not be in use")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := defaultStoreDir()
		if err != nil {
			return err
		}
		*dir = d
	}
	rep, err := store.Check(ctx, *dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "store %s: %d arenas, %d good records (%d bytes of blocks; %d records compressed, %d bytes stored), %d index entries\n",
		rep.Dir, rep.Arenas, rep.Records, rep.Bytes, rep.Compressed, rep.StoredBytes, rep.IndexEntries)
	for _, n := range rep.Notes {
		fmt.Fprintf(env.stdout, "note: %s\n", n)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(env.stdout, "BAD: %v\n", p)
	}
	if !rep.OK() {
		return fmt.Errorf("store %s: %d problems (listed above)", rep.Dir, len(rep.Problems))
	}
	fmt.Fprintln(env.stdout, "ok")
	return nil
}

func runVentiStats(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "venti stats", "[-store DIR | -h host]")
	dir := fs.String("store", "", "store `directory` to open (it must not be in use)")
	host := fs.String("h", "", "ask the running server at this venti `address` (its HTTP status listener at port + 1)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir != "" && *host != "" {
		return fmt.Errorf("%w: give -store or -h, not both", errUsage)
	}
	var s store.Stats
	if *dir != "" {
		st, err := store.Open(*dir, store.WithLogger(env.log))
		if err != nil {
			return err
		}
		s = st.Stats()
		if err := st.Close(); err != nil {
			return err
		}
	} else {
		ha, err := statusAddr(ventiHost(*host))
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+ha+"/stats", nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return fmt.Errorf("venti stats from %s: %w (is \"gridlord venti serve\" running with its HTTP status listener?)", ha, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("venti stats from %s: %s", ha, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			return fmt.Errorf("venti stats from %s: %w", ha, err)
		}
	}
	printStats(env.stdout, s)
	return nil
}

func printStats(w io.Writer, s store.Stats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "blocks\t%d\n", s.Blocks)
	fmt.Fprintf(tw, "stored bytes\t%d\t(the blocks' logical size)\n", s.StoredBytes)
	ratio := ""
	if s.LogBytes > 0 {
		ratio = fmt.Sprintf(", %.2f× smaller than the blocks", float64(s.StoredBytes)/float64(s.LogBytes))
	}
	fmt.Fprintf(tw, "log bytes\t%d\t(on disk, compressed, record headers included; %d arenas%s)\n", s.LogBytes, s.Arenas, ratio)
	fmt.Fprintf(tw, "client writes\t%d\n", s.ClientWrites)
	fmt.Fprintf(tw, "client bytes\t%d\n", s.ClientBytes)
	fmt.Fprintf(tw, "dedup ratio\t%.2f\n", s.DedupRatio)
	fmt.Fprintf(tw, "index entries\t%d\n", s.IndexEntries)
	fmt.Fprintf(tw, "index RAM\t%d\t(%.1f bytes/block)\n", s.IndexRAM, s.RAMPerBlock)
	fmt.Fprintf(tw, "index file\t%d\n", s.IndexFile)
	fmt.Fprintf(tw, "syncs\t%d\t(%d fsyncs)\n", s.Syncs, s.Fsyncs)
	tw.Flush()
}
