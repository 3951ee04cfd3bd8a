package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/drawterm"
	"gridlord/engine/network"
	"gridlord/engine/qemu"
	"gridlord/testing/standin"
)

// TestBootConsolePowerdownKill: console lines reach two readers at once and
// the log; QMP says running; system_powerdown ends in stopped; a killed
// QEMU ends in failed with its last console lines.
func TestBootConsolePowerdownKill(t *testing.T) {
	im := image(t)
	dir := shortTempDir(t)
	sup := newSupervisor(t, dir, nil)
	defer sup.Close()
	ctx := context.Background()

	n := start(t, sup, spec(im, "alpha"))
	r1 := console.NewExpecter(n.Console, true)
	defer r1.Close()
	r2 := console.NewExpecter(n.Console, true)
	defer r2.Close()
	for i, r := range []*console.Expecter{r1, r2} {
		if _, err := r.Expect(ctx, regexp.MustCompile(standin.ReadyLine+` name=alpha`), bootTimeout); err != nil {
			t.Fatalf("reader %d: %v", i+1, err)
		}
	}
	log, err := os.ReadFile(filepath.Join(sup.NodeDir("alpha"), qemu.FileConsoleLog))
	if err != nil || !strings.Contains(string(log), standin.ReadyLine+" name=alpha") {
		t.Fatalf("console log lacks the ready line (err %v):\n%s", err, log)
	}
	if st, err := n.VM.Status(ctx); err != nil || st != "running" {
		t.Fatalf("QMP status = %q, %v; want running", st, err)
	}
	if st := n.VM.Info().State; st != qemu.Running {
		t.Fatalf("state = %s, want running", st)
	}
	shell(t, r1, "echo X$((6*7))Y", regexp.MustCompile(`X42Y`))

	if err := n.VM.Powerdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.VM.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("guest did not power off within 60s of system_powerdown; console:\n%s", n.Console.Scrollback())
	}
	if info := n.VM.Info(); info.State != qemu.Stopped {
		t.Fatalf("after powerdown: %+v, want stopped", info)
	}
	if _, err := r2.Expect(ctx, regexp.MustCompile(`power button pressed`), 5*time.Second); err != nil {
		t.Errorf("reader 2 missed the power-off message: %v", err)
	}
	if _, err := os.Stat(filepath.Join(sup.NodeDir("alpha"), qemu.FileState)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left after stop: %v", err)
	}

	// Start again and kill QEMU from outside.
	n = start(t, sup, spec(im, "alpha"))
	e := console.NewExpecter(n.Console, true)
	defer e.Close()
	waitReady(t, e)
	shell(t, e, "echo last-words-$((1+1))", regexp.MustCompile(`last-words-2`))
	if err := syscall.Kill(n.VM.Info().PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.VM.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a killed QEMU was not noticed within 10s")
	}
	info := n.VM.Info()
	if info.State != qemu.Failed || !strings.Contains(info.Exit, "killed") {
		t.Fatalf("after kill: %+v, want failed by signal", info)
	}
	if !strings.Contains(strings.Join(info.LastLines, "\n"), "last-words-2") {
		t.Errorf("failed VM's last lines %q lack the last console output", info.LastLines)
	}
	t.Logf("failure record: %s; last lines %q", info.Err, info.LastLines)
}

// TestNetwork: three guests on one switch take their fixed addresses by
// DHCP, reach each other over TCP and reach the host's venti exposed at
// the host address, but not an unexposed port of the host's loopback; a
// host->guest forward carries a TCP connection to a guest listener.
func TestNetwork(t *testing.T) {
	im := image(t)
	venti := embeddedVenti(t)
	names := []string{"venti", "fossil", "cpu"}
	members := plan(t, network.Config{}, names...)
	sw, err := network.New(network.Config{}, members, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	venti.expose(t, sw)
	sup := newSupervisor(t, shortTempDir(t), sw)
	defer sup.Close()

	cons := map[string]*console.Expecter{}
	for _, m := range members {
		n := start(t, sup, spec(im, m.Name, m.MAC))
		cons[m.Name] = console.NewExpecter(n.Console, true)
		defer cons[m.Name].Close()
	}
	for _, m := range members {
		if ip := waitReady(t, cons[m.Name]); ip != m.IP {
			t.Fatalf("%s got address %s by DHCP, want its fixed %s", m.Name, ip, m.IP)
		}
	}
	leases, err := sw.Leases()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if leases[m.IP] != m.MAC {
			t.Errorf("lease for %s = %q, want %s", m.IP, leases[m.IP], m.MAC)
		}
	}

	// Guest to guest over TCP: each guest listens, the next one connects.
	for i, m := range members {
		shell(t, cons[m.Name], listenCmd(7000, "pong-from-"+m.Name, "/tmp/got")+fmt.Sprintf("; echo listening-$((7000+%d))", i),
			regexp.MustCompile(fmt.Sprintf(`listening-%d`, 7000+i)))
	}
	for i, m := range members {
		peer := members[(i+1)%len(members)]
		shell(t, cons[m.Name], fmt.Sprintf("echo ping-from-%s | nc -w 10 %s 7000", m.Name, peer.IP),
			regexp.MustCompile(`pong-from-`+peer.Name))
		shell(t, cons[peer.Name], "sleep 1; cat /tmp/got; echo done-$((1+2))",
			regexp.MustCompile(`ping-from-`+m.Name+`\s+done-3`))
	}

	// Guest to the host's venti at the fixed host address.
	shell(t, cons["fossil"], venti.probe(sw), venti.Banner)

	// Nothing else of the host: a listener on the host's loopback whose
	// port is not exposed must not be reachable at the host address.
	hidden, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hidden.Close()
	reached := make(chan net.Addr, 1)
	go func() {
		if c, err := hidden.Accept(); err == nil {
			reached <- c.RemoteAddr()
			c.Close()
		}
	}()
	hiddenPort := hidden.Addr().(*net.TCPAddr).Port
	got := shell(t, cons["fossil"], fmt.Sprintf("echo secret | nc -w 5 %s %d; echo nc-exit-$?-$((3*3))", sw.Config().HostIP, hiddenPort),
		regexp.MustCompile(`nc-exit-([0-9]+)-9`))
	select {
	case from := <-reached:
		t.Fatalf("a guest reached the host's 127.0.0.1:%d (not exposed) at the host address, from %v", hiddenPort, from)
	case <-time.After(time.Second):
	}
	if got[1] == "0" {
		t.Fatalf("a guest's nc to %s:%d (not exposed) succeeded", sw.Config().HostIP, hiddenPort)
	}
	// The exposed port still works after the refused attempt.
	shell(t, cons["fossil"], venti.probe(sw), venti.Banner)

	// Host to guest through a loopback forward.
	fwd, err := sw.Forward("cpu", 17019, 0)
	if err != nil {
		t.Fatal(err)
	}
	shell(t, cons["cpu"], listenCmd(17019, "hello-from-guest", "/dev/console")+"; echo fwd-$((2*2))", regexp.MustCompile(`fwd-4`))
	c, err := net.DialTimeout("tcp", fwd.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "hello-from-host\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello-from-guest\n" {
		t.Fatalf("through forward %s: read %q, %v", fwd.Host, line, err)
	}
	if _, err := cons["cpu"].Expect(context.Background(), regexp.MustCompile(`hello-from-host`), 20*time.Second); err != nil {
		t.Errorf("guest listener did not print what the host sent: %v", err)
	}
	if got := sw.Forwards("cpu"); len(got) != 1 || got[0] != fwd {
		t.Errorf("Forwards(cpu) = %+v", got)
	}

	// drawterm at the cpu node through its forwards: drawterm-9front sends
	// its secstore request (naming the user) to the auth port and then
	// dials the cpu port; the guest's listeners are no Plan 9, so it fails
	// and its exit is reported.
	dt, err := drawterm.Find(context.Background(), "")
	if err != nil {
		t.Fatalf("%v (scripts/setup.sh installs drawterm-9front)", err)
	}
	auth, err := sw.Forward("cpu", 567, 0)
	if err != nil {
		t.Fatal(err)
	}
	shell(t, cons["cpu"], listenCmd(567, "no-auth-here", "/dev/console")+"; "+
		listenCmd(17019, "no-cpu-here", "/dev/console")+"; echo dt-$((3*3))", regexp.MustCompile(`dt-9`))
	var dtOut strings.Builder
	dctx, dcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer dcancel()
	s, err := drawterm.Launch(dctx, dt, drawterm.Target{CPU: fwd.Host, Auth: auth.Host, User: "glenda", Password: "x", NoGraphics: true}, &dtOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err == nil || s.ExitCode() <= 0 {
		t.Errorf("drawterm against non-Plan 9 listeners: %v, exit %d", err, s.ExitCode())
	}
	t.Logf("drawterm (%s) exited %d: %q", dt.Flavor, s.ExitCode(), dtOut.String())
	if dt.Flavor == drawterm.Front9 {
		if _, err := cons["cpu"].Expect(context.Background(), regexp.MustCompile(`C=glenda`), 20*time.Second); err != nil {
			t.Errorf("drawterm's request never reached the guest's auth port: %v", err)
		}
	}
}

// TestReadopt: the engine (supervisor and switch) is torn down while a
// guest runs and a new one re-adopts it from the state directory: state
// running, console attached, NIC attached to the new switch (the guest
// reaches the host's venti address through it).
func TestReadopt(t *testing.T) {
	im := image(t)
	venti := embeddedVenti(t)
	members := plan(t, network.Config{}, "solo")
	sw, err := network.New(network.Config{}, members, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	venti.expose(t, sw)
	dir := shortTempDir(t)
	sup1 := newSupervisor(t, dir, sw)
	n := start(t, sup1, spec(im, "solo", members[0].MAC))
	e := console.NewExpecter(n.Console, true)
	waitReady(t, e)
	pid := n.VM.Info().PID
	e.Close()
	if err := sup1.Close(); err != nil {
		t.Fatal(err)
	}
	// A restarted engine process would also have lost its switch: make a
	// new one from the same configuration and let the new supervisor
	// re-dial the guest's NIC into it.
	sw.Close()
	sw, err = network.New(network.Config{}, members, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	venti.expose(t, sw)

	sup2 := newSupervisor(t, dir, sw)
	defer sup2.Close()
	nodes, err := sup2.AdoptAll(context.Background())
	if err != nil || len(nodes) != 1 {
		t.Fatalf("AdoptAll = %d nodes, %v", len(nodes), err)
	}
	n2 := nodes[0]
	if info := n2.VM.Info(); info.State != qemu.Running || info.PID != pid || !info.Adopted {
		t.Fatalf("adopted %+v, want running pid %d", info, pid)
	}
	if st, err := n2.VM.Status(context.Background()); err != nil || st != "running" {
		t.Fatalf("QMP status after adoption = %q, %v", st, err)
	}
	e2 := console.NewExpecter(n2.Console, false)
	defer e2.Close()
	shell(t, e2, "echo adopted-$((40+2))", regexp.MustCompile(`adopted-42`))
	shell(t, e2, venti.probe(sw), venti.Banner)
	if err := sup2.Stop(context.Background(), "solo", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := n2.VM.Info().State; st != qemu.Stopped {
		t.Fatalf("after Stop: %s", st)
	}
}

// TestNoQEMU: without QEMU on PATH, starting fails with the install hint
// and leaves nothing behind.
func TestNoQEMU(t *testing.T) {
	im := image(t)
	dir := shortTempDir(t)
	sup := newSupervisor(t, dir, nil)
	defer sup.Close()
	t.Setenv("PATH", t.TempDir())
	_, err := sup.Start(context.Background(), spec(im, "lonely"))
	if !errors.Is(err, qemu.ErrNotInstalled) || !strings.Contains(err.Error(), "install") {
		t.Fatalf("err = %v, want ErrNotInstalled with an install hint", err)
	}
	t.Logf("message: %v", err)
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left behind in %s: %v", dir, ents)
	}
}

// TestMissingDisk: a spec naming a missing disk fails clearly.
func TestMissingDisk(t *testing.T) {
	im := image(t)
	sup := newSupervisor(t, shortTempDir(t), nil)
	defer sup.Close()
	s := spec(im, "nodisk")
	s.Disks = []qemu.Disk{{Path: "/nonexistent/disk.qcow2"}}
	_, err := sup.Start(context.Background(), s)
	if !errors.Is(err, qemu.ErrDiskMissing) {
		t.Fatalf("err = %v, want ErrDiskMissing", err)
	}
}

// BenchmarkBootToReady measures start to the console's ready line for 1
// and 3 guests (each on the switch, so DHCP is included). Run with
// go test -run X -bench BootToReady -benchtime 1x ./testing/vmtest/
func BenchmarkBootToReady(b *testing.B) {
	im := image(b)
	b.Run("baseline-1-guest-no-nic", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			sup := newSupervisor(b, shortTempDir(b), nil)
			t0 := time.Now()
			n := start(b, sup, spec(im, "base"))
			e := console.NewExpecter(n.Console, true)
			waitReady(b, e)
			el := time.Since(t0)
			e.Close()
			b.ReportMetric(el.Seconds(), "s-to-ready")
			fmt.Fprintf(os.Stderr, "boot to ready, 1 guest without NIC (baseline): %.2fs\n", el.Seconds())
			sup.Stop(context.Background(), "base", 20*time.Second)
			sup.Close()
		}
	})
	for _, count := range []int{1, 3} {
		b.Run(fmt.Sprintf("guests=%d", count), func(b *testing.B) {
			names := make([]string, count)
			for i := range names {
				names[i] = fmt.Sprintf("b%d", i)
			}
			members := plan(b, network.Config{}, names...)
			sw, err := network.New(network.Config{}, members, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer sw.Close()
			for i := 0; i < b.N; i++ {
				sup := newSupervisor(b, shortTempDir(b), sw)
				t0 := time.Now()
				var es []*console.Expecter
				for _, m := range members {
					n := start(b, sup, spec(im, m.Name, m.MAC))
					es = append(es, console.NewExpecter(n.Console, true))
				}
				for _, e := range es {
					waitReady(b, e)
					e.Close()
				}
				el := time.Since(t0)
				b.ReportMetric(el.Seconds(), "s-to-ready")
				fmt.Fprintf(os.Stderr, "boot to ready, %d guest(s): %.2fs\n", count, el.Seconds())
				for _, m := range members {
					sup.Stop(context.Background(), m.Name, 20*time.Second)
				}
				sup.Close()
			}
		})
	}
}

// TestConcurrentStart: two Starts of one node at the same moment launch
// one QEMU; the other is told the node is already running.
func TestConcurrentStart(t *testing.T) {
	im := image(t)
	sup := newSupervisor(t, shortTempDir(t), nil)
	defer sup.Close()
	a := spec(im, "twice")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, err := sup.Start(ctx, a); errs <- err }()
	}
	var ok, running int
	for i := 0; i < 2; i++ {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, qemu.ErrAlreadyRunning):
			running++
		default:
			t.Errorf("concurrent start: %v", err)
		}
	}
	if ok != 1 || running != 1 {
		t.Fatalf("%d starts succeeded and %d were refused as already running; want 1 and 1", ok, running)
	}
	if err := sup.Stop(context.Background(), "twice", 3*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestInUse: a second start of a running node and a second VM on a disk
// another QEMU holds both fail clearly, leaving nothing behind.
func TestInUse(t *testing.T) {
	im := image(t)
	dir := shortTempDir(t)
	sup := newSupervisor(t, dir, nil)
	defer sup.Close()
	disk := filepath.Join(dir, "shared.raw")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	a := spec(im, "holder")
	a.Disks = []qemu.Disk{{Path: disk, Format: "raw"}}
	n := start(t, sup, a)
	if _, err := sup.Start(context.Background(), a); !errors.Is(err, qemu.ErrAlreadyRunning) {
		t.Errorf("second start of a running node: %v", err)
	}
	// Another engine (a second supervisor on the same state directory).
	other := newSupervisor(t, dir, nil)
	defer other.Close()
	if _, err := other.Start(context.Background(), a); !errors.Is(err, qemu.ErrAlreadyRunning) {
		t.Errorf("start by another engine of a running node: %v", err)
	}
	b := spec(im, "intruder")
	b.Disks = a.Disks
	_, err := sup.Start(context.Background(), b)
	if !errors.Is(err, qemu.ErrDiskLocked) {
		t.Fatalf("second VM on a held disk: %v, want ErrDiskLocked", err)
	}
	t.Logf("message: %v", err)
	if _, err := os.Stat(sup.NodeDir("intruder")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed node left its directory: %v", err)
	}
	// The guest may not be watching its power button yet: a short grace
	// takes the ladder on to QMP quit.
	if err := sup.Stop(context.Background(), "holder", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := n.VM.Info().State; st != qemu.Stopped {
		t.Errorf("holder after Stop: %s", st)
	}
}

// listenCmd is a guest shell command that starts a one-shot TCP listener
// on port, which sends reply and writes what it receives to out, and
// returns only once the port is listening.
func listenCmd(port int, reply, out string) string {
	return fmt.Sprintf("(echo %s | nc -l -p %d >%s &) ; while ! netstat -ltn | grep -q ':%d '; do sleep 0.1; done",
		reply, port, out, port)
}
