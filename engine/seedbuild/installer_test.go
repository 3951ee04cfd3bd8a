package seedbuild_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/network"
	"gridlord/engine/ninep"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/qemu"
	"gridlord/engine/seedbuild"
	"gridlord/engine/seedbuild/seedtest"
	"gridlord/testing/testenv"
)

// installerBoot is generous: TCG on two cores shared with other VMs.
const installerBoot = 5 * time.Minute

// TestInstallerBootsFromServedTree is the real proof of the install
// route's first step: the distribution's own cpu kernel (9pccpuf), booted
// from a boot disk made here, mounts the distribution tree served by the
// engine's 9P2000 server on the grid's private switch as its root, with
// no auth, and gives a shell at the serial console whose ls of /386/bin
// matches the tree.
func TestInstallerBootsFromServedTree(t *testing.T) {
	testenv.Tool(t, "qemu-system-i386")
	tree := seedtest.Tree(t)
	fsys, closeFS, err := seedbuild.Open(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFS()
	d, err := seedbuild.Check(fsys, tree)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// The distribution over 9P2000 on the host's loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trace := &traceHandler{}
	srv := ninep.NewServer(ninep.FromFS(fsys, ninep.FSOptions{Meta: d.Meta}), ninep.Options{Logger: slog.New(trace)})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("9P server: %v", err)
		}
	}()

	// The private switch, with the server at the host address on 564.
	members, err := network.Plan(network.Config{}, []string{"installer"}, map[string]string{"installer": "8d0c9a52-13c1-4c55-9b4b-5eed0000b001"})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := network.New(network.Config{}, members, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	if err := sw.ExposeHost(564, ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	host := sw.Config().HostIP

	dir, err := os.MkdirTemp("", "glsb") // unix socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	boot := filepath.Join(dir, "boot.img")
	rec := &nvram.Record{AuthID: "bootes", AuthDom: "grid"}
	if err := rec.SetPassword("password"); err != nil {
		t.Fatal(err)
	}
	ini := seedbuild.InstallerIni(d.Kernel, "installer", host, host)
	if err := d.WriteBootDisk(boot, seedbuild.BootDisk{Ini: ini, Nvram: rec}); err != nil {
		t.Fatal(err)
	}

	t.Setenv(qemu.EnvAccel, "tcg")
	sup, err := qemu.NewSupervisor(filepath.Join(dir, "vms"), sw, qemu.SupervisorOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	spec := qemu.Spec{
		Name: "installer", Arch: "i386", MemoryMiB: 512,
		Disks: []qemu.Disk{{Path: boot, Format: "raw", Bus: qemu.BusIDE}},
		NICs:  []qemu.NIC{{Model: qemu.NICRTL8139, MAC: members[0].MAC}},
	}
	start := time.Now()
	n, err := sup.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
		defer stop()
		sup.Stop(stopCtx, "installer", 2*time.Second)
	}()
	e := console.NewExpecter(n.Console, true)
	defer e.Close()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nconsole:\n%s", append(args, n.Console.Scrollback())...)
	}
	prompt := regexp.MustCompile(`installer# $`)
	if _, err := e.Expect(ctx, prompt, installerBoot); err != nil {
		fail("no shell prompt: %v", err)
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
