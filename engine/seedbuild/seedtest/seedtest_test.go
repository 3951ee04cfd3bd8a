package seedtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"gridlord/engine/iso9660"
	"gridlord/engine/seedbuild"
)

// TestFixtures: the tree made from the seed is a distribution that passes
// the checks, and its ISO image reads back as the same tree.
func TestFixtures(t *testing.T) {
	tree := Tree(t)
	d, err := seedbuild.Check(os.DirFS(tree), tree)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kernel != "386/9pccpuf" {
		t.Errorf("kernel %s", d.Kernel)
	}
	files, bytes := seedbuild.Totals(d.Log)
	t.Logf("tree: %d log entries, %d files and directories, %d bytes", len(d.Log), files, bytes)
	iso := ISO(t)
	img, err := iso9660.OpenFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if e := img.Extensions(); !e.RockRidge || !e.Joliet {
		t.Errorf("ISO extensions %+v", e)
	}
	n := 0
	err = filepath.WalkDir(tree, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		rel = filepath.ToSlash(rel)
		fi, err := de.Info()
		if err != nil {
			return err
		}
		ii, err := fs.Stat(img, rel)
		if err != nil {
			t.Errorf("in the tree but not the ISO: %v", err)
			return nil
		}
		if ii.IsDir() != fi.IsDir() || ii.Mode().Perm() != fi.Mode().Perm() || !ii.ModTime().Equal(fi.ModTime().Truncate(1e9)) || (!fi.IsDir() && ii.Size() != fi.Size()) {
			t.Errorf("%s: ISO %v %v %d, tree %v %v %d", rel, ii.Mode(), ii.ModTime(), ii.Size(), fi.Mode(), fi.ModTime(), fi.Size())
		}
		if fi.Mode().IsRegular() && fi.Size() < 1<<20 {
			a, _ := os.ReadFile(p)
			b, err := fs.ReadFile(img, rel)
			if err != nil || string(a) != string(b) {
				t.Errorf("%s: ISO contents differ (%v)", rel, err)
			}
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries compared with the ISO", n)
	if _, err := seedbuild.Check(img, iso); err != nil {
		t.Fatal(err)
	}
}
