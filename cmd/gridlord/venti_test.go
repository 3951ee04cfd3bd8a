//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gridlord/engine/venti"
	"gridlord/testing/testenv"
)

// The venti tests run the gridlord command as a real subprocess: the test
// binary re-executes itself into TestVentiHelperProcess, which calls
// runMain with the arguments it is given, exactly as main does.

const helperEnv = "GRIDLORD_VENTI_TEST_HELPER"

func TestVentiHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("not a test: the gridlord subprocess of the venti tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	os.Exit(runMain(ctx, env, flag.Args()))
}

// gridlordCmd returns a command that runs "gridlord args...".
func gridlordCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestVentiHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	return cmd
}

// runGridlord runs "gridlord args..." to completion.
func runGridlord(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := gridlordCmd(args...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// server is a "gridlord venti serve" subprocess.
type server struct {
	cmd    *exec.Cmd
	addr   string
	waitCh chan error
	stderr *bytes.Buffer
}

func startServer(t *testing.T, dir string) *server {
	t.Helper()
	cmd := gridlordCmd("venti", "serve", "-addr", "127.0.0.1:0", "-http", "off", "-store", dir,
		"-arenasize", "1048576", "-checkpoint", "3000000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, waitCh: make(chan error, 1), stderr: new(bytes.Buffer)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
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
	go func() { s.waitCh <- cmd.Wait(); close(s.waitCh) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-s.waitCh })
	select {
	case line, ok := <-lines:
		f := strings.Fields(line)
		if !ok || len(f) < 2 || f[0] != "venti" {
			t.Fatalf("venti serve printed %q; stderr:\n%s", line, s.stderr)
		}
		s.addr = f[1]
	case <-time.After(60 * time.Second):
		t.Fatalf("venti serve did not start; stderr:\n%s", s.stderr)
	}
	return s
}

func (s *server) kill9(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.waitCh
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.waitCh:
		if err != nil {
			t.Fatalf("venti serve exited with %v on SIGTERM; stderr:\n%s", err, s.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("venti serve did not stop on SIGTERM")
	}
}

// crashBlock is block (round, worker, i) of the crash test: 1..16 KiB.
func crashBlock(round, worker, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(round)<<32|uint64(worker)<<20|uint64(i), 99))
	b := make([]byte, 1+r.IntN(16<<10))
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}

type blockID struct{ round, worker, i int }

func checkStore(t *testing.T, dir string) string {
	t.Helper()
	out, errOut, err := runGridlord(t, nil, "venti", "check", "-store", dir)
	if err != nil || !strings.HasSuffix(out, "ok\n") || strings.Contains(out, "BAD") {
		t.Fatalf("venti check: %v\n%s%s", err, out, errOut)
	}
	return out
}

// TestVentiCrash kills the server with SIGKILL at random points while
// several clients write and Tsync, restarts it, and checks that every
// block a completed Tsync covered reads back byte-identical and that
// "venti check" finds nothing wrong.
func TestVentiCrash(t *testing.T) {
	testenv.Integration(t)
	dir := filepath.Join(t.TempDir(), "store")
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const rounds, workers, syncEvery = 5, 4, 100
	var confirmed []struct {
		id blockID
		s  venti.Score
	}
	total := 0
	for round := 0; round < rounds; round++ {
		srv := startServer(t, dir)
		c, err := venti.Dial(ctx, srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		// Everything a completed Tsync covered, in earlier rounds, survived.
		for _, b := range confirmed {
			got, err := c.Read(ctx, b.s, venti.DataType, venti.MaxBlock)
			if err != nil {
				t.Fatalf("round %d: block %+v lost after kill -9: %v", round, b.id, err)
			}
			if !bytes.Equal(got, crashBlock(b.id.round, b.id.worker, b.id.i)) {
				t.Fatalf("round %d: block %+v reads back different bytes", round, b.id)
			}
		}
		killAt := int64(800 + rng.IntN(2200))
		var written atomic.Int64
		var mu sync.Mutex
		var wg sync.WaitGroup
		killed := make(chan struct{})
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var pending []blockID
				var scores []venti.Score
				for i := 0; ; i++ {
					d := crashBlock(round, w, i)
					s, err := c.Write(ctx, venti.DataType, d)
					if err != nil {
						return // the server is gone
					}
					pending, scores = append(pending, blockID{round, w, i}), append(scores, s)
					if written.Add(1) == killAt {
						// Kill a moment later, while the other writers go on.
						delay := time.Duration(rng.IntN(20)) * time.Millisecond
						go func() {
							time.Sleep(delay)
							srv.kill9(t)
							close(killed)
						}()
					}
					if len(pending) == syncEvery {
						if err := c.Sync(ctx); err != nil {
							return
						}
						mu.Lock()
						for k, id := range pending {
							confirmed = append(confirmed, struct {
								id blockID
								s  venti.Score
							}{id, scores[k]})
						}
						mu.Unlock()
						pending, scores = pending[:0], scores[:0]
					}
				}
			}()
		}
		select {
		case <-killed:
		case <-time.After(5 * time.Minute):
			t.Fatalf("round %d: the writers never reached %d blocks", round, killAt)
		}
		wg.Wait()
		c.Close()
		total += int(written.Load())
		t.Logf("round %d: killed after %d writes; %d blocks confirmed by Tsync so far", round, killAt, len(confirmed))
		// A crash leaves nothing check calls damage (a torn tail is a note).
		t.Logf("check after kill -9:\n%s", checkStore(t, dir))
	}
	if total < 4000 || len(confirmed) < 1000 {
		t.Fatalf("only %d blocks written, %d confirmed: the test wrote too little", total, len(confirmed))
	}

	srv := startServer(t, dir)
	c, err := venti.Dial(ctx, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range confirmed {
		got, err := c.Read(ctx, b.s, venti.DataType, venti.MaxBlock)
		if err != nil || !bytes.Equal(got, crashBlock(b.id.round, b.id.worker, b.id.i)) {
			t.Fatalf("final: block %+v: %v", b.id, err)
		}
	}
	c.Close()
	srv.stop(t)
	out := checkStore(t, dir)
	if strings.Contains(out, "note:") {
		t.Fatalf("venti check after a clean stop still has notes:\n%s", out)
	}
	t.Logf("%d writes, %d confirmed blocks verified; final check:\n%s", total, len(confirmed), out)
}

// TestVentiCorruptByte flips one byte of a stored block: reading it must
// fail with an error naming the score, and "venti check" must report it.
func TestVentiCorruptByte(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	srv := startServer(t, dir)
	data := bytes.Repeat([]byte("corrupt me "), 300)
	out, errOut, err := runGridlord(t, data, "venti", "write", "-h", srv.addr, "-t", "dir")
	if err != nil {
		t.Fatalf("venti write: %v\n%s", err, errOut)
	}
	score := strings.TrimSpace(out)
	if score != venti.Sum(data).String() {
		t.Fatalf("venti write printed %q, want %v", score, venti.Sum(data))
	}
	other := []byte("an innocent bystander")
	if _, errOut, err := runGridlord(t, other, "venti", "write", "-h", srv.addr); err != nil {
		t.Fatalf("venti write: %v\n%s", err, errOut)
	}
	got, errOut, err := runGridlord(t, nil, "venti", "read", "-h", srv.addr, "-t", "2", score)
	if err != nil || got != string(data) {
		t.Fatalf("venti read before damage: %v\n%s", err, errOut)
	}
	srv.stop(t)

	// Flip a byte in the middle of the block's record (stored compressed:
	// find it by the score in its header, the payload size after the type
	// and flags bytes; see engine/venti/store/record.go).
	arena := filepath.Join(dir, "arena.000000")
	b, err := os.ReadFile(arena)
	if err != nil {
		t.Fatal(err)
	}
	sum := venti.Sum(data)
	i := bytes.Index(b, sum[:])
	if i < 8 {
		t.Fatal("block not found in the arena file")
	}
	rec := b[i-8:]
	if rec[5] != 1 {
		t.Fatalf("record flags %d: the block was not stored compressed", rec[5])
	}
	b[i-8+36+int(binary.BigEndian.Uint16(rec[6:]))/2] ^= 0x01
	if err := os.WriteFile(arena, b, 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, err = runGridlord(t, nil, "venti", "check", "-store", dir)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "BAD") || !strings.Contains(out, score) {
		t.Fatalf("venti check of a damaged store: %v; want exit 1 and a report naming %s:\n%s%s", err, score, out, errOut)
	}
	t.Logf("venti check:\n%s", out)

	srv = startServer(t, dir)
	_, errOut, err = runGridlord(t, nil, "venti", "read", "-h", srv.addr, "-t", "dir", score)
	if err == nil || !strings.Contains(errOut, score) || !strings.Contains(errOut, "corrupt") {
		t.Fatalf("venti read of a damaged block: %v; want an error naming %s:\n%s", err, score, errOut)
	}
	t.Logf("venti read: %s", errOut)
	got, errOut, err = runGridlord(t, nil, "venti", "read", "-h", srv.addr, venti.Sum(other).String())
	if err != nil || got != string(other) {
		t.Fatalf("venti read of an undamaged block: %v\n%s", err, errOut)
	}
	srv.stop(t)
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]venti.Type{"data": 13, "dir": 2, "root": 1, "pointer0": 3, "pointer6": 9, "13": 13, "5": 5} {
		got, err := parseType(in)
		if err != nil || got != want {
			t.Errorf("parseType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "10", "14", "pointer7", "ptr", "-1", "300"} {
		if _, err := parseType(in); err == nil {
			t.Errorf("parseType(%q) succeeded", in)
		}
	}
}
