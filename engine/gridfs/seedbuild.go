package gridfs

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SeedBuildProgress is where a seed build is, as the engine's event log
// says: step Index of Steps (from 1), its name, and for the copy the bytes
// copied of the total.
type SeedBuildProgress struct {
	Step         string
	Index, Steps int
	Done         bool          // the step ended
	Took         time.Duration // how long it took, when Done
	Bytes, Total int64
}

// Fraction is how far the whole build is, from 0 to 1, counting each
// step as an equal part and the copy by its bytes.
func (p SeedBuildProgress) Fraction() float64 {
	if p.Steps <= 0 {
		return 0
	}
	part := 0.0
	switch {
	case p.Done:
		part = 1
	case p.Total > 0:
		part = float64(p.Bytes) / float64(p.Total)
	}
	return (float64(p.Index-1) + part) / float64(p.Steps)
}

// String is the progress as the window's job row shows it.
func (p SeedBuildProgress) String() string {
	s := fmt.Sprintf("step %d of %d: %s", p.Index, p.Steps, p.Step)
	if p.Total > 0 && !p.Done {
		s += fmt.Sprintf(", %.1f of %.1f MB copied", float64(p.Bytes)/1e6, float64(p.Total)/1e6)
	}
	return s
}

// ParseSeedBuildEvent reads a seed build's progress out of an event of the
// engine's log ("seed build step", "seed build step done", "seed build
// copied"); ok is false for any other event, or one about another seed.
func ParseSeedBuildEvent(ev Event, seed string) (p SeedBuildProgress, ok bool) {
	msg, attrs := EventAttrs(ev.What)
	if attrs["seed"] != seed {
		return p, false
	}
	switch msg {
	case "seed build step", "seed build copied":
	case "seed build step done":
		p.Done = true
	default:
		return p, false
	}
	p.Step = attrs["step"]
	p.Index, _ = strconv.Atoi(attrs["n"])
	p.Steps, _ = strconv.Atoi(attrs["of"])
	p.Bytes, _ = strconv.ParseInt(attrs["bytes"], 10, 64)
	p.Total, _ = strconv.ParseInt(attrs["total"], 10, 64)
	p.Took, _ = time.ParseDuration(attrs["took"])
	return p, p.Step != ""
}

// EventAttrs splits an event's WHAT into its message and its key=value
// attributes (values quoted as strconv.Quote does when they hold spaces,
// quotes or '=').
func EventAttrs(what string) (string, map[string]string) {
	attrs := map[string]string{}
	var msg []string
	rest := what
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		k, v, isAttr := strings.Cut(rest, "=")
		if !isAttr || strings.Contains(k, " ") || k == "" {
			word, after, _ := strings.Cut(rest, " ")
			if len(attrs) == 0 {
				msg = append(msg, word)
			}
			rest = after
			continue
		}
		if strings.HasPrefix(v, `"`) {
			if q, err := strconv.QuotedPrefix(v); err == nil {
				uq, _ := strconv.Unquote(q)
				attrs[k] = uq
				rest = v[len(q):]
				continue
			}
		}
		val, after, _ := strings.Cut(v, " ")
		attrs[k] = val
		rest = after
	}
	return strings.Join(msg, " "), attrs
}

// BuildSeed writes the /identity command words (a "seed build NAME …" of
// SeedBuildUsage: it holds a password, so it goes where lines are not
// logged) and returns when the build has ended. progress (may be nil)
// gets the build's progress as the event log reports it. Under a
// Cancellable ctx, ending ctx cancels the build in the engine.
func (c *Client) BuildSeed(ctx context.Context, name string, words []string, progress func(SeedBuildProgress)) error {
	if progress != nil {
		follow, stop := context.WithCancel(ctx)
		logs, err := c.OpenLog(follow)
		if err != nil {
			stop()
			return fmt.Errorf("seed build %s: follow the engine's log: %w", name, err)
		}
		// The log starts with the events it keeps: older builds' are
		// not this one's.
		since := time.Now().Add(-time.Second)
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(logs)
			for sc.Scan() {
				ev, err := ParseEvent(sc.Text())
				if err != nil || ev.Time.Before(since) {
					continue
				}
				if p, ok := ParseSeedBuildEvent(ev, name); ok {
					progress(p)
				}
			}
		}()
		defer func() { stop(); logs.Close(); <-done }()
	}
	return c.Identity(ctx, QuoteWords(words))
}
