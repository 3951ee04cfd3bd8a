package daemon

import (
	"context"
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
