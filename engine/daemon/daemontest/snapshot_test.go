package daemontest_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/grid"
	"gridlord/engine/qcow2"
)

// virtualDisk returns the virtual disk of the image at path.
func virtualDisk(t *testing.T, path string) []byte {
	t.Helper()
	im, err := qcow2.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	b, err := io.ReadAll(io.NewSectionReader(im, 0, im.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSnapshots: save a stopped node's disk under a name (refused for a
// running cpu and for a name already saved), spawn nodes from it (same disk
// outside the configuration the engine writes for the new place, the
// origin's links), then boom one: the node and its directory go, the
// snapshot stays, and boom refuses nodes not spawned.
func TestSnapshots(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{})
	e := g.Engine
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Ctl(ctx, []string{"up"}); err != nil {
		t.Fatal(err)
	}
	// A running cpu has no file system of its own to save (a running
	// fossil's is saved as an archive: that needs real Plan 9, see
	// cmd/gridlord's TestRealFSSnapshot).
	if err := e.Ctl(ctx, []string{"save", "cpu1", "snap1"}); err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("save of a running cpu: %v", err)
	}
	if err := e.Ctl(ctx, []string{"down"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl(ctx, []string{"save", "fossil1", "snap1"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl(ctx, []string{"save", "cpu1", "snap1"}); err == nil || !strings.Contains(err.Error(), "never changes meaning") {
		t.Fatalf("second save under one name: %v", err)
	}
	var gr grid.Grid
	b, _ := e.GridJSON()
	if err := json.Unmarshal(b, &gr); err != nil {
		t.Fatal(err)
	}
	s, err := gr.Seed("snap1")
	if err != nil || s.Snapshot == nil || s.Snapshot.Node != "fossil1" || s.Snapshot.NodeKind != "fossil+auth" || s.Vac == "" {
		t.Fatalf("snapshot record %+v %+v, %v", s, s.Snapshot, err)
	}
	// Saving again changes nothing in the venti: everything is shared.
	if err := e.Ctl(ctx, []string{"save", "fossil1", "snap2"}); err != nil {
		t.Fatal(err)
	}
	b, _ = e.GridJSON()
	json.Unmarshal(b, &gr)
	if s2, _ := gr.Seed("snap2"); s2.Snapshot == nil || s2.Snapshot.NewBytes > 64<<10 {
		t.Fatalf("an unchanged disk saved again cost %d bytes", s2.Snapshot.NewBytes)
	}

	if err := e.Ctl(ctx, []string{"spawn", "snap1", "as", "fossil9"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl(ctx, []string{"spawn", "snap1"}); err != nil {
		t.Fatal(err)
	}
	b, _ = e.GridJSON()
	json.Unmarshal(b, &gr)
	n := gr.Node("fossil9")
	if n == nil || n.Seed != "snap1" || string(n.Kind) != "fossil+auth" || len(gr.Nodes) != 5 {
		t.Fatalf("spawned node %+v; %d nodes", n, len(gr.Nodes))
	}
	if gr.Target(n, grid.LinkArchive) == nil {
		t.Errorf("fossil9 did not get fossil1's archive link")
	}
	src, _ := e.DiskPath("fossil1")
	dst, _ := e.DiskPath("fossil9")
	a, c := virtualDisk(t, src), virtualDisk(t, dst)
	if len(a) != len(c) {
		t.Fatalf("spawned disk is %d bytes, origin %d", len(c), len(a))
	}
	// The disks differ only where the engine wrote fossil9's place (9fat's
	// plan9.ini, nvram): far less than the disk.
	diff := 0
	for i := range a {
		if a[i] != c[i] {
			diff++
		}
	}
	if diff == 0 || diff > len(a)/20 {
		t.Errorf("spawned disk differs from its origin in %d of %d bytes", diff, len(a))
	}
	if err := e.NodeCtl(ctx, "fossil9", []string{"start"}); err != nil {
		t.Fatal(err)
	}

	if err := e.Ctl(ctx, []string{"boom", "cpu1"}); err == nil || !strings.Contains(err.Error(), "not spawned") {
		t.Fatalf("boom of a node not spawned: %v", err)
	}
	if err := e.Ctl(ctx, []string{"boom", "fossil9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("fossil9's disk survived boom: %v", err)
	}
	b, _ = e.GridJSON()
	json.Unmarshal(b, &gr)
	if gr.Node("fossil9") != nil {
		t.Error("fossil9 still in the grid")
	}
	if _, err := gr.Seed("snap1"); err != nil {
		t.Errorf("boom lost the snapshot: %v", err)
	}
}
