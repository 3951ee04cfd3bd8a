package vmtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/network"
	"gridlord/engine/qemu"
	"gridlord/testing/testenv"
)

// envHelper makes this test binary act as a short-lived engine process:
// it starts one node under the state directory named by the variable,
// waits for the guest to be ready, prints "ENGINE-READY PID", and exits
// without stopping the VM, as a crashed or restarted engine would.
const envHelper = "GRIDLORD_VMTEST_ENGINE_DIR"

func TestHelperEngine(t *testing.T) {
	dir := os.Getenv(envHelper)
	if dir == "" {
		t.Skip("helper process for TestReadoptAcrossProcess")
	}
	im := image(t)
	members := plan(t, network.Config{}, "phoenix")
	sw, err := network.New(network.Config{}, members, nil)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := qemu.NewSupervisor(dir, sw, qemu.SupervisorOptions{Accel: "tcg"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := sup.Start(context.Background(), spec(im, "phoenix", members[0].MAC))
	if err != nil {
		t.Fatal(err)
	}
	e := console.NewExpecter(n.Console, true)
	waitReady(t, e)
	fmt.Printf("ENGINE-READY %d\n", n.VM.Info().PID)
	os.Stdout.Sync()
	os.Exit(0) // no cleanup: the engine just goes away
}

// TestReadoptAcrossProcess: an engine process starts a guest and exits; a
// new engine (this process) finds it from the state directory, re-adopts
// it (running, console attached) and re-dials its NIC into a new switch,
// through which the guest reaches the host's venti address.
func TestReadoptAcrossProcess(t *testing.T) {
	image(t)
	dir := shortTempDir(t)
	venti := embeddedVenti(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestHelperEngine$", "-test.v")
	cmd.Env = append(os.Environ(), envHelper+"="+dir, qemu.EnvAccel+"=tcg")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testenv.LogWriter(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := 0
	sc := bufio.NewScanner(out)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if p, ok := strings.CutPrefix(sc.Text(), "ENGINE-READY "); ok {
			pid, _ = strconv.Atoi(p)
		}
	}
	if err := cmd.Wait(); err != nil || pid == 0 {
		t.Fatalf("helper engine: %v; output:\n%s", err, strings.Join(seen, "\n"))
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	})

	members := plan(t, network.Config{}, "phoenix")
	sw, err := network.New(network.Config{}, members, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	venti.expose(t, sw)
	sup := newSupervisor(t, dir, sw)
	defer sup.Close()
	nodes, err := sup.AdoptAll(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("AdoptAll = %d nodes, %v", len(nodes), err)
	}
	n := nodes[0]
	if info := n.VM.Info(); info.State != qemu.Running || info.PID != pid || !info.Adopted {
		t.Fatalf("adopted %+v, want running pid %d", info, pid)
	}
	e := console.NewExpecter(n.Console, false)
	defer e.Close()
	shell(t, e, "echo reborn-$((50+5))", regexp.MustCompile(`reborn-55`))
	shell(t, e, venti.probe(sw), venti.Banner)
	if err := sup.Stop(ctx, "phoenix", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if info := n.VM.Info(); info.State != qemu.Stopped {
		t.Fatalf("after Stop: %+v", info)
	}
}
