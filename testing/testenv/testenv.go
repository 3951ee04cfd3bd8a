// Package testenv holds the test-tier gates shared by Gridlord's tests.
//
// Plain "go test ./..." runs the fast tier only. Integration tests, which
// start real QEMU processes, windows under Xvfb or other external tools, call
// Integration first: they skip unless GRIDLORD_INTEGRATION=1 is set. The
// README's test command (and so CI) always sets it, and there a missing tool
// fails the test instead of skipping it, so nothing silently goes untested.
package testenv

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// EnvVar is the environment variable that enables the integration tier.
const EnvVar = "GRIDLORD_INTEGRATION"

// Enabled reports whether the integration tier is switched on.
func Enabled() bool { return os.Getenv(EnvVar) == "1" }

// Integration skips t unless the integration tier is enabled.
func Integration(t testing.TB) {
	t.Helper()
	if !Enabled() {
		t.Skipf("integration test: set %s=1 (scripts/test.sh does)", EnvVar)
	}
}

// Tool returns the path of an external program an integration test needs.
// It skips t when the integration tier is off and fails t when the tier is
// on but the program is missing (scripts/setup.sh installs them all).
func Tool(t testing.TB, name string) string {
	t.Helper()
	Integration(t)
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required by this integration test but is not on PATH: run scripts/setup.sh", name)
	}
	return p
}

// SeedBuildVar, set to 1, also runs TestBuildSeed: the seed-build recipe
// alone, without importing and booting its result. CI runs the same build
// inside TestBuildSeedRunsAGrid and TestSeedBuildFromDirectory, so it does
// not set it.
const SeedBuildVar = "GRIDLORD_SEEDBUILD"

// SeedBuild marks an end-to-end build of a seed from a Plan 9 distribution
// (a real install under TCG: 6-11 minutes on 2 cores): the integration
// tier, so CI runs it.
func SeedBuild(t testing.TB) {
	t.Helper()
	Integration(t)
}

// ShortDir is a fresh temporary directory with a short path (unix socket
// paths under it must stay below ~100 bytes), removed when t ends.
func ShortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "gld")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Log is a logger whose records go to t.Log (info and above).
func Log(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(LogWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// LogWriter is a writer whose every write goes to t.Log, one entry each.
func LogWriter(t testing.TB) io.Writer { return tWriter{t} }

// tWriter writes each record to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// SyncBuffer is a bytes.Buffer that goroutines may write to while
// another reads what it holds: a test's sink for logs and output.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len returns how many bytes have been written.
func (s *SyncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}
