//go:build !windows

package gridfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"

	"gridlord/engine/console"
	"gridlord/engine/gridfs"
	"gridlord/engine/gridfs/gridfstest"
	"gridlord/testing/testenv"
)

// logBuf is a concurrency-safe log sink tests can wait on.
type logBuf struct {
	testenv.SyncBuffer
	t testing.TB
}

func (l *logBuf) count(s string) int { return strings.Count(l.String(), s) }

// waitLog waits (up to 10s, a hang guard not a performance check) until
// the log holds n occurrences of s.
func (l *logBuf) waitLog(s string, n int) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.count(s) < n {
		if time.Now().After(deadline) {
			l.t.Fatalf("log never showed %q %d times; log:\n%s", s, n, l.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// server is a running gridfs server over a unix socket in a temp dir.
type server struct {
	sock string
	e    *gridfstest.Engine
	log  *logBuf
	stop func() // cancels Serve and waits for it
}

func shortTempDir(t testing.TB) string {
	// Unix socket paths are limited to ~107 bytes; t.TempDir can be long.
	d, err := os.MkdirTemp("", "gridfs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func startServer(t testing.TB) *server {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "engine.sock")
	ln, err := gridfs.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{t: t}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := gridfstest.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gridfs.Serve(ctx, ln, e, log) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return &server{sock: sock, e: e, log: lb, stop: stop}
}

func dial(t testing.TB, s *server) *gridfs.Client {
	t.Helper()
	c, err := gridfs.Dial(context.Background(), s.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readString(t testing.TB, c *gridfs.Client, path string) string {
	t.Helper()
	b, err := c.ReadFile(context.Background(), path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func TestReadFiles(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	s.e.SetStatus("cpu1", "running ip=10.0.9.11 pid=1234 pending=false")
	for path, want := range map[string]string{
		"nodes/cpu1/status":   "running ip=10.0.9.11 pid=1234 pending=false\n",
		"/nodes/venti/status": "running ip=10.0.9.1\n",
		"nodes/cpu1/ini":      "sysname=cpu1\nconsole=0\n",
		"nodes/fossil1/log":   "log of fossil1\n",
		"venti/stats":         "arenas 1\nblocks 42\nbytes 1234567\n",
		"seeds":               "9legacy vac:0123456789abcdef0123456789abcdef01234567 1073741824 qcow2\n",
	} {
		if got := readString(t, c, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	js := readString(t, c, "grid.json")
	if !strings.Contains(js, `"name": "cpu1"`) || !strings.Contains(js, `"status": "running"`) {
		t.Errorf("grid.json lacks cpu1 running:\n%s", js)
	}
	for _, p := range []string{"nodes/nosuch/status", "nosuch", "nodes/cpu1/nosuch"} {
		if _, err := c.ReadFile(context.Background(), p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("read %s: err %v, want os.ErrNotExist", p, err)
		}
	}
	if names, err := c.ReadDir(context.Background(), "nodes"); err != nil || !slices.Equal(names, []string{"venti", "fossil1", "cpu1"}) {
		t.Errorf("ReadDir nodes = %v, %v", names, err)
	}
	// A bigger file than one 9P message still arrives whole.
	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB
	s.e.SetStatus("cpu1", big)
	if got := readString(t, c, "nodes/cpu1/status"); got != big+"\n" {
		t.Errorf("big status: got %d bytes, want %d", len(got), len(big)+1)
	}
}

// TestTree lists directories and checks modes through a raw p9 client.
func TestTree(t *testing.T) {
	s := startServer(t)
	root := rawRoot(t, s)
	list := func(names ...string) []string {
		t.Helper()
		_, d, err := root.Walk(names)
		if err != nil {
			t.Fatalf("walk %v: %v", names, err)
		}
		defer d.Close()
		if _, _, err := d.Open(p9.ReadOnly); err != nil {
			t.Fatalf("open %v: %v", names, err)
		}
		var out []string
		var off uint64
		for {
			ds, err := d.Readdir(off, 4096)
			if err != nil {
				t.Fatalf("readdir %v: %v", names, err)
			}
			if len(ds) == 0 {
				return out
			}
			for _, de := range ds {
				out = append(out, de.Name)
				off = de.Offset
			}
		}
	}
	for _, tc := range []struct {
		dir  []string
		want []string
	}{
		{nil, []string{"ctl", "events", "grid.json", "identity", "log", "nodes", "seeds", "venti"}},
		{[]string{"nodes"}, []string{"venti", "fossil1", "cpu1"}},
		{[]string{"nodes", "cpu1"}, []string{"cons", "ctl", "drawterm", "ini", "log", "status"}},
		{[]string{"venti"}, []string{"mirrors", "stats"}},
	} {
		if got := list(tc.dir...); !slices.Equal(got, tc.want) {
			t.Errorf("ls /%s = %v, want %v", strings.Join(tc.dir, "/"), got, tc.want)
		}
	}
	_, f, err := root.Walk([]string{"nodes", "cpu1", "status"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _, attr, err := f.GetAttr(p9.AttrMaskAll)
	if err != nil {
		t.Fatal(err)
	}
	if attr.Mode != p9.ModeRegular|0o444 {
		t.Errorf("status mode %v, want regular 0444", attr.Mode)
	}
	if _, _, err := f.Open(p9.WriteOnly); !errors.Is(err, linux.EACCES) {
		t.Errorf("open status for writing: %v, want EACCES", err)
	}
}

func TestCtl(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := context.Background()

	if err := c.NodeCtl(ctx, "cpu1", "start\n"); err != nil {
		t.Fatalf("start: %v", err)
	}
	if got := readString(t, c, "nodes/cpu1/status"); got != "running\n" {
		t.Errorf("status after start = %q", got)
	}
	if err := c.Ctl(ctx, "seed import 9front '/my disks/9front.qcow2'"); err != nil {
		t.Fatalf("seed import: %v", err)
	}
	want := []gridfstest.Call{
		{Node: "cpu1", Words: []string{"start"}},
		{Words: []string{"seed", "import", "9front", "/my disks/9front.qcow2"}},
	}
	if got := s.e.Calls(); !slices.EqualFunc(got, want, func(a, b gridfstest.Call) bool {
		return a.Node == b.Node && slices.Equal(a.Words, b.Words)
	}) {
		t.Errorf("calls = %q, want %q", got, want)
	}

	// Errors carry the message, whichever layer refused.
	s.e.FailVerb("stop", errors.New("fossil1 is still serving cpu1; stop cpu1 first"))
	for _, tc := range []struct {
		node, line, msg string
		errno           linux.Errno
	}{
		{"", "frobnicate", `unknown command "frobnicate"; verbs: add, arrange, boom, clone, down, failover, identity, ip, memory, mirror, move, outbound, remove, rename, rewire, save, seed, spawn, unwire, up, venti, wire`, linux.EINVAL},
		{"", "wire cpu1", "usage: wire FROM TO", linux.EINVAL},
		{"", "up\nup\n", "bad ctl command: one command per write (found a newline inside)", linux.EINVAL},
		{"", "", "empty command; verbs: add, arrange, boom, clone, down, failover, identity, ip, memory, mirror, move, outbound, remove, rename, rewire, save, seed, spawn, unwire, up, venti, wire", linux.EINVAL},
		{"", "add cpu cpu1", "node cpu1 already exists", linux.EIO},
		{"fossil1", "stop", "fossil1 is still serving cpu1; stop cpu1 first", linux.EIO},
		{"cpu1", "start now", "usage: start", linux.EINVAL},
	} {
		var err error
		if tc.node == "" {
			err = c.Ctl(ctx, tc.line)
		} else {
			err = c.NodeCtl(ctx, tc.node, tc.line)
		}
		var ce *gridfs.CtlError
		if !errors.As(err, &ce) {
			t.Errorf("%s %q: err %v, want *CtlError", tc.node, tc.line, err)
			continue
		}
		if ce.Msg != tc.msg || ce.Errno != tc.errno || !errors.Is(err, tc.errno) {
			t.Errorf("%s %q: got (%q, %v), want (%q, %v)", tc.node, tc.line, ce.Msg, ce.Errno, tc.msg, tc.errno)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("error text %q lacks %q", err, tc.msg)
		}
	}
	if err := c.NodeCtl(ctx, "nosuch", "start"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ctl of missing node: %v, want os.ErrNotExist", err)
	}
	if err := c.NodeCtl(ctx, "../ctl", "up"); err == nil || !strings.Contains(err.Error(), "bad node name") {
		t.Errorf("node name with slash: %v", err)
	}
	// A fresh reader (e.g. cat on a kernel mount) sees the verbs and the last failure.
	got := readString(t, c, "nodes/fossil1/ctl")
	if !strings.Contains(got, "wire TARGET\n") || !strings.HasSuffix(got, "last error: \"stop\": fossil1 is still serving cpu1; stop cpu1 first\n") {
		t.Errorf("nodes/fossil1/ctl read:\n%s", got)
	}
}

// TestCtlErrorPerFid checks the failed write's message belongs to the fid
// that wrote it and is reported once.
func TestCtlErrorPerFid(t *testing.T) {
	s := startServer(t)
	root := rawRoot(t, s)
	open := func() p9.File {
		_, f, err := root.Walk([]string{"ctl"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.Open(p9.ReadWrite); err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := open(), open()
	defer a.Close()
	defer b.Close()
	if _, err := a.WriteAt([]byte("bogus"), 0); !errors.Is(err, linux.EINVAL) {
		t.Fatalf("write bogus: %v, want EINVAL", err)
	}
	read := func(f p9.File) string {
		buf := make([]byte, 4096)
		n, err := f.ReadAt(buf, 0)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if got := read(b); strings.HasPrefix(got, "error:") {
		t.Errorf("other fid sees the error: %q", got)
	}
	if got := read(a); !strings.HasPrefix(got, `error: unknown command "bogus"`) {
		t.Errorf("writer's fid read %q", got)
	}
	if got := read(a); !strings.HasPrefix(got, "add KIND NAME [SEED]\n") {
		t.Errorf("second read should list verbs, got %q", got)
	}
	if n, err := a.WriteAt([]byte("up\n"), 0); err != nil || n != 3 {
		t.Errorf("write up: %d, %v", n, err)
	}
}

// newHub returns a console hub attached to one end of a pipe; the test
// plays the VM on the other end.
func newHub(t *testing.T) (*console.Hub, net.Conn) { return newHubTB(t) }

func newHubTB(t testing.TB) (*console.Hub, net.Conn) {
	t.Helper()
	h, err := console.New("cpu1", console.Options{ReaderBuffer: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	vmSide, hubSide := net.Pipe()
	h.Attach(hubSide)
	t.Cleanup(func() { h.Close(); vmSide.Close() })
	return h, vmSide
}

// readUntil reads r until the collected bytes contain want.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 1024)
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read: %v after %q (want %q)", err, got, want)
		}
	}
	return string(got)
}

func TestCons(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := context.Background()

	if _, err := c.OpenCons(ctx, "cpu1"); err == nil || !strings.Contains(err.Error(), "no console (status: stopped") {
		t.Fatalf("cons of node without console: %v", err)
	}

	h, vm := newHub(t)
	s.e.SetConsole("cpu1", h)
	if _, err := vm.Write([]byte("Plan 9\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return bytes.Contains(h.Scrollback(), []byte("Plan 9")) })

	cons, err := c.OpenCons(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, cons, "Plan 9\r\n"); got != "Plan 9\r\n" {
		t.Errorf("scrollback = %q", got)
	}
	// A read blocks until the VM prints more.
	type res struct {
		s   string
		err error
	}
	rc := make(chan res, 1)
	go func() {
		buf := make([]byte, 100)
		n, err := cons.Read(buf)
		rc <- res{string(buf[:n]), err}
	}()
	select {
	case r := <-rc:
		t.Fatalf("read returned before the VM printed: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := vm.Write([]byte("cpu1# ")); err != nil {
		t.Fatal(err)
	}
	if r := <-rc; r.err != nil || r.s != "cpu1# " {
		t.Errorf("streamed read = %+v", r)
	}

	// Typing reaches the VM's side of the pipe.
	typed := make(chan string, 1)
	go func() {
		buf := make([]byte, 100)
		n, _ := vm.Read(buf)
		typed <- string(buf[:n])
	}()
	if n, err := cons.Write([]byte("ls /\n")); err != nil || n != 5 {
		t.Fatalf("write cons: %d %v", n, err)
	}
	if got := <-typed; got != "ls /\n" {
		t.Errorf("VM got %q", got)
	}

	// Two readers both see new output.
	cons2, err := c.OpenCons(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, cons2, "cpu1# ")
	vm.Write([]byte("bin\n"))
	readUntil(t, cons, "bin\n")
	readUntil(t, cons2, "bin\n")

	// Closing a console with a read blocked on the server releases the
	// server-side console reader (logged by consFile.Close after the p9
	// server finished the connection's requests).
	before := s.log.count("gridfs cons reader released")
	blocked := make(chan error, 1)
	go func() {
		_, err := cons2.Read(make([]byte, 10))
		blocked <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the read reach the server
	cons2.Close()
	if err := <-blocked; err != io.EOF {
		t.Errorf("read after Close: %v, want io.EOF", err)
	}
	s.log.waitLog("gridfs cons reader released", before+1)

	// The hub closing (VM gone) ends the stream with EOF.
	h.Close()
	buf := make([]byte, 10)
	for {
		_, err := cons.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after hub close: %v, want io.EOF", err)
		}
	}
	cons.Close()
	// Writing a console with no VM connection says so.
	h2, err := console.New("cpu1", console.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	s.e.SetConsole("cpu1", h2)
	cons3, err := c.OpenCons(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	defer cons3.Close()
	if _, err := cons3.Write([]byte("x")); !errors.Is(err, linux.ENOTCONN) {
		t.Errorf("write to detached console: %v, want ENOTCONN", err)
	}
}

// rawRoot attaches to s on a raw p9 connection, closed when the test ends.
func rawRoot(t *testing.T, s *server) p9.File {
	t.Helper()
	conn, err := net.Dial("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pc, err := p9.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	root, err := pc.Attach("/")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// rawFile walks to and opens path on a raw p9 connection.
func rawFile(t *testing.T, s *server, mode p9.OpenFlags, names ...string) p9.File {
	t.Helper()
	root := rawRoot(t, s)
	_, f, err := root.Walk(names)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Open(mode); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFollowReads checks the offset rule that lets Linux v9fs read(2)
// return: a read where the fid's previous read ended never blocks.
func TestFollowReads(t *testing.T) {
	s := startServer(t)
	h, vm := newHub(t)
	s.e.SetConsole("cpu1", h)
	vm.Write([]byte("boot\n"))
	waitFor(t, func() bool { return len(h.Scrollback()) == 5 })

	cons := rawFile(t, s, p9.ReadOnly, "nodes", "cpu1", "cons")
	buf := make([]byte, 100)
	if n, err := cons.ReadAt(buf, 0); err != nil || string(buf[:n]) != "boot\n" {
		t.Fatalf("first read: %q %v", buf[:n], err)
	}
	if n, err := cons.ReadAt(buf, 5); err != io.EOF || n != 0 {
		t.Fatalf("follow-on read with nothing buffered: %d %v, want EOF", n, err)
	}
	vm.Write([]byte("more\n"))
	waitFor(t, func() bool { return len(h.Scrollback()) == 10 })
	if n, err := cons.ReadAt(buf, 5); err != nil || string(buf[:n]) != "more\n" {
		t.Fatalf("follow-on read with data: %q %v", buf[:n], err)
	}

	ev := rawFile(t, s, p9.ReadOnly, "events")
	s.e.Bump()
	n, err := ev.ReadAt(buf, 0)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "changed ") {
		t.Fatalf("events read: %q %v", buf[:n], err)
	}
	end := int64(n)
	if n, err := ev.ReadAt(buf, end); err != io.EOF {
		t.Fatalf("events follow-on read with no change: %q %v, want EOF", buf[:n], err)
	}
	s.e.Bump()
	if n, err := ev.ReadAt(buf, end); err != nil || !strings.HasPrefix(string(buf[:n]), "changed ") {
		t.Fatalf("events follow-on read after a change: %q %v", buf[:n], err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestEvents(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := context.Background()

	woke := make(chan error, 1)
	go func() { woke <- c.WaitEvent(ctx) }()
	select {
	case err := <-woke:
		t.Fatalf("WaitEvent returned with no change: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.e.SetStatus("cpu1", "starting")
	if err := <-woke; err != nil {
		t.Fatalf("WaitEvent: %v", err)
	}

	// Changes while nobody waits are not lost; several coalesce into one.
	s.e.Bump()
	s.e.Bump()
	if err := c.WaitEvent(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := c.WaitEvent(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitEvent with no change: %v, want deadline exceeded", err)
	}
	// The read left pending by the cancelled wait delivers the next change.
	if err := c.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitEvent(ctx); err != nil {
		t.Fatal(err)
	}

	// Raw line format and sequence numbers.
	root := rawRoot(t, s)
	_, f, err := root.Walk([]string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Open(p9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for range 2 {
		s.e.Bump()
		buf := make([]byte, 64)
		n, err := f.ReadAt(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(buf[:n]))
	}
	var a, b int
	if _, err := fmt.Sscanf(lines[0], "changed %d\n", &a); err != nil {
		t.Fatalf("line %q: %v", lines[0], err)
	}
	if _, err := fmt.Sscanf(lines[1], "changed %d\n", &b); err != nil || b != a+1 {
		t.Fatalf("lines %q: want consecutive sequence numbers (%v)", lines, err)
	}
}

func TestConcurrentClients(t *testing.T) {
	s := startServer(t)
	const clients, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := gridfs.Dial(context.Background(), s.sock)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range rounds {
				verb := []string{"start", "stop"}[(i+j)%2]
				if err := c.NodeCtl(context.Background(), "cpu1", verb); err != nil {
					errs <- err
					return
				}
				st, err := c.ReadFile(context.Background(), "nodes/cpu1/status")
				if err != nil {
					errs <- err
					return
				}
				if !strings.HasPrefix(string(st), "running") && !strings.HasPrefix(string(st), "stopped") {
					errs <- errors.New("bad status " + string(st))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(s.e.Calls()); n != clients*rounds {
		t.Errorf("engine saw %d commands, want %d", n, clients*rounds)
	}
}

// TestCtlOutlivesClient: a slow command keeps running when the client that
// wrote it gives up or disappears.
func TestCtlOutlivesClient(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	release := s.e.BlockCommands()
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Ctl(ctx, "up"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ctl with short deadline: %v", err)
	}
	c.Close()
	time.Sleep(20 * time.Millisecond)
	release()
	waitFor(t, func() bool { return len(s.e.Calls()) == 1 })
	c2 := dial(t, s)
	if got := readString(t, c2, "nodes/cpu1/status"); got != "running\n" {
		t.Errorf("after up: %q", got)
	}
}

// TestShutdown: Serve returns promptly on cancel even with blocked readers.
func TestShutdown(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	h, _ := newHub(t)
	s.e.SetConsole("cpu1", h)
	cons, err := c.OpenCons(context.Background(), "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	evErr := make(chan error, 1)
	go func() { evErr <- c.WaitEvent(context.Background()) }()
	consErr := make(chan error, 1)
	go func() {
		_, err := cons.Read(make([]byte, 10))
		consErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.stop()
	if err := <-evErr; err == nil {
		t.Error("WaitEvent after shutdown returned nil")
	}
	if err := <-consErr; err == nil {
		t.Error("cons read after shutdown returned nil error")
	}
	if _, err := os.Stat(s.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after shutdown: %v", err)
	}
	if _, err := gridfs.Dial(context.Background(), s.sock); err == nil || !strings.Contains(err.Error(), "is the engine running?") {
		t.Errorf("dial after shutdown: %v", err)
	}
}

func TestListen(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "engine.sock")
	ln, err := gridfs.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	// A live server: refused with a clear message.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := gridfs.Listen(sock); !errors.Is(err, gridfs.ErrInUse) || !strings.Contains(err.Error(), "another engine") {
		t.Errorf("second Listen: %v, want ErrInUse", err)
	}
	ln.Close()
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the socket: %v", err)
	}

	// A stale socket (its server died without cleaning up) is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln2, err := gridfs.Listen(sock)
	if err != nil {
		t.Fatalf("Listen over stale socket: %v", err)
	}
	ln2.Close()

	// Anything else at the path is left alone.
	if err := os.WriteFile(sock, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := gridfs.Listen(sock); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(sock); string(b) != "precious" {
		t.Errorf("regular file changed: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 { // engine.sock, engine.sock.lock
		t.Errorf("leftovers in socket dir: %v", ents)
	}
}

// TestListenRace: of several simultaneous Listens on one path exactly one
// wins and the others get ErrInUse.
func TestListenRace(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "engine.sock")
	const n = 8
	type res struct {
		ln  net.Listener
		err error
	}
	out := make(chan res, n)
	for range n {
		go func() {
			ln, err := gridfs.Listen(sock)
			if ln != nil {
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
			}
			out <- res{ln, err}
		}()
	}
	wins := 0
	for range n {
		r := <-out
		if r.err == nil {
			wins++
			defer r.ln.Close()
		} else if !errors.Is(r.err, gridfs.ErrInUse) {
			t.Errorf("losing Listen: %v, want ErrInUse", r.err)
		}
	}
	if wins != 1 {
		t.Errorf("%d Listens won, want exactly 1", wins)
	}
}
