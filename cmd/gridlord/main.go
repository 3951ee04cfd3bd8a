// Command gridlord builds and runs a Plan 9 grid on one computer.
//
// With no arguments it opens the Gridlord window; otherwise the first argument
// names a subcommand (see "gridlord help").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of gridlord. Subcommands with their own
// subcommands (for example "venti serve") are registered under the joined
// name ("venti serve").
type command struct {
	name    string // "vac" or "venti serve"
	summary string // one line for "gridlord help"
	run     func(ctx context.Context, env *cmdEnv, args []string) error
}

// cmdEnv is what a subcommand may use instead of process globals.
type cmdEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// commands is the table of every subcommand. Each entry's run function lives
// in the file named after the command group (venti.go, vac.go, disk.go, ...).
func commands() []command {
	return []command{
		{"help", "list the subcommands", nil},
		{"version", "print the gridlord version", runVersion},
		{"disk ini", "print or edit plan9.ini inside a Plan 9 disk image", runDiskIni},
		{"disk nvram", "print or write the nvram record of a Plan 9 disk image", runDiskNvram},
		{"disk clone", "create a qcow2 linked clone of a seed image", runDiskClone},
		{"disk flatten", "write a standalone qcow2 copy of an image and its backing chain", runDiskFlatten},
		{"disk info", "print an image's format, virtual size and backing chain", runDiskInfo},
		{"gui", "open the Gridlord window (the default with no command)", runGUI},
		{"venti serve", "serve the embedded venti from a disk store", runVentiServe},
		{"venti write", "write a block from standard input to a venti; print its score", runVentiWrite},
		{"venti read", "read a block from a venti to standard output", runVentiRead},
		{"venti check", "verify every record and the index of a venti store", runVentiCheck},
		{"venti stats", "print a venti store's statistics", runVentiStats},
		{"venti import", "import the blocks of venti arenas (a file or a disk image's arenas partition)", runVentiImport},
		{"bench venti", "measure venti throughput against SHA-1 speed", runBenchVenti},
		{"vm run", "boot one VM from a JSON spec in the foreground, console on stdout", runVMRun},
		{"vac", "archive files or directory trees into a venti; print vac:<score>", runVac},
		{"unvac", "restore, list (-t) or print (-c) a vac archive", runUnvac},
		{"bench vac", "measure vac and unvac throughput against SHA-1 speed", runBenchVac},
		{"engine", "run a grid's engine daemon in the foreground (the CLI starts it when needed)", runEngine},
		{"init", "create a grid directory with the default grid (venti, fossil1, cpu1)", runGridInit},
		{"up", "start every node of the grid in dependency order", runGridCtl("up")},
		{"down", "stop every node of the grid, dependants first", runGridCtl("down")},
		{"status", "print the state of the grid's nodes", runGridStatus},
		{"start", "start nodes (and what they depend on)", runGridNode("start")},
		{"stop", "stop nodes (and what depends on them)", runGridNode("stop")},
		{"reset", "recreate stopped nodes' disks from their seeds", runGridNode("reset")},
		{"identity", "give nodes a new host owner password (nvram and the auth server's keyfs)", runGridIdentity},
		{"clone", "add a node cloned from a stopped node", runGridClone},
		{"wire", "link a node to one it depends on (cpu to fossil, fossil to venti)", runGridWire("wire")},
		{"unwire", "remove a link between two nodes", runGridWire("unwire")},
		{"rewire", "move a node's link to another node (a cpu to another fossil), in one change", runGridWire("rewire")},
		{"console", "attach to a node's serial console", runGridConsole},
		{"events", "print the engine's event log (starts, readiness, ndb, halts, errors); -f follows it", runGridEvents},
		{"drawterm", "open drawterm on a cpu node", runGridDrawterm},
		{"exec", "run one command on a cpu node (drawterm -G) and print its output and status", runGridExec},
		{"seed import", "store a disk image in the grid's venti as a seed", runSeedImport},
		{"seed build", "build a seed from a Plan 9 CD image or directory by a real install (9legacy recipe)", runSeedBuild},
		{"mirror add", "make a venti a mirror of the grid's venti (every block is pushed to it)", runMirrorAdd},
		{"mirror rm", "stop mirroring to a venti and forget its position", runMirrorRm},
		{"mirror status", "list the venti's mirrors with their position, lag and state", runMirrorStatus},
		{"mirror verify", "check that every block of the venti reads back from a mirror", runMirrorVerify},
		{"mirror run", "push a store's blocks to its mirrors in the foreground until interrupted", runMirrorRun},
		{"bench mirror", "measure mirror throughput against cp -r of the store's arena files", runBenchMirror},
		{"save", "save a stopped node's disk as a named snapshot in the venti (only changed blocks cost space)", runSave},
		{"scores", "list the grid's snapshots, newest first, and the nodes spawned from them", runScores},
		{"spawn", "add a node whose disk is a snapshot's, configured for its place in the grid", runSpawn},
		{"invite", "add a user (fossil user, home, keyfs entry) to a file-system snapshot and save it anew", runInvite},
		{"boom", "destroy a node spawned from a snapshot (the snapshot stays)", runBoom},
		{"failover", "make the grid's fossils use a mirror venti (or off: the grid's own) from their next boot", runFailover},
		{"venti stop", "stop the grid's embedded venti server (for failover to a mirror, or maintenance)", runVentiPower("stop")},
		{"venti start", "start the grid's embedded venti server again", runVentiPower("start")},
		{"outbound", "let the grid's guests reach beyond the grid (on) or not (off, the default)", runGridOutbound},
		{"seed list", "list the seeds the grid knows", runSeedList},
		{"seed download", "download a catalog seed image and verify its checksum", runSeedDownload},
	}
}

// exitError is a command's failure with its own exit status (exec passes
// on the remote command's).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// errUsage marks an error caused by bad command-line use; main exits 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cmdEnv{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})),
	}
	args := os.Args[1:]
	if len(args) == 0 || args[0] == "gui" {
		// The window must run on the main goroutine, which Fyne's init
		// locks to the main OS thread.
		os.Exit(runMain(ctx, env, args))
	}
	// Every other command runs on a goroutine of its own: on the locked
	// main thread each hand-off between the goroutines of a pipeline (vac,
	// unvac, the venti client) would cost an OS thread switch.
	code := make(chan int)
	go func() { code <- runMain(ctx, env, args) }()
	os.Exit(<-code)
}

func logLevel() slog.Level {
	if os.Getenv("GRIDLORD_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// runMain dispatches args to a subcommand and returns the exit status.
func runMain(ctx context.Context, env *cmdEnv, args []string) int {
	if len(args) == 0 {
		args = []string{"gui"}
	}
	cmd, rest := lookup(commands(), args)
	if cmd == nil {
		fmt.Fprintf(env.stderr, "gridlord: unknown command %q; run \"gridlord help\" for the list\n", strings.Join(args, " "))
		return 2
	}
	if cmd.name == "help" {
		printHelp(env.stdout, commands())
		return 0
	}
	if err := cmd.run(ctx, env, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(env.stderr, "gridlord %s: %v\n", cmd.name, err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// lookup finds the longest command name that prefixes args.
func lookup(cmds []command, args []string) (*command, []string) {
	var best *command
	bestLen := 0
	for i := range cmds {
		words := strings.Fields(cmds[i].name)
		if len(words) <= bestLen || len(words) > len(args) {
			continue
		}
		match := true
		for j, w := range words {
			if args[j] != w {
				match = false
				break
			}
		}
		if match {
			best, bestLen = &cmds[i], len(words)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[bestLen:]
}

func printHelp(w io.Writer, cmds []command) {
	sorted := append([]command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	fmt.Fprintln(w, "usage: gridlord [command] [flags] [args]")
	fmt.Fprintln(w, "With no command, gridlord opens its window. Commands:")
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "Run \"gridlord COMMAND -h\" for a command's flags.")
}

// newFlags returns a FlagSet for a subcommand that reports errors instead of exiting.
func newFlags(env *cmdEnv, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("gridlord "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: gridlord %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and wraps a parse error as a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func runVersion(_ context.Context, env *cmdEnv, _ []string) error {
	fmt.Fprintln(env.stdout, "gridlord", version)
	return nil
}
