package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// RC runs rc(1) command lines at a Plan 9 console and returns what each
// printed and its $status. Each line runs in a subshell (@{…}), because a
// failed redirection makes Plan 9's rc drop the rest of the line: the
// subshell fails and the markers around it still print. Namespace changes
// (mounts, binds) outlive the line, since rc's fork shares the name space;
// variables and cd do not.
//
// The output is found between two markers printed by echo, typed with
// quotes inside them ("glrc'-'…") so that the console's echo of the typed
// line never matches what echo prints. An RC is used by one goroutine at
// a time.
type RC struct {
	hub    *Hub
	ex     *Expecter
	prompt *regexp.Regexp
	nonce  string
	seq    int
	ready  bool
	// MaxOutput bounds the output a Result keeps (its tail); default
	// 64 KiB.
	MaxOutput int
}

// Result is what a command line printed and how it ended.
type Result struct {
	// Output is what the line printed (carriage returns removed), at
	// most MaxOutput bytes: the tail when Truncated.
	Output    string
	Truncated bool
	// Status is rc's $status after the line: empty for success (Plan 9's
	// rc; Unix ports of rc say "0").
	Status string
}

// OK reports whether the line succeeded.
func (r Result) OK() bool { return r.Status == "" || r.Status == "0" }

// Answer replies to a question a command asks at the console (for
// auth/changeuser's prompts): when Prompt matches the output, Reply is
// typed and a return.
type Answer struct {
	Prompt *regexp.Regexp
	Reply  string
}

// ChangeuserAnswers answers the questions auth/changeuser asks at a 4e or
// 9legacy console, for a new or an existing user, with password (its two
// password questions are also what auth/convkeys asks).
func ChangeuserAnswers(password string) []Answer {
	return []Answer{
		{Prompt: regexp.MustCompile(`assign new password\? \[y/n\]: $`), Reply: "y"},
		{Prompt: regexp.MustCompile(`Confirm password: $`), Reply: password},
		{Prompt: regexp.MustCompile(`Password: $`), Reply: password},
		{Prompt: regexp.MustCompile(`assign Inferno/POP secret\? \(y/n\) $`), Reply: "n"},
		{Prompt: regexp.MustCompile(`Expiration date[^:\n]*: $`), Reply: ""},
		{Prompt: regexp.MustCompile(`Post id: $`), Reply: ""},
		{Prompt: regexp.MustCompile(`full name: $`), Reply: ""},
		{Prompt: regexp.MustCompile(`Department #: $`), Reply: ""},
		{Prompt: regexp.MustCompile(`email address[^:\n]*: $`), Reply: ""},
	}
}

// NewRC starts driving the rc at h, whose shell prompt prompt matches.
// Close releases it.
func NewRC(h *Hub, prompt *regexp.Regexp) *RC {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return &RC{hub: h, ex: NewExpecter(h, false), prompt: prompt, nonce: hex.EncodeToString(b), MaxOutput: 64 << 10}
}

// Close unsubscribes from the console.
func (r *RC) Close() error { return r.ex.Close() }

// checkLine refuses what cannot be typed as one rc line.
func checkLine(line string) error {
	if strings.ContainsAny(line, "\r\n\x00\x7f\x04") {
		return fmt.Errorf("rc line %q holds a control character that ends or interrupts it", line)
	}
	if strings.Count(line, "'")%2 != 0 {
		return fmt.Errorf("rc line %q has an unbalanced quote", line)
	}
	depth := 0
	quoted := false
	for _, c := range line {
		switch {
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '{':
			depth++
		case c == '}':
			depth--
		}
		if depth < 0 {
			return fmt.Errorf("rc line %q closes a brace it did not open", line)
		}
	}
	if depth != 0 {
		return fmt.Errorf("rc line %q has unbalanced braces", line)
	}
	return nil
}

// Run types line at the console once the shell prompts, and returns its
// output and status. It fails (and interrupts the line with DEL) when
// timeout (if positive) passes or ctx ends; a failed status is not an
// error (see Result.OK).
func (r *RC) Run(ctx context.Context, line string, timeout time.Duration) (Result, error) {
	return r.Dialog(ctx, line, nil, timeout)
}

// Dialog is Run for a command that asks questions: whenever the output
// since the last answer matches one of answers' prompts, its reply is
// typed. The replies do not appear in the Result's output, only the
// prompts.
func (r *RC) Dialog(ctx context.Context, line string, answers []Answer, timeout time.Duration) (res Result, err error) {
	if err := checkLine(line); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		// Nothing is typed for a caller that has given up (Expect may
		// still find a prompt already buffered before it sees ctx end).
		return Result{}, fmt.Errorf("rc %q: %w", line, err)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	defer func() {
		if err != nil {
			r.ready = false
			if ctx.Err() != nil {
				r.hub.Write([]byte{0x7f}) // interrupt what still runs
			}
			err = fmt.Errorf("rc %q: %w", line, err)
		}
	}()
	if !r.ready {
		// A fresh prompt: an empty line prints one.
		if err := r.ex.SendLine(""); err != nil {
			return Result{}, err
		}
	}
	if _, err := r.ex.Expect(ctx, r.prompt, 0); err != nil {
		return Result{}, fmt.Errorf("no shell prompt: %w", err)
	}
	r.ready = false
	r.seq++
	mark := fmt.Sprintf("glrc-%s-%d", r.nonce, r.seq)
	typed := strings.ReplaceAll(mark, "-", "'-'")
	if err := r.ex.SendLine(fmt.Sprintf("echo %s'-'b; @{%s}; echo %s $status", typed, line, typed)); err != nil {
		return Result{}, err
	}
	if _, err := r.ex.Expect(ctx, regexp.MustCompile(regexp.QuoteMeta(mark)+`-b\r?\n`), 0); err != nil {
		return Result{}, err
	}
	// One expression: the output so far, then the end marker and the
	// status, or one of the questions (named groups, since a prompt may
	// hold groups of its own).
	alts := []string{`(?P<end>` + regexp.QuoteMeta(mark) + `) ?(?P<status>[^\r\n]*)\r?\n`}
	for i, a := range answers {
		alts = append(alts, fmt.Sprintf(`(?P<q%d>%s)`, i, a.Prompt))
	}
	re, err := regexp.Compile(`(?s)^(?P<out>.*?)(?:` + strings.Join(alts, "|") + `)`)
	if err != nil {
		return Result{}, fmt.Errorf("answers: %w", err)
	}
	var out strings.Builder
	for {
		m, err := r.ex.Expect(ctx, re, 0)
		if err != nil {
			return Result{}, err
		}
		out.WriteString(m[re.SubexpIndex("out")])
		if m[re.SubexpIndex("end")] != "" {
			res.Status = strings.TrimSpace(m[re.SubexpIndex("status")])
			break
		}
		answered := false
		for i, a := range answers {
			if q := m[re.SubexpIndex(fmt.Sprintf("q%d", i))]; q != "" {
				out.WriteString(q + "\n")
				if err := r.ex.SendLine(a.Reply); err != nil {
					return Result{}, err
				}
				answered = true
				break
			}
		}
		if !answered {
			return Result{}, fmt.Errorf("a question's prompt matched empty output: %q", m[0])
		}
	}
	res.Output = strings.ReplaceAll(out.String(), "\r", "")
	if r.MaxOutput > 0 && len(res.Output) > r.MaxOutput {
		res.Output, res.Truncated = res.Output[len(res.Output)-r.MaxOutput:], true
	}
	r.ready = true // the prompt follows the end marker
	return res, nil
}
