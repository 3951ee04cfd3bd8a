package gridfs_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"gridlord/engine/gridfs"
)

func TestEventLogHandler(t *testing.T) {
	l := gridfs.NewEventLog(3)
	var out strings.Builder
	log := slog.New(l.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))).With("grid", "/g")
	log.Debug("not an event", "node", "cpu1")
	log.Info("node ready", "node", "fossil1")
	log.Warn("port forwards", "node", "cpu1", "err", "address in use")
	log.Info("gridfs ctl", "path", "/nodes/cpu1/ctl", "words", []string{"stop"})
	log.With("service", "x").WithGroup("g").Error("boom", "k", "v w")
	lines := l.Lines()
	if len(lines) != 3 {
		t.Fatalf("kept %d events, want the last 3: %q", len(lines), lines)
	}
	want := []gridfs.Event{
		{Node: "cpu1", Level: "WARN", What: `port forwards err="address in use"`},
		{Node: "cpu1", Level: "INFO", What: "gridfs ctl path=/nodes/cpu1/ctl words=[stop]"},
		{Node: "", Level: "ERROR", What: `boom service=x g.k="v w"`},
	}
	for i, line := range lines {
		e, err := gridfs.ParseEvent(line)
		if err != nil {
			t.Fatal(err)
		}
		if e.Node != want[i].Node || e.Level != want[i].Level || e.What != want[i].What || time.Since(e.Time) > time.Minute {
			t.Errorf("event %d: %+v, want %+v", i, e, want[i])
		}
		if e.Format()+"\n" != line {
			t.Errorf("Format(ParseEvent(%q)) = %q", line, e.Format())
		}
	}
	if !strings.Contains(out.String(), "not an event") || !strings.Contains(out.String(), "node ready") {
		t.Errorf("the next handler did not get every record:\n%s", out.String())
	}
}
