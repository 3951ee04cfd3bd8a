package daemon

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/engine/qemu"
	"gridlord/testing/standin"
	"gridlord/testing/testenv"
)

// TestReadyTimeout: a node that never shows its ready line fails after the
// timeout with the console tail in the error, its VM is powered off and its
// state is failed. (The grid bring-up itself is tested end to end through
// the CLI in cmd/gridlord.)
func TestReadyTimeout(t *testing.T) {
	testenv.Tool(t, "qemu-system-x86_64")
	t.Setenv(qemu.EnvAccel, "tcg")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	im, err := standin.Build(ctx, standin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, img := newTestGrid(t)
	e.opts.ReadyTimeout = 20 * time.Second
	_, err = e.ImportSeed(ctx, "p9small", img, ImportOptions{Boot: &DirectBoot{
		Kernel: im.Kernel, Initrd: im.Initrd, Append: im.Append("{name}"),
		Ready: "this line never appears", NIC: "e1000", Arch: "amd64",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background(), true)
	err = e.Start(ctx, "fossil1")
	if err == nil {
		t.Fatal("start succeeded without the ready line")
	}
	msg := err.Error()
	if !strings.Contains(msg, "no ready line") || !strings.Contains(msg, "console tail") || !strings.Contains(msg, standin.ReadyLine) {
		t.Fatalf("error lacks the reason or the console tail:\n%s", msg)
	}
	st, _ := e.NodeStatus("fossil1")
	if !strings.HasPrefix(st, "failed ") || !strings.Contains(st, "pid=0") {
		t.Errorf("status after failed start: %s", st)
	}
}

// TestRealSeedFailedBoot: on the shipped real seed (imported from the
// binary on the first start, with no file given), a boot that does not
// reach readiness in time fails with the console tail, powers the VM off
// and leaves the grid and the node's disk as they were — the model
// unchanged, the disk a clean qcow2 — and the next start boots it.
func TestRealSeedFailedBoot(t *testing.T) {
	testenv.Tool(t, "qemu-system-i386")
	qemuImg := testenv.Tool(t, "qemu-img")
	t.Setenv(qemu.EnvAccel, "tcg")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := filepath.Join(shortDir(t), "g")
	if _, err := InitGrid(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, dir, Options{VentiAddr: "127.0.0.1:0", Log: testLog(t), ReadyTimeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	defer e.Stop(context.Background(), true)
	err = e.Start(ctx, "fossil1")
	if err == nil || !strings.Contains(err.Error(), "console tail") {
		t.Fatalf("a 4 s boot: %v, want a failure with the console tail", err)
	}
	if st, _ := e.NodeStatus("fossil1"); !strings.HasPrefix(st, "failed ") || !strings.Contains(st, "pid=0") {
		t.Fatalf("status after the failed boot: %s", st)
	}
	before, err := e.GridJSON()
	if err != nil {
		t.Fatal(err)
	}
	disk, _ := e.DiskPath("fossil1")
	if out, err := exec.Command(qemuImg, "check", disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check of fossil1's disk after the failed boot: %v\n%s", err, out)
	}
	if ini, err := ReadDiskIni(disk); err != nil || !strings.Contains(string(ini), "sysname=helix") {
		t.Fatalf("fossil1's plan9.ini after the failed boot: %v\n%s", err, ini)
	}
	e.opts.ReadyTimeout = 5 * time.Minute
	if err := e.Start(ctx, "fossil1"); err != nil {
		t.Fatalf("start after the failed boot: %v", err)
	}
	after, _ := e.GridJSON()
	if !bytes.Equal(before, after) {
		t.Errorf("grid.json changed across the failed boot and the good one:\n%s\n---\n%s", before, after)
	}
	if err := e.Stop(ctx, false); err != nil {
		t.Fatal(err)
	}
}
