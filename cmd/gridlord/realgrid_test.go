package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gridlord/app"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/qemu"
	"gridlord/testing/testenv"
)

// realGrid is a grid of the shipped 9legacy seed driven through the CLI.
type realGrid struct {
	t   *testing.T
	ctx context.Context
	dir string
}

// newRealGrid makes the default grid (the shipped real Plan 9 seed) in a
// fresh directory; its engine is started by the first command.
func newRealGrid(t *testing.T, ctx context.Context) *realGrid {
	t.Helper()
	testenv.Tool(t, "qemu-system-i386")
	testenv.Tool(t, "drawterm")
	t.Setenv(envRunMain, "1") // inherited by the engine the CLI starts
	t.Setenv(envVentiAddr, "127.0.0.1:0")
	t.Setenv(qemu.EnvAccel, "tcg")
	t.Setenv("PASS", "")
	base, err := os.MkdirTemp("", "glr")
	if err != nil {
		t.Fatal(err)
	}
	g := &realGrid{t: t, ctx: ctx, dir: filepath.Join(base, "g")}
	t.Cleanup(func() {
		cleanupGrid(t, g.dir)
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(g.dir, grid.LogName))
			t.Logf("engine.log:\n%s", b)
			logs, _ := filepath.Glob(filepath.Join(g.dir, "nodes", "*", qemu.FileConsoleLog))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("console log %s (tail):\n%s", l, b)
			}
		}
		os.RemoveAll(base)
	})
	if _, _, code := runCLI(t, ctx, "init", g.dir); code != 0 {
		t.Fatal("init failed")
	}
	return g
}

// cli runs gridlord on the grid and fails the test on a non-zero exit.
func (g *realGrid) cli(args ...string) string {
	g.t.Helper()
	out, errs, code := runCLI(g.t, g.ctx, append([]string{args[0], "-grid", g.dir}, args[1:]...)...)
	if code != 0 {
		g.t.Fatalf("gridlord %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// exec runs an rc command on node and returns its output.
func (g *realGrid) exec(node, command string) string {
	g.t.Helper()
	return g.cli("exec", node, "--", command)
}

// client dials the grid's engine.
func (g *realGrid) client() *gridfs.Client {
	g.t.Helper()
	c, err := gridfs.Dial(g.ctx, filepath.Join(g.dir, grid.SocketName))
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { c.Close() })
	return c
}

func nonce(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

var scoreRE = regexp.MustCompile(`vac:[0-9a-f]{40}`)

// archiveListing types "fsys main snap -a" at node's fossil and waits, up
// to wait, for an archive in the venti at addr whose listing (unvac -t)
// has file, which was written before; it returns fossil/last before, the
// archive and its listing. The first archive to end need not be this
// one: a fossil booted on a later day than its last archive starts a
// catch-up archive of its own at boot, and that can end after snap -a.
func (g *realGrid) archiveListing(node, addr, file string, wait time.Duration) (before, after, list string) {
	g.t.Helper()
	before = scoreRE.FindString(g.exec(node, "fossil/last /dev/sdC0/fossil"))
	g.exec(node, "echo fsys main snap -a >>/srv/fscons")
	seen := []string{before}
	for deadline := time.Now().Add(wait); ; {
		if a := scoreRE.FindString(g.exec(node, "fossil/last /dev/sdC0/fossil")); a != "" && a != seen[len(seen)-1] {
			seen = append(seen, a)
			out, errs, code := runCLI(g.t, g.ctx, "unvac", "-h", addr, "-t", a)
			if code != 0 {
				g.t.Fatalf("unvac -t %s from %s: exit %d: %s", a, addr, code, errs)
			}
			if strings.Contains(out, "active"+file) {
				return before, a, out
			}
			g.t.Logf("archive %s does not list %s (an archive fossil started itself); waiting for the next", a, file)
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no archive listing %s %v after snap -a on %s; fossil/last said %v", file, wait, node, seen)
		}
		time.Sleep(3 * time.Second)
	}
}

// TestRealGrid boots the default grid from the shipped real 9legacy seed
// and runs through what a user does with it: up, exec on the cpu, a file
// written on the fossil read through the cpu (its root), the ndb entries
// the engine typed read back from the nodes, an archive of the fossil into
// the grid's venti listed by unvac from there, and down with clean halts.
func TestRealGrid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := newRealGrid(t, ctx)

	start := time.Now()
	g.cli("up")
	t.Logf("up of venti + fossil1 + cpu1 from the real seed: %v", time.Since(start).Round(time.Millisecond))
	c := g.client()
	for name, want := range map[string]string{"fossil1": "running", "cpu1": "running", "venti": "running"} {
		if got := states(t, ctx, c)[name]; got != want {
			t.Fatalf("%s is %s after up, want %s", name, got, want)
		}
	}

	if out := g.exec("cpu1", "cat /dev/sysname"); out != "cpu1" {
		t.Fatalf("exec cpu1 -- cat /dev/sysname = %q, want cpu1", out)
	}
	// A failing command: its output, rc's status, exit 1.
	out, errs, code := runCLI(t, ctx, "exec", "-grid", g.dir, "cpu1", "--", "ls", "/nonexistent")
	if code != 1 || !strings.Contains(out, "does not exist") || !strings.Contains(errs, "ls") {
		t.Fatalf("failing exec: exit %d, out %q, err %q", code, out, errs)
	}

	// A file written on fossil1 is read through cpu1, which roots from it.
	n := nonce(t)
	file := "/usr/gridlord-" + n
	g.exec("fossil1", "echo written on fossil1 "+n+" >"+file)
	if got := g.exec("cpu1", "cat "+file); got != "written on fossil1 "+n+"\n" {
		t.Fatalf("cpu1 reads %s as %q", file, got)
	}

	// ndb: the grid's section, typed at fossil1's console at boot, read
	// back from both nodes (cpu1 shares fossil1's /lib/ndb).
	for _, node := range []string{"fossil1", "cpu1"} {
		local := g.exec(node, "cat /lib/ndb/local")
		for _, want := range []string{"# gridlord grid grid: begin", "sys=fossil1 ip=10.0.9.10", "sys=cpu1 ip=10.0.9.11", "# gridlord grid grid: end"} {
			if !strings.Contains(local, want) {
				t.Errorf("%s: /lib/ndb/local has no %q:\n%s", node, want, local)
			}
		}
	}
	if auth := g.exec("fossil1", "cat /lib/ndb/auth"); !strings.Contains(auth, "hostid=bootes") {
		t.Errorf("fossil1: /lib/ndb/auth has no speaks-for section:\n%s", auth)
	}

	// An archive into the grid's venti: fossil/last changes, and unvac
	// lists the new tree from the grid's venti, with the new file.
	stats, err := c.ReadFile(ctx, "/venti/stats")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(strings.SplitN(string(stats), "\n", 2)[0], "addr ")
	before, after, list := g.archiveListing("fossil1", addr, file, 3*time.Minute)
	entries := strings.Count(list, "\n")
	if entries < 4000 || !strings.Contains(list, "active/lib/namespace") {
		t.Fatalf("unvac -t %s from the grid's venti: %d entries", after, entries)
	}
	t.Logf("archive %s -> %s: %d entries", before, after, entries)

	// The window's drawterm path, headless: it logs in and its rc answers.
	testDrawtermFromApp(t, ctx, g)

	// Reset identity: a new password for bootes, in the nvram of both
	// nodes and in fossil1's keyfs; after the next boot exec logs in with
	// the new password and not with the old.
	t.Setenv("PASS", "n3w-grid-pass")
	g.cli("identity")
	t.Setenv("PASS", "")
	g.cli("up")
	if out := g.exec("cpu1", "cat /dev/sysname"); out != "cpu1" {
		t.Fatalf("after reset identity, exec cpu1 with the grid's new password = %q", out)
	}
	t.Setenv("PASS", "password")
	if out, errs, code := runCLI(t, ctx, "exec", "-grid", g.dir, "cpu1", "--", "cat", "/dev/sysname"); code == 0 {
		t.Fatalf("after reset identity the old password still logs in: %q %q", out, errs)
	}
	t.Setenv("PASS", "n3w-grid-pass")
	if out := g.exec("cpu1", "cat /dev/user"); out != "bootes" {
		t.Fatalf("exec cpu1 with $PASS set to the new password = %q", out)
	}
	t.Setenv("PASS", "")

	g.cli("down")
	for name, st := range states(t, ctx, c) {
		if name != "venti" && st != "stopped" {
			t.Errorf("%s is %s after down", name, st)
		}
	}
	elog, _ := os.ReadFile(filepath.Join(g.dir, grid.LogName))
	if bytes.Contains(elog, []byte("fshalt did not finish")) || !bytes.Contains(elog, []byte("halting fossil")) {
		t.Errorf("fossil1 was not halted cleanly (engine log has no clean fshalt)")
	}
}

// testDrawtermFromApp opens drawterm on cpu1 as the window does (app over
// gridfs), in text mode, types a command and reads its answer.
func testDrawtermFromApp(t *testing.T, ctx context.Context, g *realGrid) {
	t.Helper()
	r, err := app.DialRemote(ctx, g.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a := app.New(r, app.Options{})
	out := &testenv.SyncBuffer{}
	dctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	in, s, err := a.DrawtermText(dctx, "cpu1", out)
	if err != nil {
		t.Fatalf("drawterm from the app: %v", err)
	}
	n := nonce(t)
	want := "drawterm-on-cpu1-" + n
	for !strings.Contains(out.String(), want) && dctx.Err() == nil {
		in.Write([]byte("echo drawterm-on-^`{cat /dev/sysname}^-" + n + "\n"))
		time.Sleep(2 * time.Second)
	}
	in.Write([]byte("exit\n"))
	in.Close()
	select {
	case <-s.Done():
	case <-dctx.Done():
	}
	if !strings.Contains(out.String(), want) {
		t.Fatalf("drawterm's output has no %q:\n%s", want, out.String())
	}
}

// TestRealGridCloneRewire clones a cpu and a fossil+auth node of the real
// seed and rewires a cpu to the second fossil: two cpus on one fossil both
// answer exec as themselves; the rewired cpu's next boot roots from the new
// fossil, shown by a file that exists only there.
func TestRealGridCloneRewire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	g := newRealGrid(t, ctx)
	g.cli("clone", "cpu1", "cpu2")
	g.cli("start", "cpu1")

	// From cpu1's own shell: mount the grid's tree over 9P2000, list the
	// nodes, and start cpu2 by writing to its ctl file.
	out := g.exec("cpu1", "srv tcp!10.0.9.254!564 gridlord /n/grid && ls /n/grid/nodes && cat /n/grid/nodes/cpu2/status && echo start >/n/grid/nodes/cpu2/ctl && cat /n/grid/nodes/cpu2/status")
	for _, want := range []string{"/n/grid/nodes/cpu1", "/n/grid/nodes/cpu2", "/n/grid/nodes/fossil1", "/n/grid/nodes/venti", "stopped kind=cpu", "running kind=cpu"} {
		if !strings.Contains(out, want) {
			t.Fatalf("cpu1 driving the grid through its 9P2000 tree printed no %q:\n%s", want, out)
		}
	}
	if st := states(t, ctx, g.client())["cpu2"]; st != "running" {
		t.Fatalf("cpu2 is %s after cpu1 started it through the grid's tree", st)
	}
	for _, cpu := range []string{"cpu1", "cpu2"} {
		if out := g.exec(cpu, "cat /dev/sysname"); out != cpu {
			t.Fatalf("exec %s -- cat /dev/sysname = %q", cpu, out)
		}
	}
	g.cli("down")

	// A clone of the (booted) fossil+auth node: its own address and MAC,
	// a copy of fossil1's disk.
	g.cli("clone", "fossil1", "fossil2")
	c := g.client()
	gr, err := readGrid(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	f1, f2 := gr.Node("fossil1"), gr.Node("fossil2")
	if f2 == nil || f2.IP == f1.IP || f2.MAC == f1.MAC || f2.Kind != f1.Kind {
		t.Fatalf("fossil2 = %+v (fossil1 %+v)", f2, f1)
	}
	g.cli("rewire", "cpu2", "fossil2") // one change: fossil1's root link goes
	if gr, err = readGrid(ctx, c); err != nil {
		t.Fatal(err)
	}
	if r := gr.Target(gr.Node("cpu2"), grid.LinkRoot); r == nil || r.Name != "fossil2" {
		t.Fatalf("cpu2 roots from %v after rewire", r)
	}
	g.cli("start", "fossil2")
	n := nonce(t)
	only := "/usr/only-on-fossil2-" + n
	g.exec("fossil2", "echo "+n+" >"+only)
	g.cli("start", "cpu1", "cpu2")
	if out := g.exec("cpu2", "cat "+only); out != n+"\n" {
		t.Fatalf("cpu2, rewired to fossil2, reads %s as %q", only, out)
	}
	if out, _, code := runCLI(t, ctx, "exec", "-grid", g.dir, "cpu1", "--", "cat", only); code == 0 {
		t.Fatalf("cpu1 (on fossil1) reads fossil2's file: %q", out)
	}
	if out := g.exec("cpu2", "cat /dev/sysname"); out != "cpu2" {
		t.Fatalf("cpu2 after rewire: sysname %q", out)
	}
	g.cli("down")
}
