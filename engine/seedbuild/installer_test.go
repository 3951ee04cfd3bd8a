package seedbuild_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/seedbuild"
	"gridlord/engine/seedbuild/seedtest"
	"gridlord/testing/testenv"
)

// installerBoot is generous: TCG on two cores shared with other VMs.
const installerBoot = 5 * time.Minute

// TestInstallerBootsFromServedTree is the real proof of the install
// route's first step: the distribution's own cpu kernel (9pccpuf), booted
// from a boot disk made here, mounts the distribution tree served by the
// engine's 9P2000 server on a private switch as its root, with no auth,
// and gives a shell at the serial console whose ls of /386/bin matches the
// tree; it sees the target disk's partitions as the engine laid them out.
func TestInstallerBootsFromServedTree(t *testing.T) {
	testenv.Tool(t, "qemu-system-i386")
	tree := seedtest.Tree(t)
	d := openDist(t, tree)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir := shortDir(t)
	ctx := context.Background()
	trace := &traceHandler{}
	start := time.Now()
	in, err := seedbuild.StartInstaller(ctx, d, seedbuild.InstallerOptions{Dir: dir, Accel: "tcg", Log: log, Trace: trace, BootTimeout: installerBoot})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := in.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "boot.img")); err == nil {
			t.Error("the boot disk was left behind")
		}
	}()
	e := console.NewExpecter(in.Console, true)
	defer e.Close()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nconsole:\n%s", append(args, in.Console.Scrollback())...)
	}
	if _, err := e.Expect(ctx, in.Prompt, time.Second); err != nil {
		fail("no prompt: %v", err)
	}
	t.Logf("prompt after %v", time.Since(start).Round(time.Second))
	for _, l := range trace.lines() {
		if strings.Contains(l, "Tversion") || strings.Contains(l, "Tauth") || strings.Contains(l, "Tattach") {
			t.Logf("9P: %s", l)
		}
	}

	ents, err := os.ReadDir(filepath.Join(tree, "386/bin"))
	if err != nil {
		t.Fatal(err)
	}
	// The marker's typed form ("n:'^`{") differs from its printed form
	// ("n:123"); rc takes a bare = for an assignment.
	if err := e.SendLine("echo 'n:'^`{ls /386/bin | wc -l}"); err != nil {
		t.Fatal(err)
	}
	m, err := e.Expect(ctx, regexp.MustCompile(`n:(\d+)\r?\n`), time.Minute)
	if err != nil {
		fail("ls /386/bin: %v", err)
	}
	if got, _ := strconv.Atoi(m[1]); got != len(ents) {
		fail("ls /386/bin | wc -l = %d on the installer, the tree has %d", got, len(ents))
	}
	t.Logf("ls /386/bin | wc -l = %s, as in the tree", m[1])

	// Owners and modes come from the distribution's log.
	if err := e.SendLine("ls -l /386/bin/rc /rc/lib/rcmain; echo done'.'"); err != nil {
		t.Fatal(err)
	}
	m, err = e.Expect(ctx, regexp.MustCompile(`(?s)(--rwxrwxr-x.*)done\.\r?\n`), time.Minute)
	if err != nil {
		fail("ls -l: %v", err)
	}
	for _, want := range []string{"sys sys", "/386/bin/rc", "/rc/lib/rcmain"} {
		if !strings.Contains(m[1], want) {
			fail("ls -l output %q lacks %q", m[1], want)
		}
	}
	t.Logf("ls -l:\n%s", m[1])
	if err := e.SendLine("cat /dev/hostowner; echo ' is the host owner'"); err != nil {
		t.Fatal(err)
	}
	if m, err := e.Expect(ctx, regexp.MustCompile(`(\w+) is the host owner`), time.Minute); err != nil {
		fail("host owner: %v", err)
	} else if m[1] != "bootes" {
		fail("host owner %q, want bootes (from the boot disk's nvram)", m[1])
	}

	// The target disk's partitions, as the engine laid them out.
	if err := e.SendLine("ls /dev/sdC1; echo end'.'"); err != nil {
		t.Fatal(err)
	}
	m, err = e.Expect(ctx, regexp.MustCompile(`(?s)'\.'\r?\n(.*)end\.\r?\n`), time.Minute)
	if err != nil {
		fail("ls /dev/sdC1: %v", err)
	}
	for _, p := range []string{"9fat", "nvram", "fossil", "arenas", "isect"} {
		if !strings.Contains(m[1], "/dev/sdC1/"+p+"\r\n") {
			fail("the installer sees no /dev/sdC1/%s: %q", p, m[1])
		}
	}
	t.Logf("ls /dev/sdC1: %q", m[1])
}

// openDist opens and checks the distribution at src, closed at cleanup.
func openDist(t *testing.T, src string) *seedbuild.Distribution {
	t.Helper()
	fsys, closeFS, err := seedbuild.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFS() })
	d, err := seedbuild.Check(fsys, src)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// shortDir is a scratch directory with a short path (unix socket paths
// are limited to about 100 bytes), removed at cleanup.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "glsb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// traceHandler keeps the 9P server's debug records.
type traceHandler struct {
	mu  sync.Mutex
	buf []string
}

func (h *traceHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *traceHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *traceHandler) WithGroup(string) slog.Handler            { return h }
func (h *traceHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	h.buf = append(h.buf, b.String())
	h.mu.Unlock()
	return nil
}

func (h *traceHandler) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.buf...)
}

// testWriter sends log lines to t.Logf.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestInstallerFailedBoot: a kernel that does not boot ends StartInstaller
// with the console's last lines, and nothing is left in its directory but
// what the VM runtime keeps of the stopped VM.
func TestInstallerFailedBoot(t *testing.T) {
	testenv.Tool(t, "qemu-system-i386")
	tree := seedtest.CopyTree(t)
	if err := os.WriteFile(filepath.Join(tree, "386/9pccpuf"), []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := openDist(t, tree)
	dir := shortDir(t)
	_, err := seedbuild.StartInstaller(context.Background(), d, seedbuild.InstallerOptions{Dir: dir, Accel: "tcg", BootTimeout: installerBoot})
	if err == nil {
		t.Fatal("an installer with a broken kernel booted")
	}
	if !strings.Contains(err.Error(), "9load could not load 386/9pccpuf") || !strings.Contains(err.Error(), "premature EOF") {
		t.Errorf("error does not say what happened or show the console (9load names the kernel): %v", err)
	}
	for _, f := range []string{"boot.img", "target.qcow2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
	t.Logf("%v", err)
}
