package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"gridlord/engine/daemon"
	"gridlord/engine/drawterm"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// envGrid names the default grid directory when -grid is not given.
const envGrid = "GRIDLORD_GRID"

// envVentiAddr overrides the engine's venti listen address (tests use
// 127.0.0.1:0 so as not to take the real port).
const envVentiAddr = "GRIDLORD_VENTI_ADDR"

// gridDir resolves the grid directory: the -grid flag, else $GRIDLORD_GRID,
// else DATADIR/grids/default.
func gridDir(flagValue string) (string, error) {
	d := flagValue
	if d == "" {
		d = os.Getenv(envGrid)
	}
	if d == "" {
		data, err := grid.DefaultDataDir()
		if err != nil {
			return "", err
		}
		d = grid.DefaultGridDir(data)
	}
	return filepath.Abs(d)
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// gridFlags adds -grid to fs.
func gridFlags(fs *flag.FlagSet) *string {
	return fs.String("grid", "", "grid directory (default $"+envGrid+", else the data directory's grids/default)")
}

// runEngine runs the engine daemon of a grid in the foreground.
func runEngine(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "engine", "[-grid DIR]")
	dirFlag := gridFlags(fs)
	ventiAddr := fs.String("venti-addr", "", "embedded venti listen address (default $"+envVentiAddr+", else "+grid.DefaultVentiAddr+", or a free loopback port if another grid has that)")
	readyTimeout := fs.Duration("ready-timeout", 5*time.Minute, "how long a node may take to boot to readiness")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	dir, err := gridDir(*dirFlag)
	if err != nil {
		return err
	}
	if *ventiAddr == "" {
		*ventiAddr = os.Getenv(envVentiAddr)
	}
	cache := ""
	if d, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(d, "gridlord")
	}
	e, err := daemon.Open(ctx, dir, daemon.Options{
		VentiAddr:     *ventiAddr,
		AccelCacheDir: cache,
		ReadyTimeout:  *readyTimeout,
		Log:           env.log,
	})
	if err != nil {
		return err
	}
	defer e.Close()
	env.log.Info("engine serving gridfs", "socket", e.SocketPath(), "venti", e.VentiAddr(), "pid", os.Getpid())
	if err := e.Serve(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	env.log.Info("engine exiting; VMs keep running", "grid", dir)
	return nil
}

// dialEngine connects to the grid's engine, starting it as a detached
// process ("gridlord engine -grid DIR", logging to GRIDDIR/engine.log) if
// none answers.
func dialEngine(ctx context.Context, env *cmdEnv, dir string) (*gridfs.Client, error) {
	sock := filepath.Join(dir, grid.SocketName)
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	c, err := gridfs.Dial(dctx, sock)
	cancel()
	if err == nil {
		return c, nil
	}
	if _, err := os.Stat(filepath.Join(dir, grid.FileName)); err != nil {
		return nil, fmt.Errorf("no grid in %s (%v): create one with gridlord init %s", dir, err, dir)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the engine: %w", err)
	}
	c, pid, err := gridfs.Spawn(ctx, dir, gridfs.SpawnOptions{Exe: exe})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.stderr, "gridlord: engine pid %d serves %s (log %s)\n", pid, dir, filepath.Join(dir, grid.LogName))
	return c, nil
}

// withEngine parses -grid (and the flags fs already has), connects to the
// engine and runs fn with the positional arguments.
func withEngine(ctx context.Context, env *cmdEnv, fs *flag.FlagSet, args []string, minArgs, maxArgs int,
	fn func(c *gridfs.Client, dir string, args []string) error) error {
	dirFlag := gridFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		fs.Usage()
		return fmt.Errorf("%w: wrong number of arguments", errUsage)
	}
	dir, err := gridDir(*dirFlag)
	if err != nil {
		return err
	}
	c, err := dialEngine(ctx, env, dir)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c, dir, pos)
}

// runGridInit creates a grid directory with the default grid.
func runGridInit(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "init", "DIR [--seed IMG|CATALOG-SEED] [flags]")
	seed := fs.String("seed", "", "seed of fossil1 and cpu1: a catalog seed name or a local disk image file, which is imported into the grid's venti")
	name := fs.String("seed-name", "", "name of the imported local seed (default: the file's base name)")
	subnet := fs.String("subnet", "", "the grid's network (default "+grid.DefaultSubnet+")")
	imp := seedImportFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want DIR", errUsage)
	}
	dir, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	opts := grid.InitOptions{Subnet: *subnet, Like: imp.like}
	if *seed != "" {
		st, err := os.Stat(*seed)
		if err != nil && (strings.ContainsRune(*seed, filepath.Separator) || filepath.Ext(*seed) != "") {
			return fmt.Errorf("seed image %s: %w (give an existing disk image file, or a catalog seed name: gridlord init DIR --seed %s)", *seed, err, grid.DefaultSeed)
		}
		if err == nil && st.Mode().IsRegular() {
			opts.SeedPath = *seed
			opts.Seed = *name
			if opts.Seed == "" {
				opts.Seed = grid.SeedNameFromFile(*seed)
			}
		} else {
			opts.Seed = *seed
		}
	}
	g, err := grid.Init(dir, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "grid %s: %s\n", dir, strings.Join(nodeNames(g), ", "))
	if opts.SeedPath == "" {
		return nil
	}
	c, err := dialEngine(ctx, env, dir)
	if err != nil {
		return err
	}
	defer c.Close()
	line := gridfs.QuoteWords(append([]string{"seed", "import", opts.Seed, mustAbs(opts.SeedPath)}, imp.options()...))
	if err := c.Ctl(ctx, line); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "seed %s imported into the grid's venti\n", opts.Seed)
	return nil
}

func nodeNames(g *grid.Grid) []string {
	var s []string
	for _, n := range g.Nodes {
		s = append(s, n.Name)
	}
	return s
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// seedImport holds seed import's flags.
type seedImport struct {
	like, kernel, initrd, append, ready, nic, arch string
	setup                                          multiFlag
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func seedImportFlags(fs *flag.FlagSet) *seedImport {
	s := &seedImport{}
	fs.StringVar(&s.like, "like", "", "catalog seed the image is a copy of (family, roles, kernels; default "+grid.DefaultSeed+")")
	fs.StringVar(&s.kernel, "kernel", "", "boot nodes of this seed with this kernel file (direct boot, for stand-in guests)")
	fs.StringVar(&s.initrd, "initrd", "", "initrd for -kernel")
	fs.StringVar(&s.append, "append", "", "kernel command line for -kernel; {name} becomes the node's name")
	fs.StringVar(&s.ready, "ready", "", "regexp the console shows when a direct-boot node is ready")
	fs.StringVar(&s.nic, "nic", "", "NIC model for direct-boot nodes (e.g. e1000)")
	fs.StringVar(&s.arch, "arch", "", "architecture for direct-boot nodes (amd64, 386)")
	fs.Var(&s.setup, "setup", "KIND:LINE typed on a direct-boot node's console once ready (repeatable)")
	return s
}

// options renders the flags as the ctl command's key=value words.
func (s *seedImport) options() []string {
	var o []string
	add := func(k, v string) {
		if v != "" {
			o = append(o, k+"="+v)
		}
	}
	add("like", s.like)
	add("kernel", mustAbsIf(s.kernel))
	add("initrd", mustAbsIf(s.initrd))
	add("append", s.append)
	add("ready", s.ready)
	add("nic", s.nic)
	add("arch", s.arch)
	for _, l := range s.setup {
		add("setup", l)
	}
	return o
}

func mustAbsIf(p string) string {
	if p == "" {
		return ""
	}
	return mustAbs(p)
}

// runGridCtl returns a command that writes one fixed grid command.
func runGridCtl(verb string) func(ctx context.Context, env *cmdEnv, args []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		fs := newFlags(env, verb, "[-grid DIR]")
		return withEngine(ctx, env, fs, args, 0, 0, func(c *gridfs.Client, _ string, _ []string) error {
			if err := c.Ctl(ctx, verb); err != nil {
				return err
			}
			return printStatus(ctx, env, c, false)
		})
	}
}

// runGridWire returns the wire or unwire command.
func runGridWire(verb string) func(ctx context.Context, env *cmdEnv, args []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		fs := newFlags(env, verb, "[-grid DIR] FROM TO")
		return withEngine(ctx, env, fs, args, 2, 2, func(c *gridfs.Client, _ string, a []string) error {
			return c.Ctl(ctx, gridfs.QuoteWords([]string{verb, a[0], a[1]}))
		})
	}
}

// runGridNode returns a command that writes verb to each named node's ctl.
func runGridNode(verb string) func(ctx context.Context, env *cmdEnv, args []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		fs := newFlags(env, verb, "[-grid DIR] NODE...")
		poweroff := false
		if verb == "stop" {
			fs.BoolVar(&poweroff, "poweroff", false, "power the VMs off at once instead of halting them cleanly")
		}
		return withEngine(ctx, env, fs, args, 1, -1, func(c *gridfs.Client, _ string, nodes []string) error {
			v := verb
			if poweroff {
				v = "poweroff"
			}
			for _, n := range nodes {
				if err := c.NodeCtl(ctx, n, v); err != nil {
					return err
				}
			}
			return printStatus(ctx, env, c, false)
		})
	}
}

// runGridClone clones a node.
func runGridClone(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "clone", "[-grid DIR] NODE NEWNAME")
	return withEngine(ctx, env, fs, args, 2, 2, func(c *gridfs.Client, _ string, a []string) error {
		return c.Ctl(ctx, gridfs.QuoteWords([]string{"clone", a[0], a[1]}))
	})
}

// nodeStatus is one node in "status --json".
type nodeStatus struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	State  string `json:"state"`
	IP     string `json:"ip"`
	Status string `json:"status"`
	// Snapshot names the snapshot the node was spawned from, if any.
	Snapshot string `json:"snapshot,omitempty"`

	defaultPassword bool
}

// gridStatus reads every node's status line.
func gridStatus(ctx context.Context, c *gridfs.Client) ([]nodeStatus, error) {
	b, err := c.ReadFile(ctx, "/grid.json")
	if err != nil {
		return nil, err
	}
	g, err := grid.Parse("grid.json from the engine", b)
	if err != nil {
		return nil, err
	}
	var out []nodeStatus
	for _, n := range g.Nodes {
		line, err := c.ReadFile(ctx, "/nodes/"+n.Name+"/status")
		if err != nil {
			return nil, err
		}
		s := strings.TrimSpace(string(line))
		ns, err := gridfs.ParseNodeStatus(s)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		snap := n.FossilFrom
		if seed, err := g.Seed(n.Seed); err == nil && seed.Snapshot != nil {
			snap = seed.Name
		}
		out = append(out, nodeStatus{Name: n.Name, Kind: string(n.Kind), State: ns.State, IP: n.IP.String(), Status: s, Snapshot: snap, defaultPassword: ns.DefaultPassword})
	}
	return out, nil
}

// printStatus prints the grid's nodes as a table or JSON.
func printStatus(ctx context.Context, env *cmdEnv, c *gridfs.Client, asJSON bool) error {
	st, err := gridStatus(ctx, c)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKIND\tSTATE\tIP\tDETAILS")
	for _, s := range st {
		details := strings.TrimSpace(strings.TrimPrefix(s.Status, s.State))
		if s.Snapshot != "" {
			details = strings.TrimSpace("spawned-from=" + s.Snapshot + " " + details)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.State, s.IP, details)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var def []string
	for _, s := range st {
		if s.defaultPassword {
			def = append(def, s.Name)
		}
	}
	if len(def) > 0 {
		fmt.Fprintf(env.stdout, "default password: %s still use their seed's well-known password (bootes/password on the shipped seed); change it with: gridlord identity\n", strings.Join(def, ", "))
	}
	// Where host tools (vac -h, venti read -h) reach the grid's venti: not
	// always 17034 (see daemon.Engine.VentiAddr).
	if b, err := c.ReadFile(ctx, "venti/stats"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if addr, ok := strings.CutPrefix(l, "addr "); ok {
				fmt.Fprintf(env.stdout, "embedded venti: %s\n", addr)
			}
		}
	}
	return nil
}

// runGridStatus prints the grid's state.
func runGridStatus(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "status", "[-grid DIR] [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	return withEngine(ctx, env, fs, args, 0, 0, func(c *gridfs.Client, _ string, _ []string) error {
		return printStatus(ctx, env, c, *asJSON)
	})
}

// runGridConsole attaches the terminal to a node's console.
func runGridConsole(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "console", "[-grid DIR] NODE")
	return withEngine(ctx, env, fs, args, 1, 1, func(c *gridfs.Client, _ string, a []string) error {
		cons, err := c.OpenCons(ctx, a[0])
		if err != nil {
			return err
		}
		defer cons.Close()
		fmt.Fprintf(env.stderr, "gridlord: console of %s; end input (^D) or interrupt to detach\n", a[0])
		out := make(chan error, 1)
		in := make(chan error, 1)
		go func() { _, err := io.Copy(env.stdout, cons); out <- err }()
		go func() { _, err := io.Copy(cons, env.stdin); in <- err }()
		select {
		case err := <-out:
			return err
		case <-in:
			// Let the reply to the last line arrive.
			select {
			case <-time.After(time.Second):
			case <-out:
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	})
}

// runGridDrawterm starts drawterm on a cpu node, as the engine says it is
// reached (/nodes/NAME/drawterm).
func runGridDrawterm(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "drawterm", "[-grid DIR] [-u USER] NODE")
	bin := fs.String("drawterm", "", "drawterm executable (default: search PATH)")
	user := userFlag(fs)
	text := fs.Bool("G", false, "text mode: no graphics (drawterm-9front only)")
	return withEngine(ctx, env, fs, args, 1, 1, func(c *gridfs.Client, _ string, a []string) error {
		dt, t, err := drawtermFor(ctx, env, c, a[0], *bin, *user)
		if err != nil {
			return err
		}
		t.NoGraphics = *text
		s, err := drawterm.Launch(ctx, dt, t, env.stderr)
		if err != nil {
			return err
		}
		return s.Wait()
	})
}

// userFlag adds -u USER (the Plan 9 user; default the node's host owner).
func userFlag(fs *flag.FlagSet) *string {
	return fs.String("u", "", "Plan 9 user (default: the node's host owner)")
}

// runGridExec runs one command on a cpu node with drawterm and prints its
// output; a failed command (rc's $status not empty) exits 1.
func runGridExec(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "exec", "[-grid DIR] [-u USER] NODE [--] COMMAND...")
	bin := fs.String("drawterm", "", "drawterm-9front executable (default: search PATH)")
	user := userFlag(fs)
	// Flags come before the command: everything after NODE is the
	// command's (grep -n included), with an optional "--" first.
	args, command := splitExecArgs(args)
	return withEngine(ctx, env, fs, args, 1, 1, func(c *gridfs.Client, _ string, a []string) error {
		if len(command) == 0 {
			fs.Usage()
			return fmt.Errorf("%w: no command to run on %s", errUsage, a[0])
		}
		a = append(a, command...)
		dt, t, err := drawtermFor(ctx, env, c, a[0], *bin, *user)
		if err != nil {
			return err
		}
		res, err := drawterm.Exec(ctx, dt, t, strings.Join(a[1:], " "), env.stdout)
		if err != nil {
			return err
		}
		if !res.OK() {
			return &exitError{code: res.ExitCode(), msg: fmt.Sprintf("%s: %s", a[0], res.Status)}
		}
		return nil
	})
}

// splitExecArgs splits exec's arguments at the node name: flags and NODE
// before, the command after (without a leading "--").
func splitExecArgs(args []string) (head, command []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return args[:i], args[i+1:]
		case strings.HasPrefix(a, "-"):
			if !strings.Contains(a, "=") && i+1 < len(args) {
				i++ // the flag's value
			}
		default:
			rest := args[i+1:]
			if len(rest) > 0 && rest[0] == "--" {
				rest = rest[1:]
			}
			return args[:i+1], rest
		}
	}
	return args, nil
}

// drawtermFor finds drawterm and reads the engine's target for node, as
// user (default its host owner) with the password the engine knows, else
// $PASS, else the seed's default for that user, else one typed at the
// terminal.
func drawtermFor(ctx context.Context, env *cmdEnv, c *gridfs.Client, node, bin, user string) (drawterm.Binary, drawterm.Target, error) {
	b, err := c.ReadFile(ctx, "/nodes/"+node+"/drawterm")
	if err != nil {
		return drawterm.Binary{}, drawterm.Target{}, err
	}
	t, err := drawterm.ParseTarget(b)
	if err != nil {
		return drawterm.Binary{}, drawterm.Target{}, fmt.Errorf("node %s: %w", node, err)
	}
	if user != "" && user != t.User {
		t.User, t.Password = user, ""
		if g, err := readGrid(ctx, c); err == nil {
			if n := g.Node(node); n != nil {
				if seed, err := g.Seed(n.Seed); err == nil {
					t.Password = seed.Password(user, t.AuthDom)
				}
			}
		}
	}
	if p := os.Getenv("PASS"); p != "" {
		t.Password = p
	}
	if t.Password == "" {
		if t.Password, err = readPassword(env, fmt.Sprintf("%s@%s password: ", t.User, t.AuthDom)); err != nil {
			return drawterm.Binary{}, drawterm.Target{}, err
		}
	}
	dt, err := drawterm.Find(ctx, bin)
	if err != nil {
		return drawterm.Binary{}, drawterm.Target{}, err
	}
	return dt, t, nil
}

// readGrid reads the model from the engine.
func readGrid(ctx context.Context, c *gridfs.Client) (*grid.Grid, error) {
	b, err := c.ReadFile(ctx, "/grid.json")
	if err != nil {
		return nil, err
	}
	return grid.Parse("grid.json from the engine", b)
}

// runSeedImport imports a disk image into the grid's venti as a seed.
func runSeedImport(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "seed import", "[-grid DIR] [flags] NAME FILE")
	imp := seedImportFlags(fs)
	return withEngine(ctx, env, fs, args, 2, 2, func(c *gridfs.Client, _ string, a []string) error {
		line := gridfs.QuoteWords(append([]string{"seed", "import", a[0], mustAbs(a[1])}, imp.options()...))
		if err := c.Ctl(ctx, line); err != nil {
			return err
		}
		return printSeeds(ctx, env, c, a[0])
	})
}

// runSeedList lists the seeds the grid knows.
func runSeedList(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "seed list", "[-grid DIR]")
	return withEngine(ctx, env, fs, args, 0, 0, func(c *gridfs.Client, _ string, _ []string) error {
		return printSeeds(ctx, env, c, "")
	})
}

// printSeeds prints /seeds (only the line of seed only, if set).
func printSeeds(ctx context.Context, env *cmdEnv, c *gridfs.Client, only string) error {
	b, err := c.ReadFile(ctx, "/seeds")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if only == "" || strings.HasPrefix(l, only+" ") {
			fmt.Fprintln(env.stdout, l)
		}
	}
	return nil
}

// readPassword prompts on stderr and reads one line from stdin (the
// terminal's echo is turned off when stdin is one).
func readPassword(env *cmdEnv, prompt string) (string, error) {
	fmt.Fprint(env.stderr, prompt)
	if f, ok := env.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.stderr)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(env.stdin).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no password: give it in $PASS or type it at the prompt (%v)", err)
	}
	return line, nil
}

// newPassword is a new password from $PASS, else typed twice after prompt.
func newPassword(env *cmdEnv, prompt string) (string, error) {
	if pw := os.Getenv("PASS"); pw != "" {
		return pw, nil
	}
	pw, err := readPassword(env, prompt)
	if err != nil {
		return "", err
	}
	again, err := readPassword(env, "again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return pw, nil
}

// runGridIdentity gives nodes (default: all) a new host owner identity:
// nvram and, with -keyfs, the auth servers' keyfs entry. The password comes
// from $PASS or is asked for twice.
func runGridIdentity(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "identity", "[-grid DIR] [-u USER] [-authdom DOM] [-keyfs=false] [NODE...]")
	user := fs.String("u", "", "host owner (default: the first node's)")
	dom := fs.String("authdom", "", "auth domain (default: the first node's)")
	keyfs := fs.Bool("keyfs", true, "also change the user's key in the auth servers' keyfs (typed at their consoles), so the whole grid takes the password")
	return withEngine(ctx, env, fs, args, 0, -1, func(c *gridfs.Client, _ string, nodes []string) error {
		g, err := readGrid(ctx, c)
		if err != nil {
			return err
		}
		for _, n := range g.Nodes {
			if n.HasVM() && (len(nodes) == 0 || n.Name == nodes[0]) {
				if *user == "" {
					*user = n.User
				}
				if *dom == "" {
					*dom = n.AuthDom
				}
				break
			}
		}
		pw, err := newPassword(env, fmt.Sprintf("new password for %s@%s: ", *user, *dom))
		if err != nil {
			return err
		}
		if err := grid.CheckPassword(*user, pw); err != nil {
			return err
		}
		words := []string{"set", "user=" + *user, "authdom=" + *dom, "password=" + pw}
		if *keyfs {
			words = append(words, "keyfs=yes")
		}
		if err := c.Identity(ctx, gridfs.QuoteWords(append(words, nodes...))); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "new identity %s@%s written; the nodes are stopped and boot with it at their next start\n", *user, *dom)
		if !*keyfs {
			fmt.Fprintln(env.stdout, "the auth servers' keyfs still has the old password: logins fail until it is changed (run again with -keyfs)")
		}
		return nil
	})
}

// runGridOutbound turns the grid's outbound traffic on or off.
func runGridOutbound(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "outbound", "[-grid DIR] on|off")
	return withEngine(ctx, env, fs, args, 1, 1, func(c *gridfs.Client, _ string, a []string) error {
		if err := c.Ctl(ctx, gridfs.QuoteWords([]string{"outbound", a[0]})); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "outbound traffic %s for the grid's guests (a running grid takes it at its next start)\n", a[0])
		return nil
	})
}
