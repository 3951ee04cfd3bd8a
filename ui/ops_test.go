package ui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"gridlord/app"
	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/gridfs"
)

// jobRow returns the title of the long jobs shown and the first one's Cancel.
func (f *fixture) jobs() (titles []string, first *job) {
	f.do(func() {
		for _, j := range f.m.running {
			titles = append(titles, j.title)
		}
		if len(f.m.running) > 0 {
			first = f.m.running[0]
			if len(f.m.jobs.Objects) != len(f.m.running) || !f.m.jobs.Objects[0].Visible() {
				f.t.Errorf("jobs strip has %d rows for %d jobs", len(f.m.jobs.Objects), len(f.m.running))
			}
		}
	})
	return
}

func (f *fixture) noOverlay(what string) {
	f.t.Helper()
	f.do(func() {
		if top := f.m.win.Canvas().Overlays().Top(); top != nil {
			f.t.Errorf("%s: a %T covers the window", what, top)
		}
	})
}

// TestLongJobProgressAndCancel: a long job shows a row with a progress bar
// and Cancel above the status line, not a dialog; its progress moves the
// bar; Cancel cancels its context (marked for the engine to cancel its
// command); a failure goes to the status line.
func TestLongJobProgressAndCancel(t *testing.T) {
	f := newFixture(t)
	started := make(chan context.Context, 1)
	f.do(func() {
		f.m.long("Importing a seed", func(ctx context.Context, progress func(float64, string)) error {
			progress(0.25, "")
			started <- ctx
			<-ctx.Done()
			return ctx.Err()
		}, func() { t.Error("done ran for a cancelled job") })
	})
	ctx := <-started
	if !gridfs.IsCancellable(ctx) {
		t.Error("the job's context does not ask the engine to cancel its commands")
	}
	f.noOverlay("a long job")
	titles, j := f.jobs()
	if len(titles) != 1 || titles[0] != "Importing a seed" {
		t.Fatalf("jobs shown %q", titles)
	}
	f.eventually("the bar at 25%", func() bool {
		var v float64
		f.do(func() { v = j.bar.Value })
		return v == 0.25
	})
	f.do(func() {
		if !j.bar.Visible() || j.spin.Visible() || j.button.Text != "Cancel" {
			t.Errorf("bar shown %v, spinner %v, button %q", j.bar.Visible(), j.spin.Visible(), j.button.Text)
		}
		test.Tap(j.button)
	})
	f.m.Wait()
	if titles, _ := f.jobs(); len(titles) != 0 {
		t.Errorf("jobs after Cancel: %q", titles)
	}
	if !strings.Contains(f.m.DetailText(), "Importing a seed: cancelled") {
		t.Errorf("status line after Cancel %q", f.m.DetailText())
	}
	f.do(func() {
		f.m.long("Cloning cpu1", func(context.Context, func(float64, string)) error { return errors.New("no room on the disk") }, nil)
	})
	f.m.Wait()
	f.noOverlay("a failed long job")
	if d := f.m.DetailText(); !strings.Contains(d, "Cloning cpu1 failed") || !strings.Contains(d, "no room on the disk") {
		t.Errorf("status line after a failure %q", d)
	}
}

// TestLongJobCancelReachesEngine: Cancel of a long job cancels the engine
// command it runs: a start stops (the engine powers the VM off) instead of
// running on after the window gave up.
func TestLongJobCancelReachesEngine(t *testing.T) {
	g := daemontest.Open(t, daemontest.Options{Boot: 30 * time.Second})
	r, err := app.DialRemote(context.Background(), g.Dir)
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(r, app.Options{})
	f := &fixture{t: t, g: g, a: a, m: NewMainWindow(test.NewTempApp(t), a)}
	f.m.win.Resize(fyne.NewSize(960, 600))
	f.m.Watch()
	t.Cleanup(func() { f.m.Close(); f.m.Wait(); a.Close() })
	f.do(func() {
		f.m.long("Starting fossil1", func(ctx context.Context, _ func(float64, string)) error {
			return f.a.NodeCtl(ctx, "fossil1", "start")
		}, nil)
	})
	f.eventually("fossil1 starting", func() bool { st, _ := g.Engine.NodeStatus("fossil1"); return strings.HasPrefix(st, "starting") })
	_, j := f.jobs()
	if j == nil {
		t.Fatal("no job row")
	}
	f.do(func() { test.Tap(j.button) })
	f.m.Wait()
	f.eventually("the engine to give up fossil1's start", func() bool {
		st, _ := g.Engine.NodeStatus("fossil1")
		return !strings.HasPrefix(st, "starting") && !strings.HasPrefix(st, "running")
	})
	if !strings.Contains(f.m.DetailText(), "cancelled") {
		t.Errorf("status line %q", f.m.DetailText())
	}
}
