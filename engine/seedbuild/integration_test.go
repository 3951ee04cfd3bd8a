package seedbuild_test

import (
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/seedbuild"
	"gridlord/engine/seedbuild/seedtest"
)

// TestRealDistribution: the distribution made from the real seed passes
// from its directory and from its ISO image, and its grid selection is
// the verified one.
func TestRealDistribution(t *testing.T) {
	for _, src := range []string{seedtest.Tree(t), seedtest.ISO(t)} {
		d := openDist(t, src)
		grid := seedbuild.ProfileGrid.Filter(d.Log)
		files, bytes := seedbuild.Totals(grid)
		t.Logf("%s: kernel %s, grid profile %d entries, %.1f MB", filepath.Base(src), d.Kernel, files, float64(bytes)/1e6)
		if files < 1100 || d.Kernel != "386/9pccpuf" {
			t.Errorf("%s: %d entries, kernel %s", src, files, d.Kernel)
		}
	}
}

// TestBrokenDistributions: what the install cannot do without is refused
// by name, before anything starts.
func TestBrokenDistributions(t *testing.T) {
	for _, tc := range []struct {
		omit []string
		want string
	}{
		{[]string{"386/9pccpuf", "386/9pccpu"}, "a cpu kernel (386/9pccpuf or 386/9pccpu)"},
		{[]string{seedbuild.LogPath}, "the replica log (dist/replica/plan9.log)"},
		{[]string{"386/bin/fossil"}, "fossil's programs"},
		{[]string{"386/bin/ls"}, "386/bin/ls"}, // named by the log, absent
	} {
		dir := seedtest.CopyTree(t, tc.omit...)
		fsys, closeFS, err := seedbuild.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = seedbuild.Check(fsys, dir)
		closeFS()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("without %v: %v; want an error naming %q", tc.omit, err, tc.want)
		}
	}
	cut := seedtest.Truncated(t, seedtest.ISO(t))
	if _, _, err := seedbuild.Open(cut); err == nil || !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), cut) {
		t.Errorf("a truncated ISO: %v", err)
	}
}
