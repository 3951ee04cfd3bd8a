package seedbuild

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"gridlord/engine/plan9disk"
)

// TestTargetLayout: a 1 GiB disk is laid out like the real installation
// (plan9-disk-layout.md) within rounding, other sizes in proportion, and
// the partitions tile the plan9 partition.
func TestTargetLayout(t *testing.T) {
	real := map[string]int64{"9fat": 204800, "nvram": 1, "fossil": 800000, "arenas": 950000, "isect": 50200}
	for _, size := range []int64{64 << 20, 512 << 20, 1 << 30, 2 << 30, 40 << 30} {
		parts, err := TargetLayout(size)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		at := int64(0)
		for _, p := range parts {
			names = append(names, p.Name)
			if p.Start != at || p.End <= p.Start {
				t.Errorf("%d: %s %d..%d does not follow at %d", size, p.Name, p.Start, p.End, at)
			}
			at = p.End
		}
		if strings.Join(names, " ") != "9fat nvram fossil arenas isect" || at != size/512-63 {
			t.Errorf("%d: %v ends at %d, want %d", size, names, at, size/512-63)
		}
		if size == 1<<30 {
			for _, p := range parts {
				// The real disk left 91,576 sectors unused at its end;
				// this layout shares them out, 5% at most.
				if d := p.Sectors() - real[p.Name]; d < 0 || d > real[p.Name]/19 {
					t.Errorf("1 GiB: %s has %d sectors, the installer gave %d", p.Name, p.Sectors(), real[p.Name])
				}
			}
		}
	}
	if _, err := TargetLayout(10 << 20); err == nil {
		t.Error("a 10 MiB target accepted")
	}
	if MinTargetSize(ProfileFull) <= MinTargetSize(ProfileGrid) {
		t.Error("the full profile needs more room than the grid one")
	}
}

func TestWriteTargetDisk(t *testing.T) {
	mbrCode := bytes.Repeat([]byte{0x5A}, 446)
	d := &Distribution{FS: fstest.MapFS{"386/mbr": {Data: mbrCode}}}
	p := filepath.Join(t.TempDir(), "target.qcow2")
	if err := d.WriteTargetDisk(p, 1<<30); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Size() > 4<<20 {
		t.Fatalf("target disk: %v, %d bytes (want a small qcow2)", err, st.Size())
	}
	im, closeImg, err := plan9disk.OpenImage(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeImg()
	want, _ := TargetLayout(1 << 30)
	for _, w := range want {
		got, ok := im.Table.Find(w.Name)
		if !ok || got.Sectors() != w.Sectors() {
			t.Errorf("partition %s: %+v (found %v), want %d sectors", w.Name, got, ok, w.Sectors())
		}
	}
	if err := d.WriteTargetDisk(p, 1<<30); err == nil {
		t.Error("an existing target disk was overwritten")
	}
	bad := filepath.Join(t.TempDir(), "bad.qcow2")
	if err := (&Distribution{FS: fstest.MapFS{}}).WriteTargetDisk(bad, 1<<30); err == nil || !strings.Contains(err.Error(), "386/mbr") {
		t.Errorf("without 386/mbr: %v", err)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("a failed target disk was left behind")
	}
}
