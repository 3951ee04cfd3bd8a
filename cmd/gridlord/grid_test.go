package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gridlord/engine/daemon"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/plan9disk/ini"
	"gridlord/engine/plan9disk/plan9disktest"
	"gridlord/engine/qemu"
	"gridlord/testing/gridtest"
	"gridlord/testing/standin"
	"gridlord/testing/testenv"
)

// envRunMain makes the test binary act as the gridlord command, so the CLI
// under test can start "gridlord engine" as a detached child (it runs
// os.Executable(), the test binary) and tests can run the CLI as a process.
const envRunMain = "GRIDLORD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// runCLI runs gridlord in this process.
func runCLI(t testing.TB, ctx context.Context, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		log: slog.New(slog.NewTextHandler(&errb, nil))}
	code := runMain(ctx, env, args)
	t.Logf("gridlord %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return out.String(), errb.String(), code
}

// cliProcess is gridlord as a child process.
func cliProcess(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	return cmd
}

// enginePid reads the running engine's pid from the grid's lock file.
func enginePid(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, grid.LockName))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("engine.lock: %q", b)
	}
	return pid
}

// cleanupGrid stops the grid in dir, its engine and any VM left behind.
func cleanupGrid(t testing.TB, dir string) { gridtest.Cleanup(t, dir) }

// states reads every node's state through gridfs.
func states(t *testing.T, ctx context.Context, c *gridfs.Client) map[string]string {
	t.Helper()
	st, err := gridStatus(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, s := range st {
		m[s.Name] = s.State
	}
	return m
}

// logOrder returns the position in the engine log of the first line
// containing all of words, or -1.
func logOrder(log string, words ...string) int {
	for i, l := range strings.Split(log, "\n") {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			return i
		}
	}
	return -1
}

// TestGridEndToEnd brings a grid of stand-in guests (embedded venti,
// fossil1, cpu1) up and down through the CLI, gridfs and a detached engine:
// dependency order, plan9.ini per role on the disks, the engine surviving
// a CLI killed mid-command, a second engine refused, console and guest
// network through gridfs.
func TestGridEndToEnd(t *testing.T) {
	testenv.Tool(t, "qemu-system-x86_64")
	t.Setenv(envRunMain, "1") // inherited by the engine the CLI starts
	t.Setenv(envVentiAddr, "127.0.0.1:0")
	t.Setenv(qemu.EnvAccel, "tcg")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	im, err := standin.Build(ctx, standin.Options{})
	if err != nil {
		t.Fatalf("build stand-in guest: %v", err)
	}
	seedImg := plan9disktest.BuildNativeSmall(t)
	base, err := os.MkdirTemp("", "glg")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "g")
	t.Cleanup(func() {
		cleanupGrid(t, dir)
		b, _ := os.ReadFile(filepath.Join(dir, grid.LogName))
		if bytes.Contains(b, []byte("DATA RACE")) {
			t.Error("the engine process reported a data race (see engine.log)")
		}
		if t.Failed() {
			t.Logf("engine.log:\n%s", b)
		} else {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
					t.Logf("engine.log: %s", l)
				}
			}
		}
		os.RemoveAll(base)
	})

	// init: default grid on a local seed booted as a stand-in; the seed is
	// imported into the venti of the engine init starts.
	listen := "nc -ll -p 564 -e /bin/cat &"
	_, _, code := runCLI(t, ctx, "init", dir, "--seed", seedImg, "--seed-name", "standin",
		"--kernel", im.Kernel, "--initrd", im.Initrd, "--append", im.Append("{name}"),
		"--ready", standin.ReadyLine+` name=\S+ ip=10\.[\s\S]*`+standin.Prompt,
		"--nic", "e1000", "--arch", "amd64",
		"--setup", "fossil+auth:"+listen, "--setup", "fossil+auth:mkdir -p /lib/ndb && echo stock >/lib/ndb/local",
		"--setup", "fossil:"+listen)
	if code != 0 {
		t.Fatal("init failed")
	}
	pid := enginePid(t, dir)
	out, _, code := runCLI(t, ctx, "seed", "list", "-grid", dir)
	if code != 0 || !strings.HasPrefix(out, "standin vac:") {
		t.Fatalf("seed list: %q", out)
	}

	c, err := gridfs.Dial(ctx, filepath.Join(dir, grid.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// up, from a CLI process killed while fossil1 is starting.
	up := cliProcess("up", "-grid", dir)
	up.Stdout, up.Stderr = io.Discard, io.Discard
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	for states(t, ctx, c)["fossil1"] != daemon.StateStarting {
		if ctx.Err() != nil {
			t.Fatal("fossil1 never started")
		}
		time.Sleep(100 * time.Millisecond)
	}
	up.Process.Kill()
	up.Wait()
	t.Log("killed the CLI running up while fossil1 was starting")
	for {
		s := states(t, ctx, c)
		if s["cpu1"] == daemon.StateRunning && s["fossil1"] == daemon.StateRunning {
			break
		}
		if s["cpu1"] == daemon.StateFailed || s["fossil1"] == daemon.StateFailed {
			t.Fatalf("a node failed: %v", s)
		}
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		c.WaitEvent(wctx)
		wcancel()
		if ctx.Err() != nil {
			t.Fatalf("grid did not come up: %v", s)
		}
	}
	if p := enginePid(t, dir); p != pid {
		t.Fatalf("engine pid changed from %d to %d", pid, p)
	}
	if _, _, code := runCLI(t, ctx, "up", "-grid", dir); code != 0 {
		t.Fatal("up on a running grid failed")
	}
	logb, _ := os.ReadFile(filepath.Join(dir, grid.LogName))
	log := string(logb)
	// cpu1 boots once fossil1 serves 564, not before.
	fossilServes := logOrder(log, "node serves its dependants", "node=fossil1", "cpu1")
	cpuStart := logOrder(log, "starting node", "node=cpu1")
	if fossilServes < 0 || cpuStart < 0 || fossilServes > cpuStart {
		t.Fatalf("start order: fossil1 served its dependants at log line %d, cpu1 started at %d", fossilServes, cpuStart)
	}

	// A second engine on the same grid is refused.
	second := cliProcess("engine", "-grid", dir)
	var serr bytes.Buffer
	second.Stderr = &serr
	err = second.Run()
	want := fmt.Sprintf("grid %s is already run by engine pid %d (socket %s)", dir, pid, filepath.Join(dir, grid.SocketName))
	if err == nil || !strings.Contains(serr.String(), want) {
		t.Fatalf("second engine: %v\n%s\nwant %q", err, serr.String(), want)
	}

	out, _, code = runCLI(t, ctx, "status", "-grid", dir, "--json")
	var st []nodeStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 3 {
		t.Fatalf("status --json: %q", out)
	}
	for _, s := range st {
		if s.State != daemon.StateRunning {
			t.Errorf("%s is %s (%s)", s.Name, s.State, s.Status)
		}
	}

	// The engine exits; the VMs keep running, and the engine the next CLI
	// command starts re-adopts them (same QEMU pids, still running).
	vmPids := map[string]string{}
	for _, s := range st {
		for _, f := range strings.Fields(s.Status) {
			if strings.HasPrefix(f, "pid=") && s.Name != "venti" {
				vmPids[s.Name] = f
			}
		}
	}
	c.Close()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		if ctx.Err() != nil {
			t.Fatal("engine did not exit on SIGTERM")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _, code = runCLI(t, ctx, "status", "-grid", dir, "--json")
	st = nil
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 3 {
		t.Fatalf("status --json after engine restart: %q", out)
	}
	for _, s := range st {
		if s.Name == "venti" {
			continue
		}
		if s.State != daemon.StateRunning || !strings.Contains(s.Status, vmPids[s.Name]+" ") {
			t.Errorf("after engine restart %s: %s (was %s)", s.Name, s.Status, vmPids[s.Name])
		}
	}
	if p := enginePid(t, dir); p == pid {
		t.Fatal("engine pid unchanged after restart")
	} else {
		pid = p
	}
	if c, err = gridfs.Dial(ctx, filepath.Join(dir, grid.SocketName)); err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Each disk carries the plan9.ini its role needs.
	g, err := grid.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fossil1", "cpu1"} {
		n := g.Node(name)
		b, err := daemon.ReadDiskIni(filepath.Join(g.NodeDir(n), grid.DiskName))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := ini.Parse(b)
		cfg, _ := g.Config(name)
		for _, kv := range cfg.Ini {
			if v, _ := f.Get(kv.Key); v != kv.Value {
				t.Errorf("%s plan9.ini %s=%q, want %q", name, kv.Key, v, kv.Value)
			}
		}
		if n.Pending() {
			t.Errorf("%s pending after start", name)
		}
	}
	fossilIP := g.Node("fossil1").IP.String()
	if f, _ := ini.Parse(mustIni(t, g, "cpu1")); true {
		if v, _ := f.Get("fs"); v != fossilIP {
			t.Errorf("cpu1 fs=%q, want fossil1's %s", v, fossilIP)
		}
		if v, _ := f.Get("nobootprompt"); v != "tcp" {
			t.Errorf("cpu1 nobootprompt=%q", v)
		}
	}
	if f, _ := ini.Parse(mustIni(t, g, "fossil1")); true {
		if v, _ := f.Get("venti"); v != "tcp!"+g.Network.Host.String()+"!17034" {
			t.Errorf("fossil1 venti=%q", v)
		}
	}

	// The console through gridfs: cpu1 reaches fossil1's 564 over the grid
	// network (the stand-in fossil echoes).
	cons, err := c.OpenCons(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(cons, "echo x$((40+2))y | nc -w 3 %s 564\n", fossilIP)
	seen := expectCons(t, cons, "\nx42y", 30*time.Second)
	if !seen {
		t.Fatal("cpu1 did not get fossil1's echo over the grid network")
	}
	// ... and the embedded venti at the grid's host address, which greets
	// with its version line. The test venti listens on a free host port,
	// but the switch exposes it to guests on 17034, the port plan9.ini
	// names; the free host port itself is not reachable from guests.
	fmt.Fprintf(cons, "sleep 1 | nc -w 3 %s 17034 | head -c 9\n", g.Network.Host)
	if !expectCons(t, cons, "\nventi-0", 30*time.Second) {
		t.Fatal("cpu1 did not reach the embedded venti at the host address")
	}
	cons.Close()

	// fossil1 boots its own root: the engine typed the grid's section into
	// its /lib/ndb/local, after the stock lines, so it knows its peers.
	if logOrder(log, "wrote the grid's ndb entries", "node=fossil1", "file=/lib/ndb/local") < 0 {
		t.Error("the engine log does not say fossil1's ndb entries were written")
	}
	fcons, err := c.OpenCons(ctx, "fossil1")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(fcons, "grep -c -e stock -e 'sys=cpu1 ip=%s' /lib/ndb/local | sed s/^/ndblines=/\n", g.Node("cpu1").IP)
	if !expectCons(t, fcons, "\nndblines=2", 30*time.Second) {
		t.Error("fossil1's /lib/ndb/local lacks the stock line or cpu1's entry")
	}
	fcons.Close()

	// Link changes while cpu1 runs leave it pending; down writes them.
	if _, _, code := runCLI(t, ctx, "unwire", "-grid", dir, "cpu1", "fossil1"); code != 0 {
		t.Fatal("unwire failed")
	}
	if _, _, code := runCLI(t, ctx, "wire", "-grid", dir, "cpu1", "fossil1"); code != 0 {
		t.Fatal("wire failed")
	}
	if b, _ := c.ReadFile(ctx, "/nodes/cpu1/status"); !strings.Contains(string(b), "pending=true") {
		t.Errorf("cpu1 not pending after relinking while it runs: %s", b)
	}

	// down: cpu1 stops before fossil1 is halted.
	if _, _, code := runCLI(t, ctx, "down", "-grid", dir); code != 0 {
		t.Fatal("down failed")
	}
	logb, _ = os.ReadFile(filepath.Join(dir, grid.LogName))
	log = string(logb)
	cpuStopped := logOrder(log, "node stopped", "node=cpu1")
	fossilHalt := logOrder(log, "halting fossil", "node=fossil1")
	fossilStopped := logOrder(log, "node stopped", "node=fossil1")
	if cpuStopped < 0 || fossilHalt < cpuStopped || fossilStopped < fossilHalt {
		t.Fatalf("stop order: cpu1 stopped at line %d, fossil1 halted at %d, stopped at %d", cpuStopped, fossilHalt, fossilStopped)
	}
	if b, _ := c.ReadFile(ctx, "/nodes/cpu1/status"); !strings.Contains(string(b), "pending=false") {
		t.Errorf("cpu1 still pending after it stopped: %s", b)
	}

	// reset and clone of stopped nodes through the CLI.
	if _, _, code := runCLI(t, ctx, "reset", "-grid", dir, "cpu1"); code != 0 {
		t.Fatal("reset failed")
	}
	if _, _, code := runCLI(t, ctx, "clone", "-grid", dir, "cpu1", "cpu2"); code != 0 {
		t.Fatal("clone failed")
	}
	g, err = grid.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := ini.Parse(mustIni(t, g, "cpu2")); true {
		if v, _ := f.Get("sysname"); v != "cpu2" {
			t.Errorf("cpu2 sysname=%q", v)
		}
		if v, _ := f.Get("fs"); v != fossilIP {
			t.Errorf("cpu2 fs=%q", v)
		}
	}
	for name, s := range states(t, ctx, c) {
		want := daemon.StateStopped
		if name == "venti" {
			want = daemon.StateRunning
		}
		if s != want {
			t.Errorf("after down %s is %s", name, s)
		}
	}
}

func mustIni(t *testing.T, g *grid.Grid, name string) []byte {
	t.Helper()
	b, err := daemon.ReadDiskIni(filepath.Join(g.NodeDir(g.Node(name)), grid.DiskName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectCons reads the console until want appears or the timeout.
func expectCons(t *testing.T, r io.Reader, want string, timeout time.Duration) bool {
	t.Helper()
	found := make(chan bool, 1)
	var (
		mu   sync.Mutex
		seen bytes.Buffer
	)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			mu.Lock()
			seen.Write(buf[:n])
			s := seen.String()
			mu.Unlock()
			if strings.Contains(strings.ReplaceAll(s, "\r", ""), want) {
				found <- true
				return
			}
			if err != nil {
				found <- false
				return
			}
		}
	}()
	select {
	case ok := <-found:
		return ok
	case <-time.After(timeout):
		mu.Lock()
		t.Logf("console so far: %q", seen.String())
		mu.Unlock()
		return false
	}
}

// TestConcurrentCLIsShareOneEngine runs several CLI commands at once on a
// grid with no engine: each starts one, one engine takes the grid, and
// every command is served by it instead of failing with the losers.
func TestConcurrentCLIsShareOneEngine(t *testing.T) {
	testenv.Integration(t)
	t.Setenv(envRunMain, "1")
	t.Setenv(envVentiAddr, "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, err := os.MkdirTemp("", "glc") // short: the socket path is bounded
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "g")
	t.Cleanup(func() { cleanupGrid(t, dir); os.RemoveAll(base) })
	if _, _, code := runCLI(t, ctx, "init", dir); code != 0 {
		t.Fatal("init failed")
	}
	const n = 4
	outs := make([]bytes.Buffer, n)
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmds[i] = cliProcess("status", "-grid", dir)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("status %d: %v\n%s", i, err, outs[i].String())
		} else if !strings.Contains(outs[i].String(), "fossil1") || !strings.Contains(outs[i].String(), "embedded venti: 127.0.0.1:") {
			t.Errorf("status %d printed no fossil1 or no venti address:\n%s", i, outs[i].String())
		}
	}
	// A CLI that started an engine, or waited for a concurrent one, names
	// the engine that serves; one that came late found it serving and
	// says nothing. All that name one name the same.
	pid := enginePid(t, dir)
	named := 0
	for i := range outs {
		if !strings.Contains(outs[i].String(), "gridlord: engine pid ") {
			continue
		}
		named++
		if want := fmt.Sprintf("engine pid %d ", pid); !strings.Contains(outs[i].String(), want) {
			t.Errorf("status %d does not report the serving engine (%q):\n%s", i, want, outs[i].String())
		}
	}
	if named == 0 {
		t.Error("no status started or waited for the engine")
	}
}

// TestNoLocaleNoise: no command prints Fyne's locale complaints, whatever
// the C locale is called (the window's toolkit reads it at package init;
// third_party/go-locale reads C.UTF-8 as C).
func TestNoLocaleNoise(t *testing.T) {
	for _, lang := range []string{"C.UTF-8", "C", "POSIX", "C.utf8", "en_US.UTF-8", ""} {
		cmd := cliProcess("help")
		cmd.Env = append(cmd.Env, "LANG="+lang, "LC_ALL=", "LC_MESSAGES=", "LANGUAGE=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("LANG=%s gridlord help: %v\n%s", lang, err, out)
		}
		if bytes.Contains(out, []byte("Fyne error")) || !bytes.HasPrefix(out, []byte("usage: gridlord")) {
			t.Errorf("LANG=%q gridlord help printed:\n%s", lang, out)
		}
	}
}

// TestInitMissingSeed: a seed file that is not there is named as such,
// and no grid directory is left behind.
func TestInitMissingSeed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "g")
	_, errs, code := runCLI(t, context.Background(), "init", dir, "--seed", "/nonexistent/seed.qcow2")
	if code != 1 || !strings.Contains(errs, "seed image /nonexistent/seed.qcow2") || !strings.Contains(errs, "no such file") {
		t.Fatalf("init with a missing seed file: exit %d, %q", code, errs)
	}
	_, errs, code = runCLI(t, context.Background(), "init", dir, "--seed", "nosuch")
	if code != 1 || !strings.Contains(errs, `unknown seed "nosuch"`) || !strings.Contains(errs, "9legacy-grid-seed") {
		t.Fatalf("init with an unknown catalog seed: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, grid.FileName)); err == nil {
		t.Fatal("a refused init left a grid behind")
	}
}
