package qcow2

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gridlord/testing/testenv"
)

// fileOp is one write or sync as it reached the file.
type fileOp struct {
	off  int64
	data []byte
	sync bool
}

// recorder is a storage that logs every write and sync.
type recorder struct {
	*os.File
	log []fileOp
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	r.log = append(r.log, fileOp{off: off, data: bytes.Clone(p)})
	return r.File.WriteAt(p, off)
}

func (r *recorder) Sync() error {
	r.log = append(r.log, fileOp{sync: true})
	return r.File.Sync()
}

// crashState is what the file may hold after a crash: the initial bytes
// plus a subset of the logged writes.
type crashState struct {
	name string
	keep func(i int) bool
}

// crashStates lists the states a crash may leave, given that writes between
// two syncs may reach the disk in any order: every prefix of the log, and,
// within each sync epoch, everything but one write and each write alone.
func crashStates(log []fileOp) []crashState {
	var states []crashState
	for k := 0; k <= len(log); k++ {
		states = append(states, crashState{"prefix " + byteSize(int64(k)), func(i int) bool { return i < k }})
	}
	start := 0
	for e := 0; e <= len(log); e++ {
		if e < len(log) && !log[e].sync {
			continue
		}
		for j := start; j < e; j++ {
			s, end, j := start, e, j
			states = append(states,
				crashState{"epoch without " + byteSize(int64(j)), func(i int) bool { return i < s || (i < end && i != j) }},
				crashState{"epoch only " + byteSize(int64(j)), func(i int) bool { return i < s || i == j }})
		}
		start = e + 1
	}
	return states
}

func applyState(initial []byte, log []fileOp, st crashState) []byte {
	b := bytes.Clone(initial)
	for i, op := range log {
		if op.sync || !st.keep(i) {
			continue
		}
		if end := op.off + int64(len(op.data)); end > int64(len(b)) {
			b = append(b, make([]byte, end-int64(len(b)))...)
		}
		copy(b[op.off:], op.data)
	}
	return b
}

// crashScenario builds an overlay (512-byte clusters so that refcount
// blocks are created and the refcount table moves) over a seed, one of
// whose clusters is compressed, then records a series of non-overlapping
// writes. It returns the overlay path, its bytes before the writes, the
// log, and the disk contents before and after.
func crashScenario(t *testing.T) (path string, initial []byte, log []fileOp, before, after model) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.qcow2")
	const size = 1 << 20
	mustCreate(t, seed, CreateOptions{Size: size, ClusterSize: 4096})
	before = make(model, size)
	s := mustOpen(t, seed)
	before.write(t, s, pattern(300<<10, 1), 0)
	s.Close()
	path = filepath.Join(dir, "ov.qcow2")
	mustCreate(t, path, CreateOptions{BackingFile: seed, ClusterSize: 512})
	im := mustOpen(t, path)
	before.write(t, im, []byte{7}, 0) // allocates an L2 table
	im.Close()
	c := pattern(512, 9)
	compressCluster(t, path, 3, c)
	copy(before[3*512:], c)

	initial, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{File: f}
	im, err = openStorage(rec, path, int64(len(initial)), "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	after = model(bytes.Clone(before))
	after.write(t, im, []byte("plan9.ini"), 3*512+10)       // over the compressed cluster
	after.write(t, im, pattern(1000, 3), 100)               // COW from the seed, partly in place
	after.write(t, im, pattern(600<<10, 4), 400<<10)        // many clusters: refcount growth
	after.write(t, im, bytes.Repeat([]byte{5}, 512), 60000) // a whole cluster over the seed
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	return path, initial, rec.log, before, after
}

// TestCrashConsistency replays every crash state of a write sequence and
// checks that metadata never references a cluster without a refcount (only
// leaks are allowed) and that every byte reads as either its old or its new
// value.
func TestCrashConsistency(t *testing.T) {
	path, initial, log, before, after := crashScenario(t)
	if len(log) < 10 {
		t.Fatalf("only %d file operations logged", len(log))
	}
	states := crashStates(log)
	t.Logf("%d file operations, %d crash states", len(log), len(states))
	sp := filepath.Join(t.TempDir(), "state.qcow2")
	for _, st := range states {
		b := applyState(initial, log, st)
		if err := os.WriteFile(sp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// The backing path is absolute, so the copy opens the same seed.
		if r := checkImage(t, sp); len(r.errors) > 0 {
			t.Fatalf("%s: %v", st.name, r.errors)
		}
		got := readAll(t, sp)
		for i := range got {
			if got[i] != before[i] && got[i] != after[i] {
				t.Fatalf("%s: byte %d is %#x, neither old %#x nor new %#x", st.name, i, got[i], before[i], after[i])
			}
		}
	}
	mustEqual(t, "final state", readAll(t, path), after)
	mustCheckClean(t, path)
}

// TestQemuCrashRepair has qemu-img judge the crash states at every sync
// point: no corruption (exit 0 or 3 = leaks only), and "check -r leaks"
// leaves a clean image.
func TestQemuCrashRepair(t *testing.T) {
	qemuImg := testenv.Tool(t, "qemu-img")
	path, initial, log, _, _ := crashScenario(t)
	_ = path
	sp := filepath.Join(t.TempDir(), "state.qcow2")
	n := 0
	for k := 0; k <= len(log); k++ {
		if k < len(log) && !log[k].sync && k%7 != 0 {
			continue // sync points plus a sample of others
		}
		b := applyState(initial, log, crashState{keep: func(i int) bool { return i < k }})
		if err := os.WriteFile(sp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(qemuImg, "check", sp).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
			t.Fatalf("crash after %d operations: qemu-img check: %v\n%s", k, err, out)
		}
		if err != nil {
			run(t, qemuImg, "check", "-r", "leaks", sp)
			qemuCheck(t, qemuImg, sp)
		}
		n++
	}
	t.Logf("%d crash states checked by qemu-img", n)
}
