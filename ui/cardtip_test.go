package ui

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"

	"gridlord/app"
	"gridlord/engine/daemon/daemontest"
)

// TestCardTooltipShowsLiveFigures: hovering a running node's card shows
// its QEMU's uptime, CPU and memory (from its status in gridfs), kept
// current; leaving the card hides it.
func TestCardTooltipShowsLiveFigures(t *testing.T) {
	f := newFixture(t)
	hover := func(name string) {
		c := f.card(name)
		f.do(func() {
			at := fyne.CurrentApp().Driver().AbsolutePositionForObject(c).Add(fyne.NewPos(20, 20))
			c.MouseIn(&desktop.MouseEvent{PointEvent: fyne.PointEvent{AbsolutePosition: at, Position: fyne.NewPos(20, 20)}})
		})
	}
	tip := func() (s string) { f.do(func() { s = f.m.TipText() }); return s }
	hover("cpu1")
	if s := tip(); s != "" {
		t.Errorf("tooltip at once (before tipDelay): %q", s)
	}
	f.eventually("the tooltip of a stopped cpu1", func() bool { return tip() == "cpu1 · stopped" })
	if err := f.a.NodeCtl(context.Background(), "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	f.eventually("cpu1's figures in its tooltip", func() bool {
		s := tip()
		return strings.HasPrefix(s, "cpu1 · running · up ") && strings.Contains(s, " · CPU "+strconv.FormatFloat(daemontest.FakeCPU, 'f', 1, 64)+"% · RSS ") && strings.HasSuffix(s, " MiB")
	})
	f.do(func() {
		if !f.m.tip.bg.Visible() || f.m.tip.bg.Position().X < 20 {
			t.Errorf("tooltip box visible %v at %v", f.m.tip.bg.Visible(), f.m.tip.bg.Position())
		}
	})
	time.Sleep(1100 * time.Millisecond)
	f.do(func() { f.m.refresh() })
	f.m.Wait()
	f.eventually("the uptime to go on", func() bool { return !strings.Contains(tip(), " up 0s ") })
	c := f.card("cpu1")
	f.do(func() { c.MouseOut() })
	if s := tip(); s != "" {
		t.Errorf("tooltip after the pointer left: %q", s)
	}
	// The detail line of the selected running node has them too.
	f.do(func() { f.m.selectNode(mustNode(f, "cpu1")) })
	if d := f.m.DetailText(); !strings.Contains(d, "CPU "+strconv.FormatFloat(daemontest.FakeCPU, 'f', 1, 64)+"%") {
		t.Errorf("detail line %q", d)
	}
}

func mustNode(f *fixture, name string) app.NodeView {
	n, ok := f.m.snapshot().NodeByName(name)
	if !ok {
		f.t.Fatalf("no node %s", name)
	}
	return n
}
