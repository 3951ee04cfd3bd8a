package qemu

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestDialListeningWaitsForTheSocket: a NIC's socket that QEMU creates a
// little after QMP answers (its stream netdev listens asynchronously) is
// connected once it appears; one that never appears fails after the wait.
func TestDialListeningWaitsForTheSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net0.sock")
	ep := Endpoint{"unix", path}
	accepted := make(chan struct{})
	go func() {
		time.Sleep(200 * time.Millisecond)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Error(err)
			return
		}
		defer l.Close()
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		close(accepted)
	}()
	c, err := dialListening(context.Background(), ep, 5*time.Second)
	if err != nil {
		t.Fatalf("a socket that appears after 200 ms: %v", err)
	}
	c.Close()
	<-accepted
	start := time.Now()
	if _, err := dialListening(context.Background(), Endpoint{"unix", path + ".never"}, 300*time.Millisecond); err == nil {
		t.Fatal("a socket that never appears was connected")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("gave up after %v, before the wait", d)
	}
}
