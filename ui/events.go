package ui

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// maxEvents is how many events the events pane keeps.
const maxEvents = 5000

// allNodes is the node filter's choice that shows every event.
const allNodes = "all nodes"

// eventsView is the events pane: the engine's log for the grid (starts,
// readiness, ndb, halts, errors), newest at the bottom, filtered by a text
// (any part of the line, case ignored) and by node.
type eventsView struct {
	m      *MainWindow
	list   *widget.List
	filter *lineEntry
	node   *widget.Select
	count  *widget.Label

	// UI goroutine only.
	events []app.Event
	shown  []int // indices into events that pass the filters
}

// newEventsView makes the events pane; Watch starts filling it.
func (m *MainWindow) newEventsView() fyne.CanvasObject {
	v := &eventsView{m: m, filter: newLineEntry(m), count: widget.NewLabel("")}
	m.eventsPane = v
	v.filter.SetPlaceHolder("filter: any text of the event")
	v.filter.OnChanged = func(string) { v.refilter() }
	v.node = widget.NewSelect([]string{allNodes}, nil)
	v.node.SetSelected(allNodes)
	v.node.OnChanged = func(string) { v.refilter() }
	v.list = widget.NewList(
		func() int { return len(v.shown) },
		func() fyne.CanvasObject {
			l := widget.NewLabel("")
			l.TextStyle.Monospace = true
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			l := o.(*widget.Label)
			if i < 0 || i >= len(v.shown) {
				l.SetText("")
				return
			}
			e := v.events[v.shown[i]]
			switch e.Level {
			case "ERROR":
				l.Importance = widget.DangerImportance
			case "WARN":
				l.Importance = widget.WarningImportance
			default:
				l.Importance = widget.MediumImportance
			}
			l.SetText(eventText(e))
		},
	)
	top := container.NewBorder(nil, nil, nil, container.NewHBox(v.node, v.count), v.filter)
	return container.NewBorder(top, nil, nil, nil, v.list)
}

// eventText is how the pane shows an event: local time, node, level, what.
func eventText(e app.Event) string {
	node := e.Node
	if node == "" {
		node = "-"
	}
	return e.Time.Local().Format("15:04:05.000") + "  " + node + "  " + e.Level + "  " + e.What
}

// matches reports whether e passes the pane's filters.
func (v *eventsView) matches(e app.Event) bool {
	if n := v.node.Selected; n != "" && n != allNodes && e.Node != n {
		return false
	}
	f := strings.ToLower(strings.TrimSpace(v.filter.Text))
	return f == "" || strings.Contains(strings.ToLower(eventText(e)), f)
}

// refilter recomputes the shown events.
func (v *eventsView) refilter() {
	v.shown = v.shown[:0]
	for i, e := range v.events {
		if v.matches(e) {
			v.shown = append(v.shown, i)
		}
	}
	v.show()
}

func (v *eventsView) show() {
	v.count.SetText(strconv.Itoa(len(v.shown)) + " of " + strconv.Itoa(len(v.events)))
	v.list.Refresh()
	v.list.ScrollToBottom()
}

// add appends events (UI goroutine).
func (v *eventsView) add(es []app.Event) {
	v.events = append(v.events, es...)
	if len(v.events) > maxEvents {
		v.events = append(v.events[:0:0], v.events[len(v.events)-maxEvents:]...)
		v.refilter()
		return
	}
	for i := len(v.events) - len(es); i < len(v.events); i++ {
		if v.matches(v.events[i]) {
			v.shown = append(v.shown, i)
		}
	}
	v.show()
}

// reset forgets the events shown (a new stream starts from the oldest event
// the engine keeps).
func (v *eventsView) reset() {
	v.events = v.events[:0]
	v.refilter()
}

// setNodes offers the grid's nodes in the node filter.
func (v *eventsView) setNodes(g app.GridView) {
	opts := []string{allNodes}
	for _, n := range g.Nodes {
		opts = append(opts, n.Name)
	}
	if strings.Join(opts, "\x00") != strings.Join(v.node.Options, "\x00") {
		v.node.Options = opts
		v.node.Refresh()
	}
}

// Shown returns the text of the events the pane shows, for tests.
func (v *eventsView) Shown() []string {
	out := make([]string, len(v.shown))
	for i, j := range v.shown {
		out[i] = eventText(v.events[j])
	}
	return out
}

// followEvents fills the events pane from the engine's event log until the
// window closes, opening it again (after a pause) when it ends: when the
// window switched grids, or the engine restarted.
func (m *MainWindow) followEvents() {
	for m.ctx.Err() == nil {
		ctx, cancel := context.WithCancel(m.ctx)
		m.eventsMu.Lock()
		m.eventsCancel = cancel
		m.eventsMu.Unlock()
		r, err := m.app.OpenEvents(ctx)
		if err == nil {
			stop := context.AfterFunc(ctx, func() { r.Close() })
			m.ui(func() { m.eventsPane.reset() })
			m.readEvents(r)
			stop()
			r.Close()
		}
		cancel()
		select {
		case <-m.ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// restartEvents ends the event stream being followed, so that
// followEvents opens the log of the engine the window now talks to (the
// window opened another grid).
func (m *MainWindow) restartEvents() {
	m.eventsMu.Lock()
	cancel := m.eventsCancel
	m.eventsMu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// readEvents hands the events read from r to the pane, in batches.
func (m *MainWindow) readEvents(r interface{ Read([]byte) (int, error) }) {
	lines := make(chan app.Event, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if e, err := app.ParseEvent(sc.Text()); err == nil {
				lines <- e
			}
		}
	}()
	for e := range lines {
		batch := []app.Event{e}
	more:
		for len(batch) < 256 {
			select {
			case e, ok := <-lines:
				if !ok {
					break more
				}
				batch = append(batch, e)
			default:
				break more
			}
		}
		m.ui(func() { m.eventsPane.add(batch) })
	}
}
