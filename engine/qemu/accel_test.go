package qemu

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"gridlord/testing/testenv"
)

func TestProbeKernelHeader(t *testing.T) {
	b := probeKernel()
	le := binary.LittleEndian
	if sum := le.Uint32(b[0:]) + le.Uint32(b[4:]) + le.Uint32(b[8:]); sum != 0 {
		t.Errorf("multiboot magic+flags+checksum = %#x, want 0", sum)
	}
	if le.Uint32(b[4:])&0x10000 == 0 {
		t.Error("a.out kludge flag not set")
	}
}

func TestProbeAccelTCG(t *testing.T) {
	bin := testenv.Tool(t, "qemu-system-x86_64")
	if err := ProbeAccel(context.Background(), bin, "tcg", t.TempDir(), 20*time.Second); err != nil {
		t.Fatalf("tcg probe: %v", err)
	}
	// A made-up accelerator must fail, so the probe cannot pass blindly.
	if err := ProbeAccel(context.Background(), bin, "nosuchaccel", t.TempDir(), 20*time.Second); err == nil {
		t.Fatal("probe of a bogus accelerator succeeded")
	}
}

func TestChooseAccelProvesItsChoice(t *testing.T) {
	bin := testenv.Tool(t, "qemu-system-x86_64")
	t.Setenv(EnvAccel, "")
	dir := t.TempDir()
	accel, err := ChooseAccel(context.Background(), bin, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chosen accelerator: %s", accel)
	if err := ProbeAccel(context.Background(), bin, accel, dir, 20*time.Second); err != nil {
		t.Fatalf("ChooseAccel picked %s, which does not run a guest: %v", accel, err)
	}
	again, err := ChooseAccel(context.Background(), bin, dir, nil)
	if err != nil || again != accel {
		t.Fatalf("cached choice = %q, %v; want %q", again, err, accel)
	}
	t.Setenv(EnvAccel, "tcg")
	if a, _ := ChooseAccel(context.Background(), bin, dir, nil); a != "tcg" {
		t.Errorf("with %s=tcg got %q", EnvAccel, a)
	}
	t.Setenv(EnvAccel, "bogus")
	if _, err := ChooseAccel(context.Background(), bin, dir, nil); err == nil {
		t.Error("bogus override accepted")
	}
}
