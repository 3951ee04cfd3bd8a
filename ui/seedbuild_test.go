package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

// TestSeedBuildWizard: the palette's "New seed…" opens the wizard, whose
// Build button stays disabled until a CD, a name and two equal, strong
// passwords are given; a directory that is no Plan 9 distribution is
// refused by the engine before any VM starts, on the status line, naming
// what is missing, and no seed is added.
func TestSeedBuildWizard(t *testing.T) {
	f := newFixture(t)
	var button *widget.Button
	f.do(func() {
		for _, o := range test.LaidOutObjects(f.m.win.Content()) {
			if b, ok := o.(*widget.Button); ok && b.Text == "New seed…" {
				button = b
			}
		}
	})
	if button == nil {
		t.Fatal("the palette has no New seed… button")
	}
	f.do(func() { test.Tap(button) })
	f.do(func() {
		b := dialogButton(f.m, "Build")
		if b == nil || !b.Disabled() {
			t.Fatalf("the wizard's Build button before anything is typed: %v (want it there, disabled)", b)
		}
		f.m.win.Canvas().Overlays().Top().Hide()
		f.m.win.Canvas().Overlays().Remove(f.m.win.Canvas().Overlays().Top())
	})
	before := f.gridJSON()
	dir := filepath.Join(t.TempDir(), "notplan9")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var w *seedBuildWizard
	f.do(func() {
		w = f.m.showSeedBuild()
		w.from.SetText(dir)
		if w.name.Text != "notplan9" {
			t.Errorf("the name offered for %s is %q", dir, w.name.Text)
		}
		w.password.SetText("s3cret-pw")
		if b := dialogButton(f.m, "Build"); b == nil || !b.Disabled() {
			t.Fatalf("Build with the second password missing: %v (want it disabled)", b)
		}
		w.confirm.SetText("s3cret-pw")
		if b := dialogButton(f.m, "Build"); b == nil || b.Disabled() {
			t.Fatalf("Build with everything given: %v (want it enabled)", b)
		}
		w.submit()
	})
	f.m.Wait()
	f.eventually("the job to end", func() bool { titles, _ := f.jobs(); return len(titles) == 0 })
	f.do(func() {
		detail := f.m.DetailText()
		if f.m.LastError() == nil || !strings.Contains(detail, "Building seed notplan9 failed") || !strings.Contains(f.m.LastError().Error(), dir) || !strings.Contains(detail, "missing the boot loader (386/9load); a cpu kernel") {
			t.Fatalf("status line %q, error %v; want the build refused, naming %s", detail, f.m.LastError(), dir)
		}
		if strings.Contains(f.m.LastError().Error(), "s3cret-pw") || strings.Contains(f.m.errDetails, "s3cret-pw") {
			t.Errorf("the error shows the password: %v", f.m.LastError())
		}
		t.Logf("status line: %s", detail)
	})
	if after := f.gridJSON(); string(after) != string(before) {
		t.Errorf("a refused build changed the grid")
	}
}
