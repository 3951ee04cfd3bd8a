package gridfs

import (
	"log/slog"
	"testing"
	"time"
)

// TestSeedBuildEvents: the progress the engine logs during a seed build,
// as the event log formats it, reads back as steps, bytes and a fraction;
// other seeds' and other events are not taken for it.
func TestSeedBuildEvents(t *testing.T) {
	l := NewEventLog(0)
	log := slog.New(l.Handler(nil)).With("grid", "/g", "seed", "my 9legacy")
	log.Info("seed build step", "step", "boot installer", "n", 1, "of", 10)
	log.Info("seed build step done", "step", "boot installer", "n", 1, "of", 10, "took", "12s")
	log.Info("seed build copied", "step", "copy", "n", 5, "of", 10, "bytes", 33_000_000, "total", 66_000_000)
	log.Info("node ready", "node", "cpu1")
	slog.New(l.Handler(nil)).Info("seed build step", "seed", "other", "step", "copy", "n", 5, "of", 10)
	var got []SeedBuildProgress
	for _, line := range l.Lines() {
		ev, err := ParseEvent(line)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := ParseSeedBuildEvent(ev, "my 9legacy"); ok {
			got = append(got, p)
		}
	}
	want := []SeedBuildProgress{
		{Step: "boot installer", Index: 1, Steps: 10},
		{Step: "boot installer", Index: 1, Steps: 10, Done: true, Took: 12 * time.Second},
		{Step: "copy", Index: 5, Steps: 10, Bytes: 33_000_000, Total: 66_000_000},
	}
	if len(got) != len(want) {
		t.Fatalf("progress %+v, want %+v (from %q)", got, want, l.Lines())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if f := got[2].Fraction(); f != 0.45 {
		t.Errorf("halfway through step 5 of 10: fraction %v, want 0.45", f)
	}
	if s := got[2].String(); s != "step 5 of 10: copy, 33.0 of 66.0 MB copied" {
		t.Errorf("shown as %q", s)
	}
}

// FuzzEventAttrs: any event text splits without a panic, and a message
// without '=' comes back whole.
func FuzzEventAttrs(f *testing.F) {
	f.Add(`seed build copied seed="a b" step=copy n=5`)
	f.Add(`x="unterminated`)
	f.Fuzz(func(t *testing.T, what string) {
		msg, attrs := EventAttrs(what)
		if len(attrs) == 0 && len(msg) > len(what) {
			t.Errorf("message %q longer than %q", msg, what)
		}
	})
}
