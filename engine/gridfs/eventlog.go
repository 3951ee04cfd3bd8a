package gridfs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hugelgupf/p9/fsimpl/templatefs"
	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
)

// Event is one line of /log, the engine's event log: what the engine logs
// at level info and above (starts, readiness, ndb, halts, errors), one line
// per record:
//
//	TIME NODE LEVEL WHAT
//	2026-12-02T02:52:38.646Z fossil1 INFO node ready
//	2026-12-02T02:52:38.646Z fossil1 INFO wrote the grid's ndb entries file=/lib/ndb/local
//	2026-12-02T02:52:39.001Z - WARN rebuilding the grid network for the changed nodes err="..."
//
// TIME is RFC 3339 in UTC with milliseconds, NODE the node the record is
// about ("-" for none), LEVEL slog's (INFO, WARN, ERROR), WHAT the message
// and the record's other attributes as key=value (quoted when needed).
// Format and ParseEvent are each other's inverse.
type Event struct {
	Time  time.Time
	Node  string // "" for none
	Level string
	What  string
}

// eventTime is the layout of an event's TIME.
const eventTime = "2006-01-02T15:04:05.000Z07:00"

// Format returns the event's line (without a newline).
func (e Event) Format() string {
	node := e.Node
	if node == "" {
		node = "-"
	}
	return e.Time.UTC().Format(eventTime) + " " + node + " " + e.Level + " " + strings.ReplaceAll(e.What, "\n", " ")
}

// ParseEvent reads an event line (Format's).
func ParseEvent(line string) (Event, error) {
	f := strings.SplitN(strings.TrimRight(line, "\n"), " ", 4)
	if len(f) < 4 {
		return Event{}, fmt.Errorf("event %q: want TIME NODE LEVEL WHAT", line)
	}
	t, err := time.Parse(eventTime, f[0])
	if err != nil {
		return Event{}, fmt.Errorf("event %q: %w", line, err)
	}
	e := Event{Time: t, Node: f[1], Level: f[2], What: f[3]}
	if e.Node == "-" {
		e.Node = ""
	}
	return e, nil
}

// EventLog keeps the engine's most recent events for /log and lets its
// readers follow new ones. Its Handler tees a logger's records into it.
type EventLog struct {
	mu    sync.Mutex
	lines []string // the kept events, oldest first
	first uint64   // sequence number of lines[0]
	max   int
	wake  chan struct{} // closed at the next Add
}

// NewEventLog keeps the last max events (max <= 0: 2000).
func NewEventLog(max int) *EventLog {
	if max <= 0 {
		max = 2000
	}
	return &EventLog{max: max, wake: make(chan struct{})}
}

// Add appends an event.
func (l *EventLog) Add(e Event) {
	line := e.Format() + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > l.max {
		drop := len(l.lines) - l.max
		l.lines = append(l.lines[:0:0], l.lines[drop:]...)
		l.first += uint64(drop)
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// since returns the events from sequence number seq on (the oldest kept
// when seq is older), the sequence number after them and a channel closed
// at the next Add.
func (l *EventLog) since(seq uint64) ([]string, uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < l.first {
		seq = l.first
	}
	end := l.first + uint64(len(l.lines))
	if seq > end {
		seq = end
	}
	return l.lines[seq-l.first:], end, l.wake
}

// Lines returns the kept events, oldest first, each ending in a newline.
func (l *EventLog) Lines() []string {
	lines, _, _ := l.since(0)
	return append([]string(nil), lines...)
}

// Handler returns a slog.Handler that passes every record to next and
// adds those at level info and above to l. A record's "node" attribute
// (or a "path" under /nodes/NAME/) names its node; "grid" is left out (it
// is the same for every event of a grid).
func (l *EventLog) Handler(next slog.Handler) slog.Handler {
	if next == nil {
		next = slog.DiscardHandler
	}
	return &teeHandler{l: l, next: next}
}

type teeHandler struct {
	l     *EventLog
	next  slog.Handler
	attrs []slog.Attr // from WithAttrs, outside any group
	group string      // prefix from WithGroup
}

func (h *teeHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelInfo || h.next.Enabled(ctx, lv)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		h.l.Add(h.event(r))
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *teeHandler) event(r slog.Record) Event {
	e := Event{Time: r.Time, Level: r.Level.String()}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(prefix string, a slog.Attr) {
		a.Value = a.Value.Resolve()
		switch {
		case a.Key == "grid" && prefix == "":
			return
		case a.Key == "node" && prefix == "" && e.Node == "":
			e.Node = a.Value.String()
			return
		case a.Key == "path" && prefix == "" && e.Node == "" && strings.HasPrefix(a.Value.String(), "/nodes/"):
			e.Node, _, _ = strings.Cut(strings.TrimPrefix(a.Value.String(), "/nodes/"), "/")
		}
		v := a.Value.String()
		if v == "" || strings.ContainsAny(v, " \t\n\"=") {
			v = strconv.Quote(v)
		}
		b.WriteString(" " + prefix + a.Key + "=" + v)
	}
	for _, a := range h.attrs {
		add("", a)
	}
	r.Attrs(func(a slog.Attr) bool { add(h.group, a); return true })
	e.What = b.String()
	return e
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	if h.group == "" {
		c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	}
	return &c
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

// EventSource is an Engine that keeps an event log: gridfs serves it as
// /log (an Engine that is not one serves an empty /log).
type EventSource interface {
	EventLog() *EventLog
}

// logFile is /log. Each open starts at the oldest event kept; a read
// returns the events not yet read (whole lines as far as they fit) and
// blocks while there are none. As with cons, a read at the offset where
// this fid's previous read ended (off > 0) does not block but returns 0
// when nothing is new, so through a kernel mount "cat log" prints the
// events kept and exits and "tail -f log" follows them.
type logFile struct {
	fileBase
	templatefs.NilCloser

	mu      sync.Mutex
	seq     uint64 // the next event to read
	pending []byte // the part of an event a short read left
	lastEnd int64
}

var _ p9.File = (*logFile)(nil)

// Walk implements p9.File.Walk.
func (f *logFile) Walk(names []string) ([]p9.QID, p9.File, error) {
	if len(names) != 0 {
		return nil, nil, linux.ENOTDIR
	}
	return nil, &logFile{fileBase: f.fileBase}, nil
}

// GetAttr implements p9.File.GetAttr.
func (f *logFile) GetAttr(req p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	return f.getAttr(req, 0o444)
}

// Open implements p9.File.Open.
func (f *logFile) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	if mode.Mode() != p9.ReadOnly {
		return p9.QID{}, 0, linux.EACCES
	}
	return f.qid(p9.TypeRegular), 0, nil
}

func (f *logFile) log() *EventLog {
	if s, ok := f.a.fs.e.(EventSource); ok {
		return s.EventLog()
	}
	return nil
}

// ReadAt implements p9.File.ReadAt.
func (f *logFile) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	l := f.log()
	f.mu.Lock()
	defer f.mu.Unlock()
	follow := off > 0 && off == f.lastEnd
	for len(f.pending) == 0 {
		var lines []string
		var next uint64
		var wake <-chan struct{}
		if l != nil {
			lines, next, wake = l.since(f.seq)
		}
		if len(lines) > 0 {
			for _, s := range lines {
				f.pending = append(f.pending, s...)
			}
			f.seq = next
			break
		}
		if follow {
			return 0, io.EOF
		}
		if wake == nil {
			<-f.a.conn.Done()
			return 0, errno(f.a.conn.Err())
		}
		f.mu.Unlock()
		select {
		case <-wake:
		case <-f.a.conn.Done():
			f.mu.Lock()
			return 0, errno(f.a.conn.Err())
		}
		f.mu.Lock()
	}
	n := copy(p, f.pending)
	// End a short read at a line's end when one fits.
	if n < len(f.pending) {
		if i := strings.LastIndexByte(string(p[:n]), '\n'); i >= 0 {
			n = i + 1
		}
	}
	f.pending = f.pending[n:]
	f.lastEnd = off + int64(n)
	return n, nil
}
