package daemon

import (
	"os/exec"
	"runtime"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/gridfs"
	"gridlord/engine/qemu"
)

// pidVM is a VM that is a real process (as QEMU's are): the engine
// measures it by its pid.
type pidVM struct{ pid int }

func (v pidVM) Name() string          { return "pid" }
func (v pidVM) Info() qemu.Info       { return qemu.Info{State: qemu.Running, PID: v.pid} }
func (v pidVM) Done() <-chan struct{} { return nil }
func (v pidVM) Console() *console.Hub { return nil }

// TestStatusFiguresOfARealProcess: a running VM's status carries its
// process's uptime, CPU and RSS, measured from the OS (here a sleep).
func TestStatusFiguresOfARealProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("figures are measured on Linux only")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(1100 * time.Millisecond)
	var e Engine
	s := gridfs.NodeStatus{State: gridfs.StateRunning, Kind: "cpu", PID: cmd.Process.Pid}
	e.measure(pidVM{cmd.Process.Pid}, &s)
	if !s.Measured || s.Uptime < time.Second || s.Uptime > time.Minute || s.RSS < 64<<10 || s.CPU < 0 || s.CPU > 20 {
		t.Fatalf("figures of a sleep: %+v", s)
	}
	back, err := gridfs.ParseNodeStatus(s.Format())
	if err != nil || !back.Measured || back.RSS != s.RSS || back.Uptime != s.Uptime.Truncate(time.Second) {
		t.Errorf("status line %q read back as %+v (%v)", s.Format(), back, err)
	}
	// A process that ended has no figures.
	gone := gridfs.NodeStatus{State: gridfs.StateRunning, PID: 1 << 30}
	e.measure(pidVM{1 << 30}, &gone)
	if gone.Measured {
		t.Errorf("figures of no process: %+v", gone)
	}
}
