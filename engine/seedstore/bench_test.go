package seedstore

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gridlord/engine/qcow2"
)

// BenchmarkSnapshot measures what "gridlord save" costs for a node of the
// shipped seed: the node's disk (a linked clone of the seed with 1 MiB
// written into it) archived into a grid venti that already holds the seed
// (Import with AnyDisk, as Engine.Save does). The same-run baseline is the
// usual way to copy a VM disk, qemu-img convert of the clone to a
// standalone qcow2; the ratio is reported as save/convert, with the bytes
// the first save adds to the venti and the size of the converted copy:
//
//	go test -run XXX -bench Snapshot -benchtime 3x ./engine/seedstore
func BenchmarkSnapshot(b *testing.B) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		b.Skip("qemu-img not installed (scripts/setup.sh installs it)")
	}
	ctx := context.Background()
	dir, st := newStore(b)
	res, err := Import(ctx, st, seed, ImportOptions{TempDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	base := filepath.Join(dir, "base.qcow2")
	if err := Restore(ctx, st, res.Vac, base, res.DiskSHA256, nil); err != nil {
		b.Fatal(err)
	}
	disk := filepath.Join(dir, "node.qcow2")
	if err := qcow2.CreateOverlay(disk, base); err != nil {
		b.Fatal(err)
	}
	im, err := qcow2.Open(disk)
	if err != nil {
		b.Fatal(err)
	}
	change := make([]byte, 1<<20)
	rand.Read(change) // incompressible: the new bytes are all new

	if _, err := im.WriteAt(change, 300<<20); err != nil { // inside the fossil partition
		b.Fatal(err)
	}
	im.Close()
	b.ResetTimer()
	var save, convert time.Duration
	var saveBytes, convertBytes int64
	for i := 0; i < b.N; i++ {
		before := st.Stats().LogBytes
		t0 := time.Now()
		if _, err := Import(ctx, st, disk, ImportOptions{TempDir: dir, AnyDisk: true}); err != nil {
			b.Fatal(err)
		}
		if err := st.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		save += time.Since(t0)
		if i == 0 {
			saveBytes = st.Stats().LogBytes - before // later saves of the same disk add nothing
		}

		out := filepath.Join(dir, "copy.qcow2")
		os.Remove(out)
		t0 = time.Now()
		if o, err := exec.Command(qemuImg, "convert", "-O", "qcow2", disk, out).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img convert: %v: %s", err, o)
		}
		f, err := os.Open(out)
		if err == nil {
			f.Sync()
			f.Close()
		}
		convert += time.Since(t0)
		if fi, err := os.Stat(out); err == nil {
			convertBytes += fi.Size()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(save.Seconds()/n, "save-s")
	b.ReportMetric(convert.Seconds()/n, "qemu-img-convert-s")
	b.ReportMetric(save.Seconds()/convert.Seconds(), "save/convert")
	b.ReportMetric(float64(saveBytes), "first-save-new-bytes")
	b.ReportMetric(float64(convertBytes)/n, "convert-bytes")
}
