package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"gridlord/engine/gridfs"
	"gridlord/images"
)

// snapshotOf reads the snapshot record name from the engine's grid.json.
func snapshotOf(t *testing.T, ctx context.Context, c *gridfs.Client, name string) images.Seed {
	t.Helper()
	g, err := readGrid(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := g.Seed(name)
	if err != nil || s.Snapshot == nil {
		t.Fatalf("snapshot %s: %+v, %v", name, s, err)
	}
	return s
}

// TestRealSnapshots saves the disk of the real seed's fossil1 as a
// snapshot, changes a file on it, saves again, and spawns a node from
// each: the second snapshot costs only the changed blocks (a bound the
// test asserts), and each spawned node's file system holds exactly the
// file as it was when its snapshot was saved (read through exec).
func TestRealSnapshots(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	g := newRealGrid(t, ctx)
	n := nonce(t)
	file := "/usr/gridlord-snap-" + n

	g.cli("start", "fossil1")
	c := g.client()
	g.exec("fossil1", "echo first "+n+" >"+file)
	g.cli("stop", "fossil1")
	start := time.Now()
	g.cli("save", "fossil1", "snap-first")
	saveTime := time.Since(start)
	first := snapshotOf(t, ctx, c, "snap-first")

	g.cli("start", "fossil1")
	g.exec("fossil1", "echo second "+n+" >"+file)
	g.cli("stop", "fossil1")
	g.cli("save", "fossil1", "snap-second")
	second := snapshotOf(t, ctx, c, "snap-second")
	t.Logf("save of fossil1 (1 GiB disk of the real seed): %v; the first snapshot added %d bytes to the venti, the second (one file changed, one boot) %d",
		saveTime.Round(time.Millisecond), first.Snapshot.NewBytes, second.Snapshot.NewBytes)
	// A boot and a changed file touch a few fossil blocks, the nvram-free
	// 9fat and the logs: far below the 67 MB seed, and the venti holds it
	// all once.
	if second.Snapshot.NewBytes > 1<<20 {
		t.Errorf("the second snapshot cost %d bytes; only the changed blocks (a few hundred KiB) should", second.Snapshot.NewBytes)
	}
	if _, _, code := runCLI(t, ctx, "save", "-grid", g.dir, "fossil1", "snap-first"); code == 0 {
		t.Error("saving again under a used name succeeded")
	}
	scores := g.cli("scores")
	if i, j := strings.Index(scores, "snap-second"), strings.Index(scores, "snap-first"); i < 0 || j < 0 || i > j {
		t.Errorf("scores does not list the snapshots newest first:\n%s", scores)
	}

	for _, s := range []struct{ snap, node, want string }{
		{"snap-first", "fossil2", "first " + n + "\n"},
		{"snap-second", "fossil3", "second " + n + "\n"},
	} {
		g.cli("spawn", s.snap, "as", s.node)
		g.cli("start", s.node)
		if got := g.exec(s.node, "cat "+file); got != s.want {
			t.Errorf("%s (spawned from %s) reads %s as %q, want %q", s.node, s.snap, file, got, s.want)
		}
		if got := g.exec(s.node, "cat /dev/sysname"); got == "" {
			t.Errorf("%s: no sysname", s.node)
		}
		g.cli("boom", s.node)
	}
	if strings.Contains(g.cli("status"), "fossil2") {
		t.Error("fossil2 still listed after boom")
	}
}
