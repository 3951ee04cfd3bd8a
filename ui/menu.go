package ui

import (
	"bytes"
	"context"
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
)

// onNodeMenu is the right-click menu of a node.
func (m *MainWindow) onNodeMenu(id string, at fyne.Position) {
	n, ok := m.node(id)
	if !ok {
		return
	}
	name := n.Name
	m.selectNode(n)
	ctl := func(verb string) func() { return func() { m.nodeCtl(name, verb) } }
	item := func(label string, sc fyne.Shortcut, fn func()) *fyne.MenuItem {
		it := fyne.NewMenuItem(label, fn)
		it.Shortcut = sc
		return it
	}
	items := []*fyne.MenuItem{
		item("Start", startShortcut, ctl("start")),
		item("Stop", stopShortcut, ctl("stop")),
		fyne.NewMenuItem("Power off", ctl("poweroff")),
		fyne.NewMenuItem("Reset disk…", func() { m.onResetDisk(name) }),
		fyne.NewMenuItemSeparator(),
		item("Console", consoleShortcut, func() { m.openConsole(name) }),
	}
	if n.Kind == "cpu" {
		items = append(items, fyne.NewMenuItem("Drawterm", func() { m.onDrawterm(name) }))
	}
	items = append(items,
		fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem("Clone…", func() { m.showClone(name) }),
		fyne.NewMenuItem("Reset identity…", func() { m.showReset(name) }),
		fyne.NewMenuItem("Properties…", func() { m.showProperties(name) }),
		fyne.NewMenuItemSeparator(),
		item("Delete", deleteShortcut, func() { m.onDelete(name) }),
	)
	if n.Embedded {
		// The embedded venti runs with the engine: it has no VM to control.
		items = []*fyne.MenuItem{fyne.NewMenuItem("Properties…", func() { m.showProperties(name) })}
	}
	m.popup(fyne.NewMenu(name, items...), at)
}

// MenuItem returns the item labelled label of the last popup menu, for
// tests.
func (m *MainWindow) MenuItem(label string) *fyne.MenuItem {
	if menu := m.LastMenu(); menu != nil {
		for _, it := range menu.Items {
			if it.Label == label {
				return it
			}
		}
	}
	return nil
}

// onResetDisk asks, then recreates a stopped node's disk from its seed.
func (m *MainWindow) onResetDisk(name string) {
	dialog.ShowConfirm("Reset "+name, fmt.Sprintf("Recreate the disk of %s from its seed? Everything written to it is lost. The node must be stopped.", name),
		func(ok bool) {
			if ok {
				m.long("Resetting the disk of "+name, func(ctx context.Context, _ func(float64, string)) error {
					return m.app.NodeCtl(ctx, name, "reset")
				}, func() { m.say("The disk of " + name + " is its seed's again.") })
			}
		}, m.win)
}

// onDelete asks before removing a node: the engine deletes its links and
// its directory, disk included (app.Remove), and refuses a running node.
func (m *MainWindow) onDelete(name string) {
	dialog.ShowConfirm("Delete "+name, deleteQuestion(name),
		func(ok bool) {
			if ok {
				m.deleteNode(name)
			}
		}, m.win)
}

// onDrawterm starts drawterm on a cpu node; its output and exit status go
// to the detail line, failures to an error dialog.
func (m *MainWindow) onDrawterm(name string) {
	m.do("open drawterm on "+name, func(ctx context.Context) error {
		var out bytes.Buffer
		s, err := m.app.Drawterm(context.WithoutCancel(ctx), name, &out)
		if err != nil {
			return err
		}
		m.ui(func() { m.say("drawterm on " + name + " started") })
		go func() {
			err := s.Wait()
			m.ui(func() {
				if err != nil {
					m.showError("drawterm on "+name+" ended", fmt.Errorf("%w\n%s", err, out.String()))
				} else {
					m.say("drawterm on " + name + " closed")
				}
			})
		}()
		return nil
	})
}

// deleteQuestion is the Delete dialog's question: what the engine's remove
// does.
func deleteQuestion(name string) string {
	return fmt.Sprintf("Delete %s, its links and its disk? Everything written on its disk is lost. A running node must be stopped first.", name)
}

// deleteNode removes a node through the engine (the Delete dialog's Yes).
func (m *MainWindow) deleteNode(name string) {
	m.do("delete "+name, func(ctx context.Context) error { return m.app.Remove(ctx, name) })
}
