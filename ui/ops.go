package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// do runs fn off the UI goroutine; a failure is shown as an error dialog
// titled with what, and the view is refreshed either way.
func (m *MainWindow) do(what string, fn func(ctx context.Context) error) {
	m.ops.Add(1)
	go func() {
		defer m.ops.Done()
		err := fn(m.ctx)
		if err != nil {
			m.ui(func() {
				m.showError("Could not "+what, err)
				if errors.Is(err, app.ErrEngineNotRunning) && m.opts.StartEngine != nil {
					m.offerEngine()
				}
			})
		}
		m.refresh()
	}()
}

// long runs a long operation off the UI goroutine with a progress dialog
// and a Cancel button that cancels fn's context. done (may be nil) runs on
// the UI goroutine after a success.
func (m *MainWindow) long(title string, fn func(ctx context.Context, progress func(float64)) error, done func()) {
	ctx, cancel := context.WithCancel(m.ctx)
	bar := widget.NewProgressBar()
	d := dialog.NewCustom(title, "Cancel", container.NewVBox(widget.NewLabel(title+"…"), bar), m.win)
	d.SetOnClosed(cancel)
	d.Show()
	m.ops.Add(1)
	go func() {
		defer m.ops.Done()
		defer cancel()
		err := fn(ctx, func(f float64) { m.ui(func() { bar.SetValue(f) }) })
		m.ui(func() {
			d.Hide()
			switch {
			case errors.Is(err, context.Canceled):
				m.detail.SetText(title + ": cancelled")
			case err != nil:
				m.showError(title+" failed", err)
			case done != nil:
				done()
			}
		})
		m.refresh()
	}()
}

// offerEngine asks whether to start the engine daemon and, if so, starts
// it in the background (the window then talks to it).
func (m *MainWindow) offerEngine() {
	dialog.ShowConfirm("Start the engine?",
		"Starting, stopping and consoles need Gridlord's engine, which runs the VMs and keeps them running after this window closes. Start it now?",
		func(ok bool) {
			if !ok {
				return
			}
			m.long("Starting the engine", func(ctx context.Context, _ func(float64)) error {
				return m.opts.StartEngine(ctx)
			}, func() { m.detail.SetText("engine started: try again") })
		}, m.win)
}

// summary is the one-line reason of err (see app.ErrorReason).
func summary(err error) string {
	r, _ := app.ErrorReason(err)
	return r
}

// details is the full error text and the chain of wrapped errors.
func details(err error) string {
	var b strings.Builder
	b.WriteString(err.Error())
	for i, e := 1, errors.Unwrap(err); e != nil && i < 8; i, e = i+1, errors.Unwrap(e) {
		fmt.Fprintf(&b, "\n%s↳ %s (%T)", strings.Repeat("  ", i-1), e.Error(), e)
	}
	return b.String()
}

// showError shows err in a dialog: the reason in a sentence, the details
// (the full text and the wrapped errors) in an expandable section. A
// refused change also says that nothing was changed.
func (m *MainWindow) showError(title string, err error) {
	m.mu.Lock()
	m.lastErr = err
	m.mu.Unlock()
	text, refused := app.ErrorReason(err)
	if refused {
		text += "\n\nNothing was changed."
	}
	msg := widget.NewLabel(text)
	msg.Wrapping = fyne.TextWrapWord
	more := widget.NewLabel(details(err))
	more.Wrapping = fyne.TextWrapWord
	more.TextStyle.Monospace = true
	acc := widget.NewAccordion(widget.NewAccordionItem("Details", more))
	content := container.NewVBox(msg, acc)
	d := dialog.NewCustom(title, "Close", content, m.win)
	d.Resize(fyne.NewSize(520, 200))
	d.Show()
	m.detail.SetText(title + ": " + summary(err))
}

// LastError returns the last error shown in a dialog, for tests.
func (m *MainWindow) LastError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}
