//go:build linux

package gridfs_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"gridlord/testing/testenv"
)

// TestKernelMount mounts gridfs with the Linux kernel's 9P client
// (mount -t 9p -o trans=unix,version=9p2000.L,access=any SOCK DIR) and uses
// it like a shell user would. Kernels without 9P, or sandboxes that forbid
// mounting, skip the test with a loud reason naming what failed.
func TestKernelMount(t *testing.T) {
	testenv.Integration(t)
	if os.Geteuid() != 0 {
		t.Skipf("KERNEL 9P MOUNT NOT TESTED: mounting needs root (euid %d)", os.Geteuid())
	}
	var probe []string
	if !has9p() {
		if mp, err := exec.LookPath("modprobe"); err == nil {
			out, err := exec.Command(mp, "-a", "9p", "9pnet", "9pnet_fd").CombinedOutput()
			probe = append(probe, "modprobe -a 9p 9pnet 9pnet_fd: "+strings.TrimSpace(string(out))+errText(err))
		} else {
			probe = append(probe, "modprobe not installed")
		}
	}
	s := startServer(t)
	dir := shortTempDir(t)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := "trans=unix,version=9p2000.L,access=any,cache=none"
	if err := syscall.Mount(s.sock, mnt, "9p", 0, opts); err != nil {
		why := "the kernel refused the mount"
		switch {
		case errors.Is(err, syscall.ENODEV):
			why = "the running kernel has no 9p filesystem (not in /proc/filesystems, no loadable module)"
		case errors.Is(err, syscall.EPERM):
			why = "mounting is not permitted here (no CAP_SYS_ADMIN in this namespace?)"
		}
		t.Skipf("KERNEL 9P MOUNT NOT TESTED: mount(%q, %q, \"9p\", %q) = %v: %s; kernel %s; 9p in /proc/filesystems: %v; %s",
			s.sock, mnt, opts, err, why, kernelRelease(), has9p(), strings.Join(probe, "; "))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v; detaching", mnt, err)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	t.Logf("kernel %s mounted gridfs at %s", kernelRelease(), mnt)

	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(mnt, p))
		if err != nil {
			t.Fatalf("kernel read %s: %v", p, err)
		}
		return string(b)
	}
	if got := read("nodes/cpu1/status"); got != "stopped ip=10.0.9.11 pending=false\n" {
		t.Errorf("status through the kernel = %q", got)
	}
	if got := read("grid.json"); !strings.Contains(got, `"name": "fossil1"`) {
		t.Errorf("grid.json through the kernel:\n%s", got)
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "nodes"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"cpu1", "fossil1", "venti"}) { // ReadDir sorts
		t.Errorf("ls nodes = %v", names)
	}
	// echo start >nodes/cpu1/ctl (O_WRONLY|O_TRUNC, as a shell does).
	if err := os.WriteFile(filepath.Join(mnt, "nodes/cpu1/ctl"), []byte("start\n"), 0o644); err != nil {
		t.Fatalf("kernel write ctl: %v", err)
	}
	if got := read("nodes/cpu1/status"); got != "running\n" {
		t.Errorf("status after start = %q", got)
	}
	calls := s.e.Calls()
	if len(calls) != 1 || calls[0].Node != "cpu1" || !slices.Equal(calls[0].Words, []string{"start"}) {
		t.Errorf("engine calls = %v", calls)
	}
	// A refused command fails the write with EINVAL, and cat ctl shows why.
	err = os.WriteFile(filepath.Join(mnt, "ctl"), []byte("frobnicate\n"), 0o644)
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("kernel write of bad command: %v, want EINVAL", err)
	}
	if got := read("ctl"); !strings.Contains(got, `last error: "frobnicate": unknown command "frobnicate"`) {
		t.Errorf("ctl after failure:\n%s", got)
	}
}

func has9p() bool {
	b, _ := os.ReadFile("/proc/filesystems")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(l, "nodev")) == "9p" {
			return true
		}
	}
	return false
}

func kernelRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}
