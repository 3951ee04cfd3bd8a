package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// The bottom pane's shortcuts: Ctrl+J shows or hides the docked console,
// Ctrl+L the events pane (the engine's log).
var (
	consolePaneShortcut = &desktop.CustomShortcut{KeyName: fyne.KeyJ, Modifier: fyne.KeyModifierShortcutDefault}
	eventsPaneShortcut  = &desktop.CustomShortcut{KeyName: fyne.KeyL, Modifier: fyne.KeyModifierShortcutDefault}
)

// bottomPane is the pane below the canvas (and the console tabs), in a
// resizable split: a Console tab, the selected node's console docked, and
// an Events tab, the engine's log. It starts hidden.
type bottomPane struct {
	split      *container.Split
	tabs       *container.AppTabs
	consoleTab *container.TabItem
	eventsTab  *container.TabItem
	box        *fyne.Container // the docked console's view, or hint
	hint       *widget.Label
	// dock is the docked console, nil when none is attached (pane hidden,
	// nothing selected, or the embedded venti selected).
	dock *consoleTab
}

// newBottomPane splits top (the tabs) above the bottom pane.
func (m *MainWindow) newBottomPane(top fyne.CanvasObject) fyne.CanvasObject {
	p := &bottomPane{hint: widget.NewLabel("Click a node: its console shows here.")}
	p.hint.Wrapping = fyne.TextWrapWord
	p.box = container.NewStack(p.hint)
	p.consoleTab = container.NewTabItemWithIcon("Console", theme.ComputerIcon(), p.box)
	p.eventsTab = container.NewTabItemWithIcon("Events", theme.ListIcon(), m.newEventsView())
	p.tabs = container.NewAppTabs(p.consoleTab, p.eventsTab)
	p.tabs.OnSelected = func(*container.TabItem) { m.dockFollow() }
	p.tabs.Hide()
	p.split = container.NewVSplit(top, p.tabs)
	p.split.Offset = 0.62
	m.pane = p
	m.bind(consolePaneShortcut, m.onConsolePane)
	m.bind(eventsPaneShortcut, m.onEventsPane)
	return p.split
}

// onConsolePane shows the docked console (of the selected node), or hides
// the pane when it already shows it.
func (m *MainWindow) onConsolePane() { m.togglePane(m.pane.consoleTab) }

// onEventsPane shows the events pane, or hides the pane when it already
// shows it.
func (m *MainWindow) onEventsPane() { m.togglePane(m.pane.eventsTab) }

func (m *MainWindow) togglePane(t *container.TabItem) {
	p := m.pane
	if p.tabs.Visible() && p.tabs.Selected() == t {
		p.tabs.Hide()
		m.undock()
	} else {
		p.tabs.Show()
		p.tabs.Select(t)
	}
	p.split.Refresh()
	m.dockFollow()
}

// paneShows reports which tab of the bottom pane shows, nil if it is
// hidden.
func (m *MainWindow) paneShows() *container.TabItem {
	if !m.pane.tabs.Visible() {
		return nil
	}
	return m.pane.tabs.Selected()
}

// dockFollow docks the selected node's console when the console pane
// shows, replacing another node's (UI goroutine).
func (m *MainWindow) dockFollow() {
	p := m.pane
	if m.paneShows() != p.consoleTab {
		return
	}
	n, ok := m.snapshot().NodeByName(m.selected)
	switch {
	case !ok:
		m.undock()
		p.hint.SetText("Click a node: its console shows here.")
		return
	case n.Embedded:
		m.undock()
		p.hint.SetText(n.Name + " is the embedded venti: it runs inside the engine and has no console.")
		return
	case p.dock != nil && p.dock.name == n.Name:
		return
	}
	m.undock()
	p.dock = m.newConsoleView(n.Name)
	p.box.Objects = []fyne.CanvasObject{p.dock.content}
	p.box.Refresh()
	p.dock.connect()
}

// undock closes the docked console's stream and shows the hint instead.
func (m *MainWindow) undock() {
	p := m.pane
	if p.dock == nil {
		return
	}
	p.dock.close()
	p.dock = nil
	p.box.Objects = []fyne.CanvasObject{p.hint}
	p.box.Refresh()
}
