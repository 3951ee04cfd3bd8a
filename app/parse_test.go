package app

import (
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

// FuzzParseVentiStats: whatever the engine sends, parsing never panics.
func FuzzParseVentiStats(f *testing.F) {
	f.Add([]byte("blocks 1\nstoredbytes 2\nclientbytes 3\n"))
	f.Add([]byte("addr\n\n  blocks   x\nerror oops\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ParseVentiStats(b)
		_ = v.DedupRatio()
	})
}
