//go:build unix

package vac

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gridlord/engine/venti"
)

// Through a venti.Client, Create and the restores take the asynchronous
// paths (pipelined writes and reads, no goroutine per block): the archive
// must be the very one the synchronous path writes into a memory store,
// and restore to the same tree.
func TestRoundTripAsync(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and links are Unix-specific")
	}
	ctx := context.Background()
	src := t.TempDir()
	tree := filepath.Join(src, "tree")
	buildTree(t, tree)
	now := time.Unix(1700000000, 0)
	wantSt := venti.NewMemStore()
	want, err := Create(ctx, wantSt, []string{tree}, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	mem := venti.NewMemStore()
	c := loopback(t, mem)
	var last, total int64
	got, err := Create(ctx, c, []string{tree}, Options{Now: now, Workers: 3, Progress: func(d, tot int64) { last, total = d, tot }})
	if err != nil {
		t.Fatal(err)
	}
	// The roots differ (atimes change between the two reads); every
	// file's data tree must be the same.
	wa, err := Open(ctx, wantSt, want)
	if err != nil {
		t.Fatal(err)
	}
	ga, err := Open(ctx, c, got)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	filepath.WalkDir(tree, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		rel = filepath.ToSlash(rel)
		wf, err := wa.Lookup(ctx, rel)
		if err != nil {
			t.Fatal(err)
		}
		gf, err := ga.Lookup(ctx, rel)
		if err != nil {
			t.Fatal(err)
		}
		if wf.Entry() != gf.Entry() {
			t.Errorf("%s: entry %+v through a client, %+v synchronously", rel, gf.Entry(), wf.Entry())
		}
		files++
		return nil
	})
	if files < 300 {
		t.Fatalf("compared %d files", files)
	}
	if last != total || total == 0 {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	a, err := Open(ctx, c, got)
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{0, 1, 5} {
		dst := t.TempDir()
		if err := Restore(ctx, a, dst, RestoreOptions{Workers: workers}); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, tree, filepath.Join(dst, "tree"))
	}
	var buf bytes.Buffer
	if err := Cat(ctx, a, &buf, RestoreOptions{Patterns: []string{"tree/depth2.bin"}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "depth2.bin")); !bytes.Equal(buf.Bytes(), b) {
		t.Fatalf("cat of depth2.bin: %d bytes differ from the file's %d", buf.Len(), len(b))
	}
}

// stallStore lets calls through until it is stalled; then they wait for
// their context. It counts the calls that reached it.
type stallStore struct {
	venti.Store
	calls   atomic.Int64
	after   int64
	stalled chan struct{} // closed when the first call stalls
	once    sync.Once
}

func (s *stallStore) stall(ctx context.Context) error {
	if s.calls.Add(1) < s.after {
		return nil
	}
	s.once.Do(func() { close(s.stalled) })
	<-ctx.Done()
	return ctx.Err()
}

func (s *stallStore) Write(ctx context.Context, t venti.Type, b []byte) (venti.Score, error) {
	if err := s.stall(ctx); err != nil {
		return venti.Score{}, err
	}
	return s.Store.Write(ctx, t, b)
}

func (s *stallStore) Read(ctx context.Context, sc venti.Score, t venti.Type, max int) ([]byte, error) {
	if err := s.stall(ctx); err != nil {
		return nil, err
	}
	return s.Store.Read(ctx, sc, t, max)
}

// Cancelling an archive or a restore whose server has stopped answering
// returns context.Canceled promptly from the asynchronous paths.
func TestCancelAsync(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	data := make([]byte, 600*DefaultBlockSize)
	rand.NewChaCha8([32]byte{5}).Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mem := venti.NewMemStore()
	score, err := Create(context.Background(), mem, []string{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(what string, fn func(ctx context.Context, c *venti.Client) error) {
		st := &stallStore{Store: mem, after: 100, stalled: make(chan struct{})}
		c := loopback(t, st)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- fn(ctx, c) }()
		select {
		case <-st.stalled:
		case err := <-done:
			t.Fatalf("%s finished (%v) before the server stalled", what, err)
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled %s: %v, want context.Canceled", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("cancelled %s did not return within 10s", what)
		}
	}
	run("Create", func(ctx context.Context, c *venti.Client) error {
		_, err := Create(ctx, c, []string{p}, Options{Workers: 4})
		return err
	})
	run("Cat", func(ctx context.Context, c *venti.Client) error {
		a, err := Open(ctx, c, score)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		return Cat(ctx, a, &buf, RestoreOptions{})
	})
	dst := t.TempDir()
	run("Restore", func(ctx context.Context, c *venti.Client) error {
		a, err := Open(ctx, c, score)
		if err != nil {
			return err
		}
		return Restore(ctx, a, dst, RestoreOptions{})
	})
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("cancelled restore left %v", ents[0].Name())
	}
}

// failStore fails writes after a number of them, and reads of one block.
type failStore struct {
	venti.Store
	writes  atomic.Int64
	after   int64
	badRead venti.Score
}

func (f *failStore) Write(ctx context.Context, t venti.Type, b []byte) (venti.Score, error) {
	if f.after > 0 && f.writes.Add(1) > f.after {
		return venti.Score{}, errors.New("disk full")
	}
	return f.Store.Write(ctx, t, b)
}

func (f *failStore) Read(ctx context.Context, s venti.Score, t venti.Type, max int) ([]byte, error) {
	if s == f.badRead {
		return []byte("garbage"), nil
	}
	return f.Store.Read(ctx, s, t, max)
}

// A failed write fails the archive; a block that does not match its score
// fails the restore: the asynchronous paths report what the server or the
// client's check said.
func TestErrorsAsync(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "file")
	data := make([]byte, 50*DefaultBlockSize)
	rand.NewChaCha8([32]byte{6}).Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := loopback(t, &failStore{Store: venti.NewMemStore(), after: 20})
	if _, err := Create(ctx, c, []string{p}, Options{}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("disk full")) {
		t.Fatalf("archive with failing writes: %v, want the server's error", err)
	}

	mem := venti.NewMemStore()
	score, err := Create(ctx, mem, []string{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := venti.Sum(data[7*DefaultBlockSize : 8*DefaultBlockSize])
	c = loopback(t, &failStore{Store: mem, badRead: bad})
	a, err := Open(ctx, c, score)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Cat(ctx, a, &buf, RestoreOptions{}); !errors.Is(err, venti.ErrCorrupt) {
		t.Fatalf("cat of a corrupt block: %v, want ErrCorrupt", err)
	}
}
