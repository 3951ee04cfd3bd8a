package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gridlord/engine/drawterm"
	"gridlord/engine/qemu"
	"gridlord/engine/seedbuild"
	"gridlord/engine/seedbuild/seedtest"
	"gridlord/testing/testenv"
)

// TestBuildSeedRunsAGrid is issue 13's first proof: a seed built from a
// Plan 9 CD image (the grid profile, a new identity) by a real install,
// imported into the grid, then fossil1 (fossil+auth) and cpu1 made from
// it boot; on cpu1, logged in with the identity given to the build, ls
// /386/bin | wc -l matches the distribution's tree, and a wrong password
// is refused.
func TestBuildSeedRunsAGrid(t *testing.T) {
	testenv.SeedBuild(t)
	testenv.Tool(t, "qemu-system-i386")
	testenv.Tool(t, "drawterm")
	iso, tree := seedtest.ISO(t), seedtest.Tree(t)
	t.Setenv(qemu.EnvAccel, "tcg")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	dir := filepath.Join(shortDir(t), "g")
	if _, err := InitGrid(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, dir, Options{VentiAddr: "127.0.0.1:0", Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	defer e.Stop(context.Background(), true)

	id := seedbuild.Identity{User: "alice", AuthDom: "lab", Password: "wonderland"}
	start := time.Now()
	var steps []string
	seed, err := e.BuildSeed(ctx, BuildSeedOptions{From: iso, Name: "built", Identity: id, Progress: func(p seedbuild.Progress) {
		if p.State != seedbuild.StepRunning {
			steps = append(steps, p.Step+" "+string(p.State)+" "+p.Elapsed.Round(time.Second).String())
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %v: %v", time.Since(start).Round(time.Second), steps)
	if seed.AuthID != "alice" || seed.AuthDom != "lab" || !seed.VentiImported || seed.Vac == "" {
		t.Fatalf("seed record %+v", seed)
	}
	for _, w := range [][]string{
		{"remove", "cpu1"}, {"remove", "fossil1"},
		{"add", "fossil+auth", "fossil1", "built"}, {"add", "cpu", "cpu1", "built"},
		{"wire", "cpu1", "fossil1"}, {"wire", "fossil1", "venti"},
	} {
		if err := e.Ctl(ctx, w); err != nil {
			t.Fatalf("%v: %v", w, err)
		}
	}
	start = time.Now()
	if err := e.Start(ctx, "cpu1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("fossil1 and cpu1 up from the built seed in %v", time.Since(start).Round(time.Second))
	for _, n := range []string{"fossil1", "cpu1"} {
		if st, _ := e.NodeStatus(n); !strings.HasPrefix(st, StateRunning) {
			t.Fatalf("%s: %s", n, st)
		}
	}

	ents, err := os.ReadDir(filepath.Join(tree, "386/bin"))
	if err != nil {
		t.Fatal(err)
	}
	target, err := e.DrawtermTarget("cpu1")
	if err != nil {
		t.Fatal(err)
	}
	if target.User != id.User || target.AuthDom != id.AuthDom || target.Password != id.Password {
		t.Fatalf("cpu1's drawterm target is %s@%s (password known: %v), want the build's identity", target.User, target.AuthDom, target.Password != "")
	}
	dt, err := drawterm.Find(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := drawterm.Exec(ctx, dt, target, "ls /386/bin | wc -l", &out)
	if err != nil || !res.OK() {
		t.Fatalf("exec cpu1 as alice: %v %+v: %s", err, res, out.String())
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(out.String())); got != len(ents) {
		t.Fatalf("exec cpu1 -- ls /386/bin | wc -l = %q, the tree has %d", out.String(), len(ents))
	}
	t.Logf("exec cpu1 -- ls /386/bin | wc -l = %d as %s@%s, as in the tree", len(ents), id.User, id.AuthDom)

	target.Password = "notwonderland"
	out.Reset()
	tctx, tcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer tcancel()
	if res, err := drawterm.Exec(tctx, dt, target, "echo in", &out); err == nil && res.OK() {
		t.Fatalf("a wrong password logged in: %s", out.String())
	}
}

// TestBuildSeedRefusesBrokenDistributions: a distribution without a
// kernel or replica log, or a truncated CD image, is refused by name
// before any VM starts (no qemu is needed to see it), and nothing is
// recorded or left in the cache.
func TestBuildSeedRefusesBrokenDistributions(t *testing.T) {
	iso := seedtest.ISO(t)
	cut := seedtest.Truncated(t, iso)
	dir := filepath.Join(shortDir(t), "g")
	if _, err := InitGrid(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := Open(context.Background(), dir, Options{VentiAddr: "127.0.0.1:0", Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	id := seedbuild.Identity{User: "alice", AuthDom: "lab", Password: "wonderland"}
	for _, tc := range []struct{ from, want string }{
		{seedtest.CopyTree(t, "386/9pccpuf", "386/9pccpu"), "a cpu kernel (386/9pccpuf or 386/9pccpu)"},
		{seedtest.CopyTree(t, seedbuild.LogPath), "the replica log (dist/replica/plan9.log)"},
		{cut, "truncated"},
		{filepath.Join(t.TempDir(), "absent.iso"), "no such file"},
	} {
		start := time.Now()
		_, err := e.BuildSeed(context.Background(), BuildSeedOptions{From: tc.from, Name: "broken", Identity: id})
		var me *seedbuild.MissingError
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error naming %q", tc.from, err, tc.want)
		}
		if tc.want != "truncated" && tc.want != "no such file" && !errors.As(err, &me) {
			t.Errorf("%s: %v is not a MissingError", tc.from, err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s: refused after %v: a VM started?", tc.from, d)
		}
	}
	if lines, _ := e.Seeds(); strings.Contains(strings.Join(lines, "\n"), "broken ") {
		t.Error("a refused build recorded a seed")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "cache", BuiltDir)); len(ents) != 0 {
		t.Errorf("a refused build left %d files in the cache", len(ents))
	}
	if _, err := e.BuildSeed(context.Background(), BuildSeedOptions{From: iso, Name: "x", Identity: seedbuild.Identity{User: "alice", AuthDom: "lab", Password: "no"}}); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("a too short password: %v", err)
	}
}
