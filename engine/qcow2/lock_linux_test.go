package qcow2

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/testing/testenv"
)

func TestLockTwoWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.qcow2")
	mustCreate(t, p, CreateOptions{Size: 1 << 20})
	im := mustOpen(t, p)
	if _, err := Open(p); !errors.Is(err, ErrInUse) {
		t.Fatalf("second writable Open: %v, want ErrInUse", err)
	}
	ro, err := OpenReadOnly(p) // reading is never blocked
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	im.Close()
	im2 := mustOpen(t, p) // the locks went with Close
	im2.Close()
}

// TestQemuLocks checks both directions against QEMU's own locking: we refuse
// to write an image qemu-io has open, and QEMU refuses one we write.
func TestQemuLocks(t *testing.T) {
	qemuIO := testenv.Tool(t, "qemu-io")
	p := filepath.Join(t.TempDir(), "a.qcow2")
	mustCreate(t, p, CreateOptions{Size: 1 << 20})

	cmd := exec.Command(qemuIO, "-f", "qcow2", "-c", "sleep 20000", p)
	var qout strings.Builder
	cmd.Stdout, cmd.Stderr = &qout, &qout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	// Wait (without taking locks, which would make qemu-io fail) until
	// qemu-io holds the image.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); checkLocks(f) == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	f.Close()
	_, err = Open(p)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("Open while qemu-io has the image: %v, want ErrInUse (qemu-io: %s)", err, qout.String())
	}
	t.Log(err)
	cmd.Process.Kill()
	<-done

	im := mustOpen(t, p)
	out, err := exec.Command(qemuIO, "-f", "qcow2", "-c", "read 0 512", p).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "lock") {
		t.Fatalf("qemu-io opened an image we hold for writing: %v\n%s", err, out)
	}
	im.Close()
	if out, err := exec.Command(qemuIO, "-f", "qcow2", "-c", "read 0 512", p).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io after Close: %v\n%s", err, out)
	}
}
