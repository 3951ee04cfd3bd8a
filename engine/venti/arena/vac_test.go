package arena

import (
	"bytes"
	"context"
	"testing"

	"gridlord/engine/vac"
	"gridlord/engine/venti"
	"gridlord/testing/p9pdata"
)

// unvacTree restores tree.vac from st and checks that the result is
// exactly tree/ of tree.tar.gz: the same names, kinds, permission bits,
// file contents and file modification times (p9pdata.CheckTree).
func unvacTree(t *testing.T, st venti.Reader) {
	t.Helper()
	ctx := context.Background()
	score, err := vac.ReadScoreFile(p9pdata.Path("tree.vac"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := vac.Open(ctx, st, score)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := vac.Restore(ctx, a, dir, vac.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := p9pdata.CheckTree(dir); err != nil {
		t.Error(err)
	}
}

// TestUnvacAfterImport imports the real arenas and unvacs tree.vac from
// the result; it also unvacs straight from the read-only arena store.
func TestUnvacAfterImport(t *testing.T) {
	b, _ := realArenas(t)
	st := venti.NewMemStore()
	if _, err := Import(context.Background(), openBytes(t, b), st, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Run("imported", func(t *testing.T) { unvacTree(t, st) })
	t.Run("served", func(t *testing.T) {
		rs, err := OpenStore(context.Background(), bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		unvacTree(t, rs)
	})
}
