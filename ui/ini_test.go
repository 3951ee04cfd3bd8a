package ui

import (
	"strings"
	"testing"

	"fyne.io/fyne/v2"
)

func TestMarkIni(t *testing.T) {
	want := map[string]string{"fs": "10.0.9.10", "sysname": "cpu1"}
	get := func(k string) (string, bool) { v, ok := want[k]; return v, ok }
	got := markIni("bootfile=9pccpuf\nfs=10.0.9.20\nsysname=cpu1\nbootargs=local!#S/sdC0/fossil\n", []string{"fs", "sysname", "bootargs"}, get)
	for _, line := range []string{
		"  bootfile=9pccpuf\n",
		"● fs=10.0.9.20   → 10.0.9.10\n",
		"● sysname=cpu1\n",
		"● bootargs=local!#S/sdC0/fossil   → deleted\n",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("marked plan9.ini lacks %q:\n%s", line, got)
		}
	}
}

// FuzzMarkIni: any plan9.ini text (read from a disk) is shown line for line.
func FuzzMarkIni(f *testing.F) {
	f.Add("bootfile=9pcf\nfs=1.2.3.4\n[menu]\nmenuitem=a\n")
	f.Add("=\n==\n\n")
	f.Fuzz(func(t *testing.T, ini string) {
		got := markIni(ini, []string{"fs", "bootfile"}, func(k string) (string, bool) { return "x", k == "fs" })
		for _, line := range strings.Split(strings.TrimRight(ini, "\n"), "\n") {
			if !strings.Contains(got, line) {
				t.Fatalf("line %q missing from\n%s", line, got)
			}
		}
	})
}

func TestClipLine(t *testing.T) {
	for _, c := range []struct {
		a, b, wa, wb fyne.Position
		ok           bool
	}{
		{fyne.NewPos(10, 10), fyne.NewPos(20, 20), fyne.NewPos(10, 10), fyne.NewPos(20, 20), true}, // inside
		{fyne.NewPos(50, -100), fyne.NewPos(50, 300), fyne.NewPos(50, 0), fyne.NewPos(50, 100), true},
		{fyne.NewPos(-50, 50), fyne.NewPos(250, 50), fyne.NewPos(0, 50), fyne.NewPos(100, 50), true},
		{fyne.NewPos(200, 200), fyne.NewPos(300, 250), fyne.Position{}, fyne.Position{}, false}, // outside
	} {
		a, b, ok := clipLine(c.a, c.b, 0, 0, 100, 100)
		if ok != c.ok || (ok && (a != c.wa || b != c.wb)) {
			t.Errorf("clip %v–%v: %v–%v %v, want %v–%v %v", c.a, c.b, a, b, ok, c.wa, c.wb, c.ok)
		}
	}
}
