package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gridlord/engine/venti"
)

// startMemVenti serves a memory store on a loopback port for the test.
func startMemVenti(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		venti.NewServer(venti.NewMemStore()).Serve(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// gridlord runs a subcommand in-process and returns its exit status and
// output.
func gridlord(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code := runMain(context.Background(), env, args)
	return code, stdout.String(), stderr.String()
}

func TestVacUnvacCLI(t *testing.T) {
	addr := startMemVenti(t)
	src := t.TempDir()
	tree := filepath.Join(src, "tree")
	os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	content := bytes.Repeat([]byte("gridlord vac "), 5000)
	os.WriteFile(filepath.Join(tree, "sub", "file"), content, 0o640)
	os.WriteFile(filepath.Join(tree, "small"), []byte("small\n"), 0o644)
	out := filepath.Join(src, "tree.vac")

	code, stdout, stderr := gridlord(t, "vac", "-h", addr, "-o", out, tree)
	if code != 0 {
		t.Fatalf("vac: exit %d: %s", code, stderr)
	}
	saved, _ := os.ReadFile(out)
	if !strings.HasPrefix(stdout, "vac:") || string(saved) != stdout {
		t.Fatalf("vac printed %q and wrote %q", stdout, saved)
	}

	code, stdout, stderr = gridlord(t, "unvac", "-h", addr, "-t", out)
	if code != 0 || stdout != "tree/\ntree/small\ntree/sub/\ntree/sub/file\n" {
		t.Fatalf("unvac -t: exit %d, %q, %s", code, stdout, stderr)
	}
	code, stdout, _ = gridlord(t, "unvac", "-h", addr, "-t", "-v", out, "tree/sub/file")
	if code != 0 || !strings.Contains(stdout, "-rw-r----- ") || !strings.Contains(stdout, " 65000 ") {
		t.Fatalf("unvac -t -v: exit %d, %q", code, stdout)
	}
	code, stdout, stderr = gridlord(t, "unvac", "-h", addr, "-c", out, "tree/sub/file")
	if code != 0 || stdout != string(content) {
		t.Fatalf("unvac -c: exit %d, %d bytes, %s", code, len(stdout), stderr)
	}
	dst := t.TempDir()
	code, _, stderr = gridlord(t, "unvac", "-h", addr, "-C", dst, strings.TrimSpace(string(saved)))
	if code != 0 {
		t.Fatalf("unvac: exit %d: %s", code, stderr)
	}
	got, err := os.ReadFile(filepath.Join(dst, "tree", "sub", "file"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("restored file: %d bytes, %v", len(got), err)
	}
	// Incremental against the first archive.
	code, stdout, stderr = gridlord(t, "vac", "-h", addr, "-d", out, tree)
	if code != 0 || !strings.HasPrefix(stdout, "vac:") {
		t.Fatalf("vac -d: exit %d: %q %s", code, stdout, stderr)
	}
	// Bad use.
	if code, _, _ := gridlord(t, "unvac", "-h", addr); code != 2 {
		t.Errorf("unvac without archive: exit %d, want 2", code)
	}
	if code, _, stderr := gridlord(t, "unvac", "-h", addr, "-t", out, "nonesuch"); code != 1 || !strings.Contains(stderr, "nonesuch") {
		t.Errorf("unvac of a missing path: exit %d, %s", code, stderr)
	}
}

func TestBenchVacRuns(t *testing.T) {
	code, stdout, stderr := gridlord(t, "bench", "vac", "-size", "2M")
	if code != 0 {
		t.Fatalf("bench vac: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"sha1 (one core)", "vac", "re-vac (all dedup)", "unvac to /dev/null", "unvac to a file"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("bench vac output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestBenchVacCLIRuns runs "bench vac -cli": the server, vac and unvac as
// child processes (this test binary running main).
func TestBenchVacCLIRuns(t *testing.T) {
	t.Setenv(envRunMain, "1")
	code, stdout, stderr := gridlord(t, "bench", "vac", "-cli", "-size", "2M")
	if code != 0 {
		t.Fatalf("bench vac -cli: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"gridlord venti serve process", "sha1 (one core)", "re-vac (all dedup)", "unvac to /dev/null", "unvac to a file", "vac:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("bench vac -cli output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestBenchSeed runs "bench venti -seed" on a file of text (no arenas):
// the store must take less room than the file, thanks to compression.
func TestBenchSeed(t *testing.T) {
	img := filepath.Join(t.TempDir(), "text.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte("a seed that compresses well\n"), 40000), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := gridlord(t, "bench", "venti", "-seed", img, "-store", filepath.Join(t.TempDir(), "store"))
	if code != 0 {
		t.Fatalf("bench venti -seed: exit %d: %s", code, stderr)
	}
	var ratio float64
	if m := regexp.MustCompile(`store directory \(du\): \d+ bytes = ([0-9.]+)× the seed file`).FindStringSubmatch(stdout); m != nil {
		fmt.Sscanf(m[1], "%f", &ratio)
	}
	if !strings.Contains(stdout, "holds no venti arenas") || ratio <= 0 || ratio >= 0.5 {
		t.Fatalf("bench venti -seed of 1.1 MB of text: store/file ratio %v, want under 0.5:\n%s", ratio, stdout)
	}
}

// A venti address names this machine when it is a loopback IP or
// localhost, in any of the forms venti.ParseAddr takes.
func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:17034":     true,
		"127.0.0.2":           true,
		"localhost":           true,
		"tcp!localhost!venti": true,
		"[::1]:17034":         true,
		"::1":                 true,
		"tcp!127.0.0.1!17999": true,
		"10.0.2.2:17034":      false,
		"venti.example.org":   false,
		"tcp!192.168.1.5":     false,
		"":                    false,
		"bad!address!x!y":     false,
	} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}
