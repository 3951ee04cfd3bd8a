package gridfs

import (
	"reflect"
	"testing"
)

func TestNodeStatusRoundTrip(t *testing.T) {
	for _, s := range []NodeStatus{
		{State: StateStopped, Kind: "cpu", IP: "10.0.9.11"},
		{State: StateRunning, Kind: "fossil+auth", IP: "10.0.9.10", PID: 1234, Pending: true, DefaultPassword: true,
			Forwards: []Forward{{564, "127.0.0.1:40001"}, {567, "127.0.0.1:40002"}}},
		{State: StateFailed, Kind: "cpu", IP: "10.0.9.12", Err: `node cpu1: no console prompt: "x" y=z`},
		{State: StateRunning, Kind: "venti", IP: "10.0.9.254", Embedded: true, Addr: "127.0.0.1:17034"},
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
	for _, bad := range []string{"", "booting kind=cpu", "running pid=x", "running kind", "running fwd=564"} {
		if _, err := ParseNodeStatus(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if s, err := ParseNodeStatus("running kind=cpu ip=1.2.3.4 later=field"); err != nil || s.IP != "1.2.3.4" {
		t.Errorf("unknown key: %+v %v", s, err)
	}
}
