package vmtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/network"
	"gridlord/engine/qemu"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
	"gridlord/testing/standin"
	"gridlord/testing/testenv"
)

var (
	imageOnce sync.Once
	imageVal  *standin.Image
	imageErr  error
)

// image builds (or takes from the cache) the one stand-in image every test
// shares.
func image(t testing.TB) *standin.Image {
	t.Helper()
	testenv.Tool(t, "qemu-system-x86_64")
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		imageVal, imageErr = standin.Build(ctx, standin.Options{})
	})
	if imageErr != nil {
		t.Fatalf("build stand-in guest: %v", imageErr)
	}
	return imageVal
}

func testLog(t testing.TB) *slog.Logger { return testenv.Log(t) }

// newSupervisor makes a supervisor in a short temporary directory (unix
// socket paths are limited to ~100 bytes) that stops every node at cleanup.
func newSupervisor(t testing.TB, dir string, sw qemu.Switch) *qemu.Supervisor {
	t.Helper()
	t.Setenv(qemu.EnvAccel, "tcg")
	sup, err := qemu.NewSupervisor(dir, sw, qemu.SupervisorOptions{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	return sup
}

func shortTempDir(t testing.TB) string { return testenv.ShortDir(t) }

// spec is a stand-in node with one e1000 NIC per MAC given.
func spec(im *standin.Image, name string, macs ...string) qemu.Spec {
	s := qemu.Spec{Name: name, MemoryMiB: 192, Kernel: im.Kernel, Initrd: im.Initrd, Append: im.Append(name)}
	for _, m := range macs {
		s.NICs = append(s.NICs, qemu.NIC{Model: qemu.NICE1000, MAC: m})
	}
	return s
}

// start starts a node; at cleanup it logs the command line "to reproduce"
// and makes sure the VM is gone.
func start(t testing.TB, sup *qemu.Supervisor, s qemu.Spec) *qemu.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := sup.Start(ctx, s)
	if err != nil {
		t.Fatalf("start %s: %v", s.Name, err)
	}
	t.Cleanup(func() {
		t.Logf("%s: to reproduce: %s", s.Name, n.VM.Cmdline())
		if st := n.VM.Info().State; st == qemu.Running || st == qemu.Starting {
			pid := n.VM.Info().PID
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	})
	return n
}

// readyRE matches the stand-in's ready line.
// It includes the line end, so a line split across reads is not taken
// for a shorter one.
var readyRE = regexp.MustCompile(regexp.QuoteMeta(standin.ReadyLine) + ` name=(\S+) ip=(\S+)\r?\n`)

// bootTimeout is generous: TCG on 2 shared cores with 3 guests.
const bootTimeout = 2 * time.Minute

// waitReady waits for the ready line and returns the guest's address.
func waitReady(t testing.TB, e *console.Expecter) string {
	t.Helper()
	m, err := e.Expect(context.Background(), readyRE, bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return m[2]
}

// shell runs a command on the guest console and waits for a marker the
// command prints. The marker is built by the shell ($((...))), so the
// echoed command line itself cannot match.
func shell(t testing.TB, e *console.Expecter, cmd string, want *regexp.Regexp) []string {
	t.Helper()
	if err := e.SendLine(cmd); err != nil {
		t.Fatal(err)
	}
	m, err := e.Expect(context.Background(), want, 60*time.Second)
	if err != nil {
		t.Fatalf("after %q: %v", cmd, err)
	}
	return m
}

// hostVenti is a venti service on the host's loopback, which guests see
// at the switch's host address on network.VentiPort once exposed there.
type hostVenti struct {
	// Addr is where it listens on the host, 127.0.0.1:<random port>.
	Addr string
	// Banner matches the server's version line as the guest prints it.
	Banner *regexp.Regexp
}

// expose makes v reachable from sw's guests at the host address on
// network.VentiPort, as the engine does with its embedded venti.
func (v hostVenti) expose(t testing.TB, sw *network.Switch) {
	t.Helper()
	if err := sw.ExposeHost(network.VentiPort, v.Addr); err != nil {
		t.Fatal(err)
	}
}

// probe is a guest shell command that sends a venti version line to the
// venti at sw's host address; its output matches Banner when it works.
func (v hostVenti) probe(sw *network.Switch) string {
	return fmt.Sprintf("echo venti-02:04-libventi | nc -w 10 %s %d", sw.Config().HostIP, network.VentiPort)
}

// embeddedVenti serves the real embedded venti (the disk store behind the
// venti protocol server) on the host's loopback, as the engine does, and
// returns where guests find it. Its version line is venti-04:02-gridlord;
// the guest echoes its own (venti-02:04-libventi), which the banner must
// not match.
func embeddedVenti(t testing.TB) hostVenti {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { venti.NewServer(st).Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return hostVenti{
		Addr:   ln.Addr().String(),
		Banner: regexp.MustCompile(`venti-04:02-gridlord`),
	}
}

// plan makes switch members for names with generated UUIDs.
func plan(t testing.TB, cfg network.Config, names ...string) []network.Member {
	t.Helper()
	uuids := map[string]string{}
	for i, n := range names {
		uuids[n] = fmt.Sprintf("5f0c0b1e-0000-4000-8000-%012d", i+1)
	}
	ms, err := network.Plan(cfg, names, uuids)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}
