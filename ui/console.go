package ui

import (
	"context"
	"io"
	"strings"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// maxScrollback is how much console text a tab keeps.
const maxScrollback = 256 << 10

// consoleTab is one node's serial console: live output with scrollback, an
// input line, copy, clear and save log. It follows the node: when the
// node's console ends (it stopped) or is not there yet (it was never
// started), the tab waits and attaches again as soon as the node starts,
// showing the new boot below a separator. Closing it closes only this
// window's stream; the VM and other viewers are not affected.
type consoleTab struct {
	m    *MainWindow
	name string
	tab  *container.TabItem // nil for the docked console
	// content is the console's whole view: header, output and input.
	content fyne.CanvasObject
	text    *widget.TextGrid
	view    *container.Scroll
	input   *lineEntry
	state   *widget.Label

	// UI goroutine only.
	buf       strings.Builder
	live      bool   // a stream is attached, or being attached
	lastState string // the node's state at the last refresh
	lastPID   int    // its VM's pid at the last refresh

	mu     sync.Mutex
	stream io.ReadWriteCloser
	closed bool
	gen    int // counts attachments: output of an older one is dropped
}

// openConsole shows name's console tab, opening it first if needed, with
// the keyboard in its line.
func (m *MainWindow) openConsole(name string) {
	if ct, ok := m.consoles[name]; ok {
		m.tabs.Select(ct.tab)
		m.win.Canvas().Focus(ct.input)
		return
	}
	ct := m.newConsoleView(name)
	ct.tab = container.NewTabItemWithIcon(name, theme.ComputerIcon(), ct.content)
	m.consoles[name] = ct
	m.tabs.Append(ct.tab)
	m.tabs.Select(ct.tab)
	ct.connect()
	m.win.Canvas().Focus(ct.input)
}

// newConsoleView makes the widgets of name's console (header with the
// node's state, output, input line), not yet attached: the console tabs
// and the docked console pane are each one of these (UI goroutine).
func (m *MainWindow) newConsoleView(name string) *consoleTab {
	ct := &consoleTab{m: m, name: name, text: widget.NewTextGrid(), input: newLineEntry(m), state: widget.NewLabel("connecting…")}
	ct.text.Scroll = fyne.ScrollNone
	ct.view = container.NewScroll(ct.text)
	ct.input.SetPlaceHolder("type a line for " + name + " and press Enter")
	ct.input.OnSubmitted = ct.onSubmit
	bar := widget.NewToolbar(
		widget.NewToolbarAction(theme.ContentCopyIcon(), ct.onCopy),
		widget.NewToolbarAction(theme.ContentClearIcon(), ct.onClear),
		widget.NewToolbarAction(theme.DocumentSaveIcon(), ct.onSave),
	)
	top := container.NewBorder(nil, nil, ct.state, bar)
	ct.content = container.NewBorder(top, ct.input, nil, nil, ct.view)
	if n, ok := m.snapshot().NodeByName(name); ok {
		ct.state.SetText(name + ": " + n.State)
		ct.lastState, ct.lastPID = n.State, n.PID
	}
	return ct
}

// connect attaches to the node's console in the background (UI
// goroutine).
func (ct *consoleTab) connect() {
	ct.live = true
	ct.mu.Lock()
	ct.gen++
	gen := ct.gen
	ct.mu.Unlock()
	ct.m.ops.Add(1)
	go ct.attach(gen)
}

// current reports whether gen is still the tab's attachment.
func (ct *consoleTab) current(gen int) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.gen == gen && !ct.closed
}

// drop lets go of the attached stream (the node stopped or booted again:
// the engine keeps a stopped VM's console open, so its stream would not
// end by itself); the next start attaches again (UI goroutine).
func (ct *consoleTab) drop() {
	ct.live = false
	ct.mu.Lock()
	ct.gen++
	s := ct.stream
	ct.stream = nil
	ct.mu.Unlock()
	if s != nil {
		go s.Close()
	}
}

// detached notes that the stream ended or could not be opened, saying why
// in the tab; the next start of the node attaches again (UI goroutine).
func (ct *consoleTab) detached(why string) {
	ct.live = false
	ct.lastState = "" // whatever the next refresh says is news
	ct.appendText("[" + why + "]\n")
}

// attach opens the console stream and copies it into the tab.
func (ct *consoleTab) attach(gen int) {
	defer ct.m.ops.Done()
	s, err := ct.m.app.OpenConsole(ct.m.ctx, ct.name)
	if err != nil {
		why, _ := app.ErrorReason(err)
		ct.m.ui(func() {
			if ct.current(gen) {
				ct.detached("no console yet (" + why + "): it appears when " + ct.name + " starts")
			}
		})
		return
	}
	ct.mu.Lock()
	if ct.closed || ct.gen != gen {
		ct.mu.Unlock()
		s.Close()
		return
	}
	ct.stream = s
	ct.mu.Unlock()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := s.Read(buf)
			if n > 0 {
				text := strings.ReplaceAll(string(buf[:n]), "\r", "")
				ct.m.ui(func() {
					if ct.current(gen) {
						ct.appendText(text)
					}
				})
			}
			if err != nil {
				ct.m.ui(func() {
					if ct.current(gen) {
						ct.detached("console ended: the next boot of " + ct.name + " shows here")
					}
				})
				return
			}
		}
	}()
}

// appendText adds console output, dropping the oldest beyond maxScrollback.
func (ct *consoleTab) appendText(s string) {
	ct.buf.WriteString(s)
	if ct.buf.Len() > maxScrollback {
		keep := ct.buf.String()[ct.buf.Len()-maxScrollback:]
		if i := strings.IndexByte(keep, '\n'); i >= 0 {
			keep = keep[i+1:]
		}
		ct.buf.Reset()
		ct.buf.WriteString(keep)
	}
	ct.text.SetText(ct.buf.String())
	ct.view.ScrollToBottom()
}

// Text is the console text shown, for tests.
func (ct *consoleTab) Text() string { return ct.buf.String() }

// setState shows the node's state in the tab's header and follows its
// boots (UI goroutine): when the node stops or fails, or its VM is another
// process than at the last refresh, the tab lets go of the old boot's
// stream; when the node is starting or running and the tab is not
// attached, it attaches to the new boot.
func (ct *consoleTab) setState(s string, pid int) {
	ct.state.SetText(ct.name + ": " + s)
	prev, prevPID := ct.lastState, ct.lastPID
	ct.lastState, ct.lastPID = s, pid
	newBoot := pid != 0 && prevPID != 0 && pid != prevPID
	down := s == "stopped" || s == "failed"
	if ct.live && (newBoot || down && prev != s) {
		ct.drop()
		if down {
			ct.appendText("[" + ct.name + " is " + s + ": its next boot shows here]\n")
		}
	}
	if ct.live || (s == prev && !newBoot) || (s != "starting" && s != "running") {
		return
	}
	ct.mu.Lock()
	closed := ct.closed
	ct.mu.Unlock()
	if closed {
		return
	}
	ct.appendText("──── " + ct.name + " is " + s + ": new boot ────\n")
	ct.connect()
}

// onSubmit sends the line and a newline to the VM.
func (ct *consoleTab) onSubmit(line string) {
	ct.mu.Lock()
	s := ct.stream
	ct.mu.Unlock()
	if s == nil {
		ct.m.showError("Console of "+ct.name, errNotConnected(ct.name))
		return
	}
	ct.input.SetText("")
	ct.m.do("type into "+ct.name, func(context.Context) error {
		_, err := io.WriteString(s, line+"\n")
		return err
	})
}

func (ct *consoleTab) onCopy() {
	ct.m.fa.Clipboard().SetContent(ct.buf.String())
}

func (ct *consoleTab) onClear() {
	ct.buf.Reset()
	ct.text.SetText("")
}

func (ct *consoleTab) onSave() {
	d := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil || w == nil {
			return
		}
		defer w.Close()
		if _, err := io.WriteString(w, ct.buf.String()); err != nil {
			ct.m.showError("Could not save the log", err)
		}
	}, ct.m.win)
	d.SetFileName(ct.name + "-console.log")
	d.Show()
}

// saveLog writes the console text to path atomically (the save dialog's
// work, without the dialog).
func (ct *consoleTab) saveLog(path string) error {
	return app.WriteFile(path, []byte(ct.buf.String()))
}

// close ends this tab's stream only.
func (ct *consoleTab) close() {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	ct.closed = true
	if ct.stream != nil {
		ct.stream.Close()
	}
}

type errNotConnected string

func (e errNotConnected) Error() string {
	return "the console of " + string(e) + " is not connected (is the node running?)"
}
