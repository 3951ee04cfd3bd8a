package ui

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/daemon/daemontest"
)

// TestEventsPaneFollowsAndFilters: Ctrl+L shows the engine's log for the
// grid, updated as nodes start; the text filter and the node filter
// narrow it.
func TestEventsPaneFollowsAndFilters(t *testing.T) {
	f := newFixture(t)
	f.press(eventsPaneShortcut)
	f.do(func() {
		if f.m.paneShows() != f.m.pane.eventsTab {
			t.Fatalf("Ctrl+L shows %v", f.m.paneShows())
		}
	})
	if err := f.a.NodeCtl(context.Background(), "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	shown := func() (s []string) { f.do(func() { s = f.m.eventsPane.Shown() }); return s }
	has := func(lines []string, parts ...string) bool {
		for _, l := range lines {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(l, p)
			}
			if ok {
				return true
			}
		}
		return false
	}
	f.eventually("cpu1's readiness in the events pane", func() bool { return has(shown(), "  cpu1  INFO  node ready") })
	if s := shown(); !has(s, "fossil1  INFO  starting node") || !has(s, "fossil1  INFO  wrote the grid's ndb entries") {
		t.Errorf("events pane lacks fossil1's start and ndb:\n%s", strings.Join(s, "\n"))
	}
	f.do(func() { f.m.eventsPane.node.SetSelected("cpu1") })
	s := shown()
	for _, l := range s {
		if !strings.Contains(l, "  cpu1  ") {
			t.Errorf("node filter cpu1 shows %q", l)
		}
	}
	if !has(s, "cpu1  INFO  starting node") {
		t.Errorf("node filter cpu1 hides cpu1's start:\n%s", strings.Join(s, "\n"))
	}
	f.do(func() { f.m.eventsPane.filter.SetText("READY") })
	if s := shown(); len(s) != 1 || !strings.Contains(s[0], "cpu1  INFO  node ready") {
		t.Errorf("filter cpu1 + ready shows:\n%s", strings.Join(s, "\n"))
	}
	f.do(func() { f.m.eventsPane.node.SetSelected(allNodes) })
	if s := shown(); !has(s, "fossil1  INFO  node ready") || has(s, "starting node") {
		t.Errorf("filter ready shows:\n%s", strings.Join(s, "\n"))
	}
	f.press(eventsPaneShortcut)
	f.do(func() {
		if f.m.paneShows() != nil {
			t.Errorf("a second Ctrl+L leaves %v showing", f.m.paneShows())
		}
	})
}

// TestEventsPaneFollowsTheOpenedGrid: after the window opens another
// grid, the events pane shows that grid's engine's log.
func TestEventsPaneFollowsTheOpenedGrid(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(daemontest.ShortDir(t), "lab")
	f.do(func() {
		w := f.m.showNewGrid()
		w.dir.SetText(dir)
		w.authDom.SetText("lab")
		w.user.SetText("glenda")
		w.submit()
	})
	f.m.Wait()
	if err := f.m.LastError(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.a.AddNode(ctx, "cpu", "labcpu", ""); err != nil {
		t.Fatal(err)
	}
	f.eventually("the new grid's add in the events pane", func() bool {
		var s []string
		f.do(func() { s = f.m.eventsPane.Shown() })
		return strings.Contains(strings.Join(s, "\n"), "add cpu labcpu")
	})
}
