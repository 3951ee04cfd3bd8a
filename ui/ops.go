package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// do runs fn off the UI goroutine; a failure is shown on the status line
// (see showError) with the words "Could not " + what, and the view is
// refreshed either way.
func (m *MainWindow) do(what string, fn func(ctx context.Context) error) {
	m.ops.Add(1)
	go func() {
		defer m.ops.Done()
		err := fn(m.ctx)
		if err != nil {
			m.ui(func() { m.showError("Could not "+what, err) })
		}
		m.refresh()
	}()
}

// long runs a long job (seed import, reset, clone, reset identity) off
// the UI goroutine, shown as a row of the jobs strip above the status
// line: its title, a progress bar (moving until fn reports a fraction;
// a text it reports with it is shown after the title) and
// a Cancel button that cancels fn's context. The context is marked
// app.Cancellable, so the engine cancels the command it is running, not
// only the window's wait. Nothing is modal: the canvas stays usable, and a
// failure goes to the status line. done (may be nil) runs on the UI
// goroutine after a success.
func (m *MainWindow) long(title string, fn func(ctx context.Context, progress func(float64, string)) error, done func()) {
	ctx, cancel := context.WithCancel(m.ctx)
	ctx = app.Cancellable(ctx)
	j := &job{title: title, cancel: cancel, label: widget.NewLabel(title + "…"), bar: widget.NewProgressBar(), spin: widget.NewProgressBarInfinite()}
	j.bar.Hide()
	j.button = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), func() {
		j.label.SetText(title + ": cancelling…")
		j.button.Disable()
		cancel()
	})
	j.row = container.NewBorder(nil, nil, j.label, j.button, container.NewStack(j.spin, j.bar))
	m.jobs.Add(j.row)
	m.running = append(m.running, j)
	m.ops.Add(1)
	go func() {
		defer m.ops.Done()
		defer cancel()
		err := fn(ctx, func(f float64, text string) {
			m.ui(func() {
				if text != "" {
					j.label.SetText(title + ": " + text)
				}
				if j.spin.Visible() {
					j.spin.Stop()
					j.spin.Hide()
					j.bar.Show()
				}
				j.bar.SetValue(f)
			})
		})
		m.ui(func() {
			j.spin.Stop()
			m.jobs.Remove(j.row)
			for i, r := range m.running {
				if r == j {
					m.running = append(m.running[:i], m.running[i+1:]...)
					break
				}
			}
			switch {
			case errors.Is(err, context.Canceled) && m.ctx.Err() == nil:
				m.say(title + ": cancelled")
			case err != nil:
				m.showError(title+" failed", err)
			case done != nil:
				done()
			}
		})
		m.refresh()
	}()
}

// job is one long job's row in the jobs strip.
type job struct {
	title  string
	cancel context.CancelFunc
	row    *fyne.Container
	label  *widget.Label
	bar    *widget.ProgressBar
	spin   *widget.ProgressBarInfinite
	button *widget.Button
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

// showError shows err on the status line, not in a dialog: the title and
// the reason in a sentence (a refused change also says that nothing was
// changed), with a Details button for the full text and the wrapped
// errors. The canvas stays usable; the next message replaces it.
func (m *MainWindow) showError(title string, err error) {
	m.noteError(err)
	text, refused := app.ErrorReason(err)
	if refused {
		text += " Nothing was changed."
	}
	m.describing = ""
	m.detail.SetText(title + ": " + text)
	m.detail.Importance = widget.DangerImportance
	m.detail.Refresh()
	m.errTitle, m.errDetails = title, details(err)
	m.errButton.Show()
}

// noteError records err as the last one reported, for tests.
func (m *MainWindow) noteError(err error) {
	m.mu.Lock()
	m.lastErr = err
	m.mu.Unlock()
}

// say shows an ordinary message on the status line, replacing an error.
func (m *MainWindow) say(text string) {
	m.describing = ""
	m.detail.Importance = widget.MediumImportance
	m.detail.SetText(text)
	m.errButton.Hide()
}

// onErrorDetails shows the last error's details, when the user asks.
func (m *MainWindow) onErrorDetails() {
	more := widget.NewLabel(m.errDetails)
	more.Wrapping = fyne.TextWrapWord
	more.TextStyle.Monospace = true
	d := dialog.NewCustom(m.errTitle, "Close", container.NewVScroll(more), m.win)
	d.Resize(fyne.NewSize(560, 260))
	d.Show()
}

// LastError returns the last error shown in a dialog, for tests.
func (m *MainWindow) LastError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}
