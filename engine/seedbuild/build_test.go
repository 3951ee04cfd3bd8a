package seedbuild_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/engine/seedbuild"
	"gridlord/engine/seedbuild/seedtest"
	"gridlord/testing/testenv"
)

// TestBuildSeed runs the 9legacy recipe on the distribution made from the
// real seed, with the grid profile and a new identity.
func TestBuildSeed(t *testing.T) {
	testenv.SeedBuild(t)
	if os.Getenv(testenv.SeedBuildVar) != "1" {
		t.Skipf("the recipe alone: CI builds the same seed in TestBuildSeedRunsAGrid (engine/daemon); set %s=1 to run it", testenv.SeedBuildVar)
	}
	testenv.Tool(t, "qemu-system-i386")
	d := openDist(t, seedtest.ISO(t))
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	out := filepath.Join(t.TempDir(), "new.qcow2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var last seedbuild.Progress
	res, err := seedbuild.Run(ctx, d, seedbuild.Legacy4e(), seedbuild.BuildOptions{
		Identity: seedbuild.Identity{User: "alice", AuthDom: "lab", Password: "wonderland"},
		Output:   out, Accel: "tcg", Log: log,
		Progress: func(p seedbuild.Progress) {
			if p.State != seedbuild.StepRunning || p.Step != last.Step {
				t.Logf("progress %d/%d %s %s %v bytes %d/%d tail %q", p.Index, p.Steps, p.Step, p.State, p.Elapsed.Round(time.Second), p.Bytes, p.TotalBytes, strings.Join(p.Tail, " | "))
			}
			last = p
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps {
		t.Logf("step %-15s %v", s.Name, s.Duration.Round(time.Millisecond))
	}
	t.Logf("%+v", res)
}

// BenchmarkSeedBuild prints the time of each step of a real build (the
// grid profile from the ISO made of the shared seed) under the machine's
// accelerator (TCG here): go test -run - -bench SeedBuild -benchtime 1x.
func BenchmarkSeedBuild(b *testing.B) {
	testenv.SeedBuild(b)
	testenv.Tool(b, "qemu-system-i386")
	iso := seedtest.ISO(b)
	fsys, closeFS, err := seedbuild.Open(iso)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFS()
	d, err := seedbuild.Check(fsys, iso)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		out := filepath.Join(b.TempDir(), "bench.qcow2")
		res, err := seedbuild.Run(context.Background(), d, seedbuild.Legacy4e(), seedbuild.BuildOptions{
			Identity: seedbuild.Identity{User: "bootes", AuthDom: "grid", Password: "password"},
			Output:   out, Accel: "tcg",
		})
		if err != nil {
			b.Fatal(err)
		}
		var total time.Duration
		for _, s := range res.Steps {
			b.Logf("%-15s %8.1f s", s.Name, s.Duration.Seconds())
			b.ReportMetric(s.Duration.Seconds(), strings.ReplaceAll(s.Name, " ", "-")+"-s")
			total += s.Duration
		}
		b.Logf("%-15s %8.1f s (%d files, %.1f MB)", "total", total.Seconds(), res.Files, float64(res.Bytes)/1e6)
	}
}
