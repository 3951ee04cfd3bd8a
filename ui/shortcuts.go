package ui

import (
	"context"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
)

// The keyboard shortcuts for the selected node (the card last clicked):
// they are also shown beside the items of its menu.
var (
	startShortcut   = &desktop.CustomShortcut{KeyName: fyne.KeyR, Modifier: fyne.KeyModifierShortcutDefault}
	stopShortcut    = &desktop.CustomShortcut{KeyName: fyne.KeyE, Modifier: fyne.KeyModifierShortcutDefault}
	consoleShortcut = &desktop.CustomShortcut{KeyName: fyne.KeyT, Modifier: fyne.KeyModifierShortcutDefault}
	deleteShortcut  = &desktop.CustomShortcut{KeyName: fyne.KeyDelete, Modifier: fyne.KeyModifierShortcutDefault}
)

// addShortcuts binds start (Ctrl+R, "run"), stop (Ctrl+E, "end"),
// console (Ctrl+T, "terminal") and delete (Ctrl+Delete) to the selected
// node.
func (m *MainWindow) addShortcuts() {
	c := m.win.Canvas()
	c.AddShortcut(startShortcut, func(fyne.Shortcut) { m.onSelected(func(n string) { m.nodeCtl(n, "start") }) })
	c.AddShortcut(stopShortcut, func(fyne.Shortcut) { m.onSelected(func(n string) { m.nodeCtl(n, "stop") }) })
	c.AddShortcut(consoleShortcut, func(fyne.Shortcut) { m.onSelected(m.openConsole) })
	c.AddShortcut(deleteShortcut, func(fyne.Shortcut) { m.onSelected(m.onDelete) })
}

// onSelected runs fn on the selected node's name, or says how to select
// one.
func (m *MainWindow) onSelected(fn func(name string)) {
	n, ok := m.snapshot().NodeByName(m.selected)
	switch {
	case !ok:
		m.say("Click a node first: the shortcuts act on the node last clicked.")
	case n.Embedded:
		m.say(n.Name + " is the embedded venti: it runs with the engine.")
	default:
		fn(n.Name)
	}
}

// nodeCtl runs a node command (start, stop, poweroff, reset) in the
// background.
func (m *MainWindow) nodeCtl(name, verb string) {
	m.do(verb+" "+name, func(ctx context.Context) error { return m.app.NodeCtl(ctx, name, verb) })
}
