package gridfs

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNodeStatusRoundTrip(t *testing.T) {
	for _, s := range []NodeStatus{
		{State: StateStopped, Kind: "cpu", IP: "10.0.9.11"},
		{State: StateRunning, Kind: "fossil+auth", IP: "10.0.9.10", PID: 1234, Pending: true, DefaultPassword: true,
			Forwards: []Forward{{564, "127.0.0.1:40001"}, {567, "127.0.0.1:40002"}}},
		{State: StateFailed, Kind: "cpu", IP: "10.0.9.12", Err: `node cpu1: no console prompt: "x" y=z`},
		{State: StateRunning, Kind: "venti", IP: "10.0.9.254", Embedded: true, Addr: "127.0.0.1:17034"},
		{State: StateRunning, Kind: "cpu", IP: "10.0.9.11", PID: 4321, Measured: true, Uptime: 125 * time.Second, CPU: 12.5, RSS: 268435456},
	} {
		line := s.Format()
		got, err := ParseNodeStatus(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("%q parsed as %+v, want %+v", line, got, s)
		}
	}
	if line := (NodeStatus{State: StateRunning, Kind: "cpu", PID: 9, Measured: true, Uptime: 3 * time.Second, CPU: 0.25, RSS: 1 << 20}).Format(); !strings.Contains(line, " uptime=3 cpu=0.2 rss=1048576") && !strings.Contains(line, " uptime=3 cpu=0.3 rss=1048576") {
		t.Errorf("figures formatted as %q", line)
	}
	for _, bad := range []string{"", "booting kind=cpu", "running pid=x", "running kind", "running fwd=564", "running cpu=x", "running rss=1.5", "running uptime=-"} {
		if _, err := ParseNodeStatus(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if s, err := ParseNodeStatus("running kind=cpu ip=1.2.3.4 later=field"); err != nil || s.IP != "1.2.3.4" {
		t.Errorf("unknown key: %+v %v", s, err)
	}
}
