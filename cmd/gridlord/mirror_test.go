package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
	"gridlord/testing/testenv"
)

// runSub runs one subcommand's run function in-process (the mirror
// commands are not in commands() yet).
func runSub(ctx context.Context, run func(context.Context, *cmdEnv, []string) error, stdout io.Writer, args ...string) error {
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: stdout, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return run(ctx, env, args)
}

func runOut(t *testing.T, run func(context.Context, *cmdEnv, []string) error, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runSub(context.Background(), run, &out, args...)
	return out.String(), err
}

// mirrorStore makes a store of n blocks and returns its directory and the
// blocks' scores.
func mirrorStore(t *testing.T, n int) (string, []venti.Score) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var scores []venti.Score
	for i := range n {
		s, err := st.Write(context.Background(), venti.DataType, bytes.Repeat([]byte{byte(i), byte(i >> 8), 'b'}, 100+i))
		if err != nil {
			t.Fatal(err)
		}
		scores = append(scores, s)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, scores
}

// holds reports whether the venti at addr has every block of scores.
func holds(addr string, scores []venti.Score) bool {
	c, err := venti.Dial(context.Background(), addr)
	if err != nil {
		return false
	}
	defer c.Close()
	for _, s := range scores {
		if _, err := c.Read(context.Background(), s, venti.DataType, venti.MaxBlock); err != nil {
			return false
		}
	}
	return true
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestMirrorCLI drives add, status, verify, run (with -serve), rm.
func TestMirrorCLI(t *testing.T) {
	dir, scores := mirrorStore(t, 300)
	addr := startMemVenti(t)
	out, err := runOut(t, runMirrorAdd, "-store", dir, addr)
	if err != nil || out != "mirror "+addr+" added\n" {
		t.Fatalf("mirror add: %q, %v", out, err)
	}
	if _, err := runOut(t, runMirrorAdd, "-store", dir, addr); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second mirror add: %v", err)
	}
	if _, err := runOut(t, runMirrorAdd, "-store", dir); err == nil {
		t.Fatal("mirror add without an address succeeded")
	}
	out, err = runOut(t, runMirrorStatus, "-store", dir)
	if err != nil || !regexp.MustCompile(addr+`\s+arena 0 offset 64\s+0 blocks, 0 bytes\s+300\s+\d+\s+stopped, answers\s+-`).MatchString(out) {
		t.Fatalf("mirror status before run: %v\n%s", err, out)
	}
	out, err = runOut(t, runMirrorVerify, "-store", dir)
	if err == nil || !strings.Contains(out, "300 missing") || !strings.Contains(out, "BAD: "+addr+": missing: ") {
		t.Fatalf("mirror verify before run: %v\n%s", err, out)
	}

	// Run, serving the store too: a block written there is mirrored.
	ctx, cancel := context.WithCancel(context.Background())
	var runOutput testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runSub(ctx, runMirrorRun, &runOutput, "-store", dir, "-serve", "127.0.0.1:0", "-every", "50ms")
	}()
	waitUntil(t, "the mirror to hold every block", func() bool { return holds(addr, scores) })
	var serveAddr string
	waitUntil(t, "the venti line", func() bool {
		m := regexp.MustCompile(`venti (\S+) store`).FindStringSubmatch(runOutput.String())
		if m != nil {
			serveAddr = m[1]
		}
		return m != nil
	})
	c, err := venti.Dial(ctx, serveAddr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Write(ctx, venti.DataType, []byte("written while mirroring"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	scores = append(scores, s)
	waitUntil(t, "the new block on the mirror", func() bool { return holds(addr, scores) })
	// Its periodic status shows the mirror connected (however fast the
	// pushing went).
	waitUntil(t, "a status table with the mirror connected", func() bool { return strings.Contains(runOutput.String(), "connected") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("mirror run: %v\n%s", err, runOutput.String())
	}
	if !strings.Contains(runOutput.String(), "connected") {
		t.Fatalf("mirror run never printed a connected mirror:\n%s", runOutput.String())
	}

	out, err = runOut(t, runMirrorStatus, "-store", dir, "-probe=false")
	if err != nil || !regexp.MustCompile(addr+`\s+arena 0 offset \d+\s+301 blocks, \d+ bytes\s+0\s+0\s+stopped\s+-`).MatchString(out) {
		t.Fatalf("mirror status after run: %v\n%s", err, out)
	}
	out, err = runOut(t, runMirrorVerify, "-store", dir, "tcp!"+strings.Replace(addr, ":", "!", 1))
	if err != nil || !strings.Contains(out, "301 blocks") || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("mirror verify after run: %v\n%s", err, out)
	}
	// Any venti can be verified against; an empty one misses everything.
	out, err = runOut(t, runMirrorVerify, "-store", dir, startMemVenti(t))
	if err == nil || !strings.Contains(out, "301 missing") {
		t.Fatalf("mirror verify against an empty venti: %v\n%s", err, out)
	}

	// A store in use is refused with a hint.
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runOut(t, runMirrorStatus, "-store", dir); err == nil || !strings.Contains(err.Error(), "stop the engine") {
		t.Fatalf("mirror status of a store in use: %v", err)
	}
	st.Close()

	out, err = runOut(t, runMirrorRm, "-store", dir, addr)
	if err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("mirror rm: %q, %v", out, err)
	}
	if _, err := runOut(t, runMirrorRm, "-store", dir, addr); err == nil {
		t.Fatal("second mirror rm succeeded")
	}
	out, err = runOut(t, runMirrorStatus, "-store", dir)
	if err != nil || !strings.Contains(out, "no mirrors") {
		t.Fatalf("mirror status with none: %q, %v", out, err)
	}
	if _, err := runOut(t, runMirrorRun, "-store", dir); err == nil || !strings.Contains(err.Error(), "no mirrors") {
		t.Fatalf("mirror run with none: %v", err)
	}
}

// TestMirrorBenchCLI runs "bench mirror" small: it must print the ratio
// to its cp baseline and verify the mirror afterwards.
func TestMirrorBenchCLI(t *testing.T) {
	out, err := runOut(t, runBenchMirror, "-size", "4M", "-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"primary: 512 blocks", "baseline cp -r", "mirror / cp: ", "verified afterwards: 512 blocks"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bench mirror output lacks %q:\n%s", want, out)
		}
	}
	t.Log(out)
}

var (
	mirrorBenchSize   = flag.String("mirrorsize", "512M", "BenchmarkMirror: bytes of random 8 KiB blocks to mirror")
	mirrorBenchWindow = flag.Int("mirrorwindow", 64, "BenchmarkMirror: writes in flight")
)

// BenchmarkMirror is "gridlord bench mirror" under go test:
//
//	go test ./cmd/gridlord -run '^$' -bench Mirror -benchtime 1x [-mirrorsize 512M] [-mirrorwindow 64]
//
// It reports the mirror's MB/s of blocks and its ratio to the same run's
// cp -r + sync of the arena files.
func BenchmarkMirror(b *testing.B) {
	size, err := parseSize(*mirrorBenchSize)
	if err != nil {
		b.Fatal(err)
	}
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for b.Loop() {
		res, err := benchMirror(context.Background(), env, b.TempDir(), size, *mirrorBenchWindow)
		if err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		res.print(&out)
		b.Log("\n" + out.String())
		mirrorMBps := float64(res.blockBytes) / 1e6 / res.mirror.Seconds()
		cpMBps := float64(res.logBytes) / 1e6 / res.cp.Seconds()
		b.ReportMetric(mirrorMBps, "mirror-MB/s")
		b.ReportMetric(cpMBps, "cp-MB/s")
		b.ReportMetric(mirrorMBps/cpMBps, "mirror/cp")
	}
}
