package app

import (
	"strings"
	"testing"
)

func TestParseVentiStatsDaemonFormat(t *testing.T) {
	// As engine/daemon writes /venti/stats.
	in := "addr 127.0.0.1:17034\ndir /g/venti\nblocks 42\nstoredbytes 4096\nlogbytes 9000\narenas 1\nclientwrites 50\nclientbytes 8192\ndedupratio 2.000\n"
	v := ParseVentiStats([]byte(in))
	if v.Addr != "127.0.0.1:17034" || v.Blocks != 42 || v.StoredBytes != 4096 || v.WrittenBytes != 8192 || v.DedupRatio() != 2 {
		t.Errorf("parsed %+v", v)
	}
}

func TestForwards(t *testing.T) {
	st := "running kind=cpu ip=10.0.9.11 pid=42 pending=false fwd=17010:127.0.0.1:40001,567:127.0.0.1:40002,17019:127.0.0.1:40003"
	fw := forwards(st)
	if fw["17010"] != "127.0.0.1:40001" || fw["567"] != "127.0.0.1:40002" || fw["17019"] != "127.0.0.1:40003" {
		t.Errorf("forwards %v", fw)
	}
	if len(forwards("stopped kind=cpu")) != 0 {
		t.Error("forwards from a status without fwd=")
	}
}

// FuzzParseVentiStats: whatever the engine sends, parsing never panics.
func FuzzParseVentiStats(f *testing.F) {
	f.Add([]byte("blocks 1\nstoredbytes 2\nclientbytes 3\n"))
	f.Add([]byte("addr\n\n  blocks   x\nerror oops\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ParseVentiStats(b)
		_ = v.DedupRatio()
	})
}

// FuzzForwards: status lines from the engine never make forwards panic,
// and every entry it returns came from the fwd= field.
func FuzzForwards(f *testing.F) {
	f.Add("running fwd=17010:127.0.0.1:1,567:127.0.0.1:2")
	f.Add("fwd=:,,:::")
	f.Fuzz(func(t *testing.T, s string) {
		for port, host := range forwards(s) {
			if !strings.Contains(s, port+":"+host) {
				t.Errorf("forwards(%q) invented %s:%s", s, port, host)
			}
		}
	})
}
