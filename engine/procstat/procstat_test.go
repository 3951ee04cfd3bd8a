//go:build linux

package procstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestMeasureChild measures real child processes: a sleep (idle) and a
// busy loop (a core's worth of CPU).
func TestMeasureChild(t *testing.T) {
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	var m Meter
	time.Sleep(300 * time.Millisecond)
	if _, err := m.Measure(busy.Process.Pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	f, err := m.Measure(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if f.Uptime < 500*time.Millisecond || f.Uptime > time.Minute || f.RSS < 64<<10 || f.RSS > 1<<30 || f.CPU > 20 {
		t.Errorf("sleep: %+v", f)
	}
	b, err := m.Measure(busy.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// The busy loop shares 2 cores with the tests: it gets some of one.
	if b.CPU < 20 || b.CPU > 110 {
		t.Errorf("busy loop: %+v", b)
	}
	self, err := m.Measure(os.Getpid())
	if err != nil || self.RSS == 0 {
		t.Errorf("self: %+v, %v", self, err)
	}
	if _, err := m.Measure(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
