package ui

import (
	"context"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"
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
	m.bind(startShortcut, func() { m.onSelected(func(n string) { m.nodeCtl(n, "start") }) })
	m.bind(stopShortcut, func() { m.onSelected(func(n string) { m.nodeCtl(n, "stop") }) })
	m.bind(consoleShortcut, func() { m.onSelected(m.openConsole) })
	m.bind(deleteShortcut, func() { m.onSelected(m.onDelete) })
}

// bind makes sc a shortcut of the window that runs fn, also while a
// lineEntry has the keyboard.
func (m *MainWindow) bind(sc fyne.Shortcut, fn func()) {
	if m.shortcuts == nil {
		m.shortcuts = make(map[string]func())
	}
	m.shortcuts[sc.ShortcutName()] = fn
	m.win.Canvas().AddShortcut(sc, func(fyne.Shortcut) { fn() })
}

// lineEntry is the Entry of a console's line and of the events filter: a
// focused Entry takes every shortcut, so without it Ctrl+J or Ctrl+L typed
// there did nothing; the window's own shortcuts pass through it.
type lineEntry struct {
	widget.Entry
	m *MainWindow
}

func newLineEntry(m *MainWindow) *lineEntry {
	e := &lineEntry{m: m}
	e.ExtendBaseWidget(e)
	return e
}

// TypedShortcut runs the window's shortcut sc, else the Entry's.
func (e *lineEntry) TypedShortcut(sc fyne.Shortcut) {
	if fn, ok := e.m.shortcuts[sc.ShortcutName()]; ok {
		fn()
		return
	}
	e.Entry.TypedShortcut(sc)
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
