//go:build linux

package gridfs_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/gridfs"
	"gridlord/engine/gridfs/gridfstest"
	"gridlord/testing/standin"
	"gridlord/testing/testenv"
)

// TestGuestKernelMount exercises a real Linux kernel's 9P client against
// gridfs even where the host kernel cannot mount 9p: it boots the stand-in
// guest (Debian's kernel plus busybox, under QEMU TCG) with the 9p module
// loaded, serves gridfs on loopback TCP, and from the guest's console runs
// mount -t 9p -o trans=tcp,version=9p2000.L,... 10.0.2.2 (QEMU user
// networking's alias for the host), reads files, writes ctl and unmounts.
func TestGuestKernelMount(t *testing.T) {
	qemuBin := testenv.Tool(t, "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	im, err := standin.Build(ctx, standin.Options{Modules: append(standin.DefaultModules(), "9p", "9pnet_fd")})
	if err != nil {
		t.Fatalf("build stand-in guest with the 9p module: %v", err)
	}

	e := gridfstest.New()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	lb := &logBuf{t: t}
	srvCtx, srvCancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- gridfs.Serve(srvCtx, ln, e, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	defer func() {
		srvCancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	cmd := exec.CommandContext(ctx, qemuBin,
		"-accel", "tcg", "-m", "256", "-nodefaults", "-no-user-config", "-no-reboot",
		"-display", "none", "-serial", "stdio",
		"-kernel", im.Kernel, "-initrd", im.Initrd, "-append", im.Append("g9p"),
		"-netdev", "user,id=n0", "-device", "e1000,netdev=n0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Logf("qemu stderr: %s", stderr.String())
		}
	}()
	hub, err := console.New("g9p", console.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	hub.Attach(struct {
		io.Reader
		io.Writer
		io.Closer
	}{stdout, stdin, stdin})
	ex := console.NewExpecter(hub, true)
	defer ex.Close()
	defer func() {
		if t.Failed() {
			t.Logf("guest console tail:\n%s", strings.Join(hub.LastLines(40), "\n"))
		}
	}()

	if _, err := ex.Expect(ctx, regexp.MustCompile(`GRIDLORD-STANDIN READY name=g9p ip=(\S+)`), 3*time.Minute); err != nil {
		t.Fatalf("guest did not boot: %v", err)
	}
	if _, err := ex.Expect(ctx, regexp.MustCompile(regexp.QuoteMeta(standin.Prompt)), time.Minute); err != nil {
		t.Fatal(err)
	}
	// Without echo, busybox reads plain lines and our output stays clean.
	n := 0
	run := func(sh string) string {
		t.Helper()
		n++
		if err := ex.SendLine(fmt.Sprintf("%s; echo \"@@$((%d+1000))@@\"", sh, n)); err != nil {
			t.Fatal(err)
		}
		m, err := ex.Expect(ctx, regexp.MustCompile(fmt.Sprintf(`(?s)^(.*?)@@%d@@`, n+1000)), time.Minute)
		if err != nil {
			t.Fatalf("guest command %q: %v", sh, err)
		}
		out := strings.ReplaceAll(m[1], "\r", "")
		out = strings.ReplaceAll(out, standin.Prompt, "")
		return strings.TrimLeft(out, "\n")
	}
	run("stty -echo")
	run("true") // flush the echo of the stty line itself

	opts := fmt.Sprintf("trans=tcp,port=%d,version=9p2000.L,access=any,cache=none", port)
	if out := run("mkdir -p /mnt/g && mount -t 9p -o " + opts + " 10.0.2.2 /mnt/g; echo rc=$?"); !strings.HasSuffix(out, "rc=0\n") {
		t.Fatalf("guest kernel mount -t 9p -o %s 10.0.2.2 failed:\n%s\ndmesg:\n%s\nserver log:\n%s", opts, out, run("dmesg | tail -n 15; lsmod"), lb.String())
	}
	t.Logf("guest kernel %s mounted gridfs over tcp", im.KernelRelease)

	for _, tc := range []struct{ sh, want string }{
		{"cat /mnt/g/nodes/cpu1/status", "stopped ip=10.0.9.11 pending=false\n"},
		{"ls -1 /mnt/g/", "ctl\nevents\ngrid.json\nidentity\nlog\nnodes\nseeds\nventi\n"},
		{"ls -1 /mnt/g/nodes/cpu1", "cons\nctl\ndrawterm\nini\nlog\nstatus\n"},
		{"cat /mnt/g/venti/stats", "arenas 1\nblocks 42\nbytes 1234567\n"},
		{"grep -c '\"name\"' /mnt/g/grid.json", "3\n"},
		{"echo start >/mnt/g/nodes/cpu1/ctl; echo rc=$?", "rc=0\n"},
		{"cat /mnt/g/nodes/cpu1/status", "running\n"},
		{"echo frobnicate >/mnt/g/ctl 2>/dev/null; echo rc=$?", "rc=1\n"},
		{"tail -n 1 /mnt/g/ctl", "last error: \"frobnicate\": unknown command \"frobnicate\"; verbs: add, arrange, boom, clone, down, failover, identity, ip, memory, mirror, move, outbound, remove, rename, rewire, save, seed, spawn, unwire, up, venti, wire\n"},
		{"stat -c '%A %s' /mnt/g/ctl /mnt/g/grid.json /mnt/g/nodes", "-rw-r--r-- 0\n-r--r--r-- 0\ndr-xr-xr-x 0\n"},
	} {
		if got := run(tc.sh); got != tc.want {
			t.Errorf("guest: %s\n got: %q\nwant: %q", tc.sh, got, tc.want)
		}
	}
	// The console: scrollback comes through the kernel, typing reaches the VM.
	h, vm := newHub(t)
	e.SetConsole("cpu1", h)
	vm.Write([]byte("Plan 9 from Bell Labs\r\n"))
	waitFor(t, func() bool { return strings.Contains(string(h.Scrollback()), "Labs") })
	if got := run("head -c 11 /mnt/g/nodes/cpu1/cons; echo"); got != "Plan 9 from\n" {
		t.Errorf("guest: head -c 11 cons = %q", got)
	}
	// cat returns what is buffered and exits (see consFile).
	if got := run("cat /mnt/g/nodes/cpu1/cons"); got != "Plan 9 from Bell Labs\n" {
		t.Errorf("guest: cat cons = %q", got)
	}
	typed := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := vm.Read(buf)
		typed <- string(buf[:n])
	}()
	if got := run("echo fshalt >/mnt/g/nodes/cpu1/cons; echo rc=$?"); got != "rc=0\n" {
		t.Errorf("guest: write cons: %q", got)
	}
	if got := <-typed; got != "fshalt\n" {
		t.Errorf("VM side of cons got %q", got)
	}
	// events: a blocked reader in the guest wakes on a change.
	run("head -n 1 /mnt/g/events >/tmp/ev & true")
	stopBump := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopBump:
				return
			case <-time.After(200 * time.Millisecond):
				e.Bump() // repeated: the guest's open may come after a single bump
			}
		}
	}()
	got := run("wait; cat /tmp/ev")
	close(stopBump)
	if !regexp.MustCompile(`^changed [0-9]+\n$`).MatchString(got) {
		t.Errorf("guest: events read %q", got)
	}

	calls := e.Calls()
	if len(calls) != 1 || calls[0].Node != "cpu1" || !slices.Equal(calls[0].Words, []string{"start"}) {
		t.Errorf("engine calls from the guest = %v", calls)
	}
	if out := run("umount /mnt/g; echo rc=$?"); out != "rc=0\n" {
		t.Errorf("guest umount: %q", out)
	}
	lb.waitLog("gridfs client gone", 1)
}
