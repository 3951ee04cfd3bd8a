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
		if st := g.cli("status"); !strings.Contains(st, "spawned-from="+s.snap) {
			t.Errorf("status does not say %s runs from %s:\n%s", s.node, s.snap, st)
		}
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

// TestRealFailover runs the real seed's fossil1 on a mirror alone: the
// grid's venti is mirrored to a separate venti process, the fossils are
// switched to the mirror, the grid's venti server is stopped, and fossil1
// boots and archives a new file into the mirror (the archive lists from
// the mirror with unvac).
func TestRealFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	m := startServer(t, t.TempDir()) // before newRealGrid sets the environment for the CLI
	g := newRealGrid(t, ctx)
	g.cli2("mirror", "add", m.addr)
	// A save of the stopped fossil1 makes its disk, which stores the seed
	// in the grid's venti without a boot; the mirror follows.
	g.cli("save", "fossil1", "before-failover")
	for deadline := time.Now().Add(3 * time.Minute); ; {
		if _, _, code := runCLI(t, ctx, "mirror", "verify", "-grid", g.dir, m.addr); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror has not caught up after three minutes:\n%s", g.cli2("mirror", "status"))
		}
		time.Sleep(2 * time.Second)
	}
	g.cli("failover", m.addr)
	c := g.client()
	ini, err := c.ReadFile(ctx, "/nodes/fossil1/ini")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ini), "venti=tcp!10.0.9.254!17035") {
		t.Fatalf("fossil1's plan9.ini after failover:\n%s", ini)
	}
	g.cli2("venti", "stop")
	if st := states(t, ctx, c)["venti"]; st != "stopped" {
		t.Fatalf("the grid's venti is %s after venti stop", st)
	}

	g.cli("start", "fossil1")
	n := nonce(t)
	file := "/usr/gridlord-failover-" + n
	g.exec("fossil1", "echo on the mirror "+n+" >"+file)
	before, after, _ := g.archiveListing("fossil1", m.addr, file, 4*time.Minute)
	t.Logf("fossil1 archived %s -> %s into the mirror with the grid's venti stopped", before, after)
	g.cli("down")
	g.cli2("venti", "start")
	g.cli("failover", "off")
	if ini, _ := c.ReadFile(ctx, "/nodes/fossil1/ini"); !strings.Contains(string(ini), "venti=tcp!10.0.9.254!17034") {
		t.Errorf("fossil1's plan9.ini after failover off:\n%s", ini)
	}
}

// cli2 is cli for two-word commands ("mirror add", "venti stop").
func (g *realGrid) cli2(cmd, sub string, args ...string) string {
	g.t.Helper()
	out, errs, code := runCLI(g.t, g.ctx, append([]string{cmd, sub, "-grid", g.dir}, args...)...)
	if code != 0 {
		g.t.Fatalf("gridlord %s %s %s: exit %d: %s", cmd, sub, strings.Join(args, " "), code, errs)
	}
	return out
}

// TestRealFSSnapshot saves the file system of the running fossil1 (an
// archival snapshot into the grid's venti), changes the file afterwards,
// and spawns a fossil from the snapshot: its fossil is formatted from the
// archive (fossil/flfmt -v), and a cpu rewired to it roots on exactly the
// tree of the snapshot.
func TestRealFSSnapshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	g := newRealGrid(t, ctx)
	n := nonce(t)
	file := "/usr/gridlord-fs-" + n
	g.cli("start", "fossil1")
	c := g.client()
	g.exec("fossil1", "echo in the snapshot "+n+" >"+file)
	start := time.Now()
	g.cli("save", "fossil1", "fs-one")
	s := snapshotOf(t, ctx, c, "fs-one")
	t.Logf("file-system snapshot of the running fossil1: %v, %s, %d new bytes", time.Since(start).Round(time.Millisecond), s.Vac, s.Snapshot.NewBytes)
	if s.Snapshot.Kind != "fs" || s.VacForm != "fossil" {
		t.Fatalf("snapshot of a running fossil: kind %q form %q", s.Snapshot.Kind, s.VacForm)
	}
	g.exec("fossil1", "echo changed after "+n+" >"+file)

	// fossil2 is spawned while fossil1 runs (the running switch gives it
	// its lease); its format boot roots on the running fossil1.
	g.cli("spawn", "fs-one", "as", "fossil2")
	start = time.Now()
	g.cli("start", "fossil2")
	t.Logf("first start of fossil2 (format from the archive, then boot): %v", time.Since(start).Round(time.Millisecond))
	if got := g.exec("fossil2", "cat "+file); got != "in the snapshot "+n+"\n" {
		t.Fatalf("fossil2 reads %s as %q", file, got)
	}
	if st := g.cli("status"); !strings.Contains(st, "spawned-from=fs-one") {
		t.Errorf("status does not say fossil2 runs from fs-one:\n%s", st)
	}
	g.cli("rewire", "cpu1", "fossil2")
	g.cli("start", "cpu1")
	if got := g.exec("cpu1", "cat "+file); got != "in the snapshot "+n+"\n" {
		t.Fatalf("cpu1 rooted on fossil2 reads %s as %q", file, got)
	}
	if out := g.exec("cpu1", "cat /dev/sysname"); out != "cpu1" {
		t.Fatalf("cpu1: sysname %q", out)
	}

	// invite: a new user in the spawned file system (fossil user, home,
	// keyfs entry), saved as a new snapshot; the user logs in to cpu1,
	// which fossil2 roots and authenticates, and the new snapshot's
	// archive has the home directory.
	t.Setenv("PASS", "wonderland-"+n)
	g.cli("invite", "alice", "fs-one", "fs-two")
	if out, errs, code := runCLI(t, ctx, "exec", "-grid", g.dir, "-u", "alice", "cpu1", "--", "cat", "/dev/user"); code != 0 || out != "alice" {
		t.Fatalf("exec -u alice on cpu1 after invite: exit %d, %q, %s", code, out, errs)
	}
	t.Setenv("PASS", "")
	two := snapshotOf(t, ctx, c, "fs-two")
	stats, err := c.ReadFile(ctx, "/venti/stats")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(strings.SplitN(string(stats), "\n", 2)[0], "addr ")
	list, errs, code := runCLI(t, ctx, "unvac", "-h", addr, "-t", two.Vac)
	if code != 0 || !strings.Contains(list, "active/usr/alice") || !strings.Contains(list, "active/usr/gridlord-fs-"+n) {
		t.Fatalf("unvac -t %s (fs-two): exit %d; home of alice listed %v: %s", two.Vac, code, strings.Contains(list, "active/usr/alice"), errs)
	}
	g.cli("down")
}
