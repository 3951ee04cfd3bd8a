package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gridlord/engine/qemu"
	"gridlord/testing/testenv"
)

// BenchmarkRealGridUp prints how long "gridlord up" of the default grid
// (embedded venti, fossil1, cpu1) from the shipped real seed takes to all
// nodes ready, against the same-run baseline of one node's boot alone
// (fossil1 started on a grid of its own). Both grids get the seed at init
// (untimed), so the figures time boots, not the import. Run:
//
//	GRIDLORD_INTEGRATION=1 go test -run XXX -bench RealGridUp -benchtime 1x ./cmd/gridlord
func BenchmarkRealGridUp(b *testing.B) {
	testenv.Tool(b, "qemu-system-i386")
	b.Setenv(envRunMain, "1")
	b.Setenv(envVentiAddr, "127.0.0.1:0")
	b.Setenv(qemu.EnvAccel, "tcg")
	seed, err := filepath.Abs("../../images/seeds/9legacy-grid-seed.qcow2")
	if err != nil {
		b.Fatal(err)
	}
	var node, whole time.Duration
	for i := 0; i < b.N; i++ {
		for _, step := range []struct {
			args []string
			into *time.Duration
		}{{[]string{"start", "fossil1"}, &node}, {[]string{"up"}, &whole}} {
			base, err := os.MkdirTemp("", "glb")
			if err != nil {
				b.Fatal(err)
			}
			dir := filepath.Join(base, "g")
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			if _, errs, code := runCLI(b, ctx, "init", dir, "--seed", seed); code != 0 {
				b.Fatalf("init: %s", errs)
			}
			start := time.Now()
			_, errs, code := runCLI(b, ctx, append([]string{step.args[0], "-grid", dir}, step.args[1:]...)...)
			*step.into += time.Since(start)
			cleanupGrid(b, dir)
			cancel()
			os.RemoveAll(base)
			if code != 0 {
				b.Fatalf("%v: %s", step.args, errs)
			}
		}
	}
	n := float64(b.N)
	b.ReportMetric(node.Seconds()/n, "s/one-node-boot")
	b.ReportMetric(whole.Seconds()/n, "s/grid-up")
	b.ReportMetric(whole.Seconds()/node.Seconds(), "grid/one-node")
}
