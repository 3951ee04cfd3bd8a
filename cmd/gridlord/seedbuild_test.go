package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gridlord/engine/daemon"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/qemu"
	"gridlord/engine/seedbuild"
	"gridlord/engine/seedbuild/seedtest"
	"gridlord/testing/testenv"
)

// seedBuild runs "gridlord seed build ARGS" in this process.
func seedBuild(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &out, log: slog.New(slog.DiscardHandler)}
	err := runSeedBuild(ctx, env, args)
	return out.String(), err
}

// TestSeedBuildRefuses: bad use and broken distributions are refused
// before anything starts, the message naming what is missing.
func TestSeedBuildRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := seedBuild(ctx, "--identity", "alice@lab:wonderland"); !errors.Is(err, errUsage) {
		t.Errorf("no --from: %v", err)
	}
	if _, err := seedBuild(ctx, "--from", t.TempDir(), "--identity", "alice-lab"); !errors.Is(err, errUsage) {
		t.Errorf("a malformed identity: %v", err)
	}
	if _, err := seedBuild(ctx, "--from", t.TempDir(), "--profile", "tiny", "--identity", "alice@lab:wonderland"); !errors.Is(err, errUsage) {
		t.Errorf("an unknown profile: %v", err)
	}
	empty := t.TempDir()
	_, err := seedBuild(ctx, "-grid", t.TempDir(), "--from", empty, "--identity", "alice@lab:wonderland")
	var me *seedbuild.MissingError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "a cpu kernel") || !strings.Contains(err.Error(), "the replica log") {
		t.Errorf("an empty directory: %v", err)
	}
}

// TestSeedBuildFromDirectory: gridlord seed build from a distribution's
// directory (issue 13, done-when 2) prints each step's progress and
// records the seed, with the identity given, in the grid.
func TestSeedBuildFromDirectory(t *testing.T) {
	testenv.SeedBuild(t)
	testenv.Tool(t, "qemu-system-i386")
	tree := seedtest.Tree(t)
	t.Setenv(qemu.EnvAccel, "tcg")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	base := t.TempDir()
	dir := filepath.Join(base, "g")
	if _, err := daemon.InitGrid(dir, daemon.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	// The grid's engine, serving its socket as "gridlord engine" does:
	// the command is its client.
	e, err := daemon.Open(ctx, dir, daemon.Options{VentiAddr: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- e.Serve(sctx) }()
	defer func() { stop(); <-served }()
	out, err := seedBuild(ctx, "-grid", dir, "--from", tree, "--name", "fromdir", "--identity", "carol@lab:password1", "--sysname", "helix")
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[1/10] boot installer …", "[5/10] copy: ", "MB copied", "[10/10] first boot done", "seed fromdir built", "carol@lab"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	g, err := grid.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := g.Seed("fromdir")
	if err != nil {
		t.Fatal(err)
	}
	if s.AuthID != "carol" || s.Password("carol", "lab") != "password1" || !s.VentiImported || s.Vac == "" {
		t.Errorf("seed record %+v", s)
	}

	// A grid from it, through the same engine: fossil1 (fossil+auth) and
	// cpu1 made of the new seed boot, and carol, logged in with the
	// build's password, sees the tree's /386/bin.
	c, err := gridfs.Dial(ctx, filepath.Join(dir, grid.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, line := range []string{"remove cpu1", "remove fossil1", "add fossil+auth fossil1 fromdir", "add cpu cpu1 fromdir", "wire cpu1 fossil1", "wire fossil1 venti"} {
		if err := c.Ctl(ctx, line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	cli := func(args ...string) string {
		t.Helper()
		out, errs, code := runCLI(t, ctx, append([]string{args[0], "-grid", dir}, args[1:]...)...)
		if code != 0 {
			t.Fatalf("gridlord %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		return out
	}
	defer runCLI(t, context.Background(), "down", "-grid", dir)
	cli("start", "cpu1")
	ents, err := os.ReadDir(filepath.Join(tree, "386/bin"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(cli("exec", "-u", "carol", "cpu1", "--", "ls /386/bin | wc -l"))
	if n, _ := strconv.Atoi(got); n != len(ents) {
		t.Fatalf("exec -u carol cpu1 -- ls /386/bin | wc -l = %q, the tree has %d", got, len(ents))
	}
	t.Logf("exec -u carol cpu1 -- ls /386/bin | wc -l = %s, as in the tree", got)
}
