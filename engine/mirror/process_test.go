//go:build unix

package mirror

import (
	"bufio"
	"bytes"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gridlord/engine/vac"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
	"gridlord/testing/testenv"
)

// The process tests run the mirror as "gridlord venti serve", a separate
// process built from ./cmd/gridlord, the way a plan9port venti on another
// machine would be: killed with SIGKILL, it loses whatever it had not
// made durable, and the pusher must make up for it.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// gridlordBin builds the gridlord command once per test binary.
func gridlordBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gridlord-mirror-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gridlord")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(gobin, "build", "-o", binPath, "gridlord/cmd/gridlord")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build gridlord/cmd/gridlord: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a "gridlord venti serve" process.
type proc struct {
	cmd    *exec.Cmd
	waitCh chan error
	stderr *bytes.Buffer
}

// startProc starts "gridlord venti serve" on addr over the store in dir
// and waits until it listens.
func startProc(t testing.TB, addr, dir string) *proc {
	t.Helper()
	cmd := exec.Command(gridlordBin(t), "venti", "serve", "-addr", addr, "-http", "off", "-store", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, waitCh: make(chan error, 1), stderr: new(bytes.Buffer)}
	cmd.Stderr = p.stderr
	var lastErr error
	for range 50 { // the port of a killed server may take a moment to free
		if lastErr = cmd.Start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatal(lastErr)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
	}()
	go func() { p.waitCh <- cmd.Wait(); close(p.waitCh) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.waitCh })
	select {
	case line, ok := <-lines:
		if f := strings.Fields(line); !ok || len(f) < 2 || f[0] != "venti" || f[1] != addr {
			t.Fatalf("venti serve printed %q; stderr:\n%s", line, p.stderr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("venti serve did not start; stderr:\n%s", p.stderr)
	}
	return p
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.waitCh
}

func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.waitCh; err != nil {
		t.Fatalf("venti serve exited with %v on SIGTERM; stderr:\n%s", err, p.stderr)
	}
}

// makeTree writes a few MB of files (random and text, in subdirectories)
// under dir.
func makeTree(t testing.TB, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(42, 42))
	for i := range 8 {
		sub := filepath.Join(dir, []string{"bin", "lib", "sys/src"}[i%3])
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 200<<10+r.IntN(600<<10))
		for j := range b {
			b[j] = byte(r.Uint32())
			if i%2 == 0 {
				b[j] = "plan 9 from bell labs\n"[j%22]
			}
		}
		if err := os.WriteFile(filepath.Join(sub, "file"+string(rune('a'+i))), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sameTree checks that every regular file under want is under got with
// the same bytes.
func sameTree(t testing.TB, want, got string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("restored %s differs from the original: %v", rel, err)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMirrorProcessKill is done-when 3 of issue 14: mirroring to a venti
// that runs as a separate process ("gridlord venti serve" standing in for
// plan9port's venti) catches up after the mirror is killed with SIGKILL
// mid-stream and restarted; afterwards every block of the primary reads
// back from the mirror, and a vac archive made in the primary unvacs from
// the mirror alone.
func TestMirrorProcessKill(t *testing.T) {
	testenv.Integration(t)
	addr, mdir := freeAddr(t), filepath.Join(t.TempDir(), "mirror-store")
	srv := startProc(t, addr, mdir)

	prim := openStore(t, t.TempDir(), store.WithArenaSize(16<<20))
	bs := fill(t, prim, 11, 10000)
	mg, err := New(prim, t.TempDir(), testLog(t), WithSync(1<<20, 100*time.Millisecond), WithBackoff(20*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if _, err := mg.Add("tcp!" + strings.Replace(addr, ":", "!", 1)); err != nil {
		t.Fatal(err)
	}
	mg.Start(ctx)
	total := prim.Stats().Blocks
	waitFor(t, "a quarter of the blocks on the mirror", 2*time.Minute, func() bool { return statusOf(t, mg, addr).Blocks >= total/4 })
	srv.kill9()
	before := statusOf(t, mg, addr)
	if caughtUp(before) {
		t.Fatalf("the mirror caught up before it was killed: %+v (the test needs more blocks)", before)
	}
	waitFor(t, "the pusher to notice", time.Minute, func() bool {
		s := statusOf(t, mg, addr)
		return !s.Connected && s.LastError != ""
	})
	t.Logf("killed at %d of %d blocks; status %+v", before.Blocks, total, statusOf(t, mg, addr))

	// While the mirror is down, the primary gets a vac archive.
	src := t.TempDir()
	makeTree(t, src)
	score, err := vac.Create(ctx, prim, []string{src}, vac.Options{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a few failed reconnects
	srv = startProc(t, addr, mdir)
	start := time.Now()
	waitFor(t, "the mirror to catch up after the restart", 3*time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	after := statusOf(t, mg, addr)
	t.Logf("caught up in %v: %+v", time.Since(start).Round(time.Millisecond), after)

	rep, err := mg.Verify(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Blocks != prim.Stats().Blocks || rep.Blocks <= int64(len(bs)) {
		t.Fatalf("verify: %d blocks of %d, %d missing, %d wrong: %q", rep.Blocks, prim.Stats().Blocks, rep.Missing, rep.Wrong, rep.Problems)
	}
	t.Logf("verify: all %d blocks (%d bytes) read back from the mirror", rep.Blocks, rep.Bytes)

	// The archive, from the mirror alone: a client of that process only.
	cl, err := venti.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	a, err := vac.Open(ctx, cl, score)
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if err := vac.Restore(ctx, a, dest, vac.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 1 {
		t.Fatalf("restored %d top-level entries, want the one directory", len(entries))
	}
	n := sameTree(t, src, filepath.Join(dest, entries[0].Name()))
	t.Logf("vac:%v unvacked from the mirror alone: %d files identical", score, n)
	cl.Close()

	// The mirror's own store is sound.
	srv.stop(t)
	out, err := exec.Command(gridlordBin(t), "venti", "check", "-store", mdir).CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "ok\n") {
		t.Fatalf("venti check of the mirror's store: %v\n%s", err, out)
	}
}
