package console

import (
	"context"
	"fmt"
	"regexp"
	"time"
)

// Expecter automates a console: wait for output matching a regexp, send a
// line. It reads through its own Reader, so it never holds up the hub.
type Expecter struct {
	hub *Hub
	r   *Reader
	buf []byte // unread output not yet consumed by a match
	max int
}

// NewExpecter subscribes to h. With scrollback set, output the hub already
// remembers can satisfy the first Expect. Close releases the subscription.
func NewExpecter(h *Hub, scrollback bool) *Expecter {
	return &Expecter{hub: h, r: h.Subscribe(scrollback), max: 256 << 10}
}

// Expect waits until the output read since the last match contains re and
// returns the match and its submatches; output up to the end of the match
// is consumed. It fails after timeout (if positive) or when ctx ends, with
// an error quoting the tail of what was seen.
func (e *Expecter) Expect(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	chunk := make([]byte, 4096)
	for {
		if loc := re.FindSubmatchIndex(e.buf); loc != nil {
			var out []string
			for i := 0; i+1 < len(loc); i += 2 {
				if loc[i] < 0 {
					out = append(out, "")
					continue
				}
				out = append(out, string(e.buf[loc[i]:loc[i+1]]))
			}
			e.buf = append(e.buf[:0], e.buf[loc[1]:]...)
			return out, nil
		}
		n, err := e.r.ReadContext(ctx, chunk)
		if err != nil {
			tail := e.buf
			if len(tail) > 300 {
				tail = tail[len(tail)-300:]
			}
			return nil, fmt.Errorf("console %s: waiting for %q: %w; last output: %q", e.hub.name, re, err, tail)
		}
		e.buf = appendBounded(e.buf, chunk[:n], e.max)
	}
}

// SendLine writes s and a carriage return to the console.
func (e *Expecter) SendLine(s string) error {
	_, err := e.hub.Write([]byte(s + "\r"))
	return err
}

// Close unsubscribes.
func (e *Expecter) Close() error { return e.r.Close() }
