package ui

import (
	"context"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

func (f *fixture) press(sc fyne.Shortcut) {
	f.do(func() {
		// As the desktop driver does: the focused widget, if it takes
		// shortcuts, gets it instead of the window.
		if w, ok := f.m.win.Canvas().Focused().(fyne.Shortcutable); ok {
			w.TypedShortcut(sc)
			return
		}
		f.m.win.Canvas().(fyne.Shortcutable).TypedShortcut(sc)
	})
	f.m.Wait()
}

// TestPaneShortcutsWhileTyping: the pane's shortcuts work while a console
// line or the events filter has the keyboard (a focused Entry took them).
func TestPaneShortcutsWhileTyping(t *testing.T) {
	f := newFixture(t)
	cpu := f.card("cpu1")
	f.do(func() { test.TapSecondary(cpu); f.dismiss() })
	f.m.Wait()
	f.press(consolePaneShortcut)
	f.do(func() {
		if f.m.pane.dock == nil {
			t.Fatal("no docked console after Ctrl+J with cpu1 selected")
		}
		f.m.win.Canvas().Focus(f.m.pane.dock.input)
	})
	f.press(eventsPaneShortcut)
	f.do(func() {
		if f.m.paneShows() != f.m.pane.eventsTab {
			t.Fatalf("Ctrl+L typed in the console's line: the pane shows %v, want the events", f.m.paneShows())
		}
		f.m.win.Canvas().Focus(f.m.eventsPane.filter)
	})
	f.press(eventsPaneShortcut)
	f.do(func() {
		if f.m.paneShows() != nil {
			t.Errorf("Ctrl+L typed in the events filter did not close the pane (%v)", f.m.paneShows())
		}
	})
}

// docked returns the docked console's node, header and text ("" when none).
func (f *fixture) docked() (name, header, text string) {
	f.do(func() {
		if d := f.m.pane.dock; d != nil {
			name, header, text = d.name, d.state.Text, d.Text()
		}
	})
	return
}

// TestDockedConsoleFollowsSelectedNode: Ctrl+J shows a console pane below
// the canvas (in a split) with the selected node's console, its state in
// the header; it follows the node across a restart and another selection,
// and the toolbar's Console pane hides it.
func TestDockedConsoleFollowsSelectedNode(t *testing.T) {
	f := newFixture(t)
	f.press(consolePaneShortcut)
	f.do(func() {
		if f.m.paneShows() != f.m.pane.consoleTab || !f.m.pane.split.Trailing.Visible() || f.m.pane.split.Leading != f.m.tabs {
			t.Fatalf("Ctrl+J shows %v", f.m.paneShows())
		}
		if f.m.pane.dock != nil || !strings.Contains(f.m.pane.hint.Text, "Click a node") {
			t.Errorf("with nothing selected the pane shows %q", f.m.pane.hint.Text)
		}
	})
	cpu := f.card("cpu1")
	f.do(func() { test.TapSecondary(cpu); f.dismiss() })
	f.m.Wait()
	if name, header, _ := f.docked(); name != "cpu1" || header != "cpu1: stopped" {
		t.Fatalf("docked %q header %q after selecting cpu1", name, header)
	}
	ctx := context.Background()
	if err := f.a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	f.eventually("cpu1's boot in the docked console, header running", func() bool {
		_, h, text := f.docked()
		return h == "cpu1: running" && strings.Contains(text, "cpu1# ")
	})
	if err := f.a.NodeCtl(ctx, "cpu1", "stop"); err != nil {
		t.Fatal(err)
	}
	f.eventually("the header to say stopped", func() bool { _, h, _ := f.docked(); return h == "cpu1: stopped" })
	if err := f.a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	f.eventually("the docked console to show the second boot", func() bool {
		_, h, text := f.docked()
		return h == "cpu1: running" && strings.Count(text, "new boot") >= 1 && strings.Count(text, "cpu1# ") >= 2
	})
	fossil := f.card("fossil1")
	f.do(func() { test.TapSecondary(fossil); f.dismiss() })
	f.m.Wait()
	if name, header, _ := f.docked(); name != "fossil1" || !strings.HasPrefix(header, "fossil1: ") {
		t.Errorf("docked %q header %q after selecting fossil1", name, header)
	}
	f.tool("Console pane")
	f.do(func() {
		if f.m.paneShows() != nil || f.m.pane.split.Trailing.Visible() || f.m.pane.dock != nil {
			t.Errorf("the toolbar's Console pane left the pane showing %v", f.m.paneShows())
		}
	})
}

// tool clicks the button labelled label of the toolbar or the pane toggles.
func (f *fixture) tool(label string) {
	f.t.Helper()
	var b *widget.Button
	f.do(func() {
		for _, o := range append(append([]fyne.CanvasObject{}, f.m.toolbar.Objects...), f.m.paneTools.Objects...) {
			if bt, ok := o.(*widget.Button); ok && bt.Text == label {
				b = bt
			}
		}
	})
	if b == nil {
		f.t.Fatalf("no toolbar button %q", label)
	}
	f.do(func() { test.Tap(b) })
	f.m.Wait()
}

// TestConsoleTabFollowsRestart: a console tab shows the new boot after the
// node stops and starts again (the engine keeps the stopped VM's console
// open, so the tab must let go of it).
func TestConsoleTabFollowsRestart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	f.eventually("cpu1 running", func() bool { return strings.HasPrefix(f.state("cpu1"), "running") })
	var ct *consoleTab
	f.do(func() { f.m.openConsole("cpu1"); ct = f.m.consoles["cpu1"] })
	text := func() (s string) { f.do(func() { s = ct.Text() }); return s }
	f.eventually("the boot in the tab", func() bool { return strings.Count(text(), "cpu1# ") == 1 })
	if err := f.a.NodeCtl(ctx, "cpu1", "stop"); err != nil {
		t.Fatal(err)
	}
	f.eventually("the tab to say cpu1 stopped", func() bool { return strings.Contains(text(), "cpu1 is stopped") })
	if err := f.a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	f.eventually("the second boot in the tab", func() bool { return strings.Count(text(), "cpu1# ") == 2 })
}
