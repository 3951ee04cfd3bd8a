package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/engine/daemon"
	"gridlord/engine/grid"
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
}
