package gridfs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hugelgupf/p9/linux"

	"gridlord/engine/grid"
)

// MaxCtlLine is the longest command line a ctl file accepts, in bytes.
const MaxCtlLine = 4096

// Verb describes one ctl command: its name, how many arguments it takes and
// a usage line shown when reading ctl or after a misuse.
type Verb = grid.Verb

// GridVerbs returns the table of commands /ctl accepts: the model edits
// (grid.EditVerbs) and the engine's commands with side effects. It is the
// one table of argument counts and usage; the engine checks commands it is
// given directly against it too (CheckCtl).
func GridVerbs() []Verb {
	return append([]Verb{
		{Name: "up", Min: 0, Max: 0, Usage: "up"},
		{Name: "down", Min: 0, Max: 0, Usage: "down"},
		{Name: "seed", Min: 3, Max: -1, Usage: "seed import NAME PATH [OPTION=VALUE...]"},
		{Name: "mirror", Min: 2, Max: 2, Usage: "mirror add|rm|verify ADDR"},
		{Name: "save", Min: 2, Max: 2, Usage: "save NODE SNAPSHOT"},
		{Name: "spawn", Min: 1, Max: 3, Usage: "spawn SNAPSHOT [as NEWNODE]"},
		{Name: "boom", Min: 1, Max: 1, Usage: "boom NODE"},
		{Name: "venti", Min: 1, Max: 1, Usage: "venti start|stop"},
	}, grid.EditVerbs()...)
}

// NodeVerbs returns the table of commands /nodes/NAME/ctl accepts.
func NodeVerbs() []Verb {
	return []Verb{
		{Name: "start", Min: 0, Max: 0, Usage: "start"},
		{Name: "stop", Min: 0, Max: 0, Usage: "stop"},
		{Name: "poweroff", Min: 0, Max: 0, Usage: "poweroff"},
		{Name: "reset", Min: 0, Max: 0, Usage: "reset"},
		{Name: "wire", Min: 1, Max: 1, Usage: "wire TARGET"},
		{Name: "unwire", Min: 1, Max: 1, Usage: "unwire TARGET"},
		{Name: "rewire", Min: 1, Max: 1, Usage: "rewire TARGET"},
		{Name: "clone", Min: 1, Max: 1, Usage: "clone NEWNAME"},
	}
}

// IdentityVerbs returns the table of commands /identity accepts: a new host
// owner identity for nodes, written there (not to /ctl) because ctl lines
// are logged and this one holds a password:
//
//	set user=USER authdom=DOM password=PASSWORD [keyfs=yes] [NODE...]
//
// With keyfs=yes the auth servers' keyfs entry of USER is changed too (and
// their key file re-encrypted), so the whole grid takes the new password.
// invite adds a user to a file-system snapshot and saves it anew (see the
// engine's Invite). seed build builds a seed from a Plan 9 CD image or
// directory FROM (a path on the engine's host) by a real install whose
// host owner is the identity given; its progress is logged (/log: "seed
// build step", "seed build copied", with seed=NAME).
func IdentityVerbs() []Verb {
	return []Verb{
		{Name: "set", Min: 3, Max: -1, Usage: "set user=USER authdom=DOM password=PASSWORD [keyfs=yes] [NODE...]"},
		{Name: "invite", Min: 4, Max: 4, Usage: "invite USER SNAPSHOT NEWNAME password=PASSWORD"},
		{Name: "seed", Min: 6, Max: 9, Usage: SeedBuildUsage},
	}
}

// SeedBuildUsage is the /identity command that builds a seed.
const SeedBuildUsage = "seed build NAME FROM user=USER authdom=DOM password=PASSWORD [profile=grid|full] [sysname=NAME] [size=MiB]"

// verbTable is an explicit lookup table of ctl verbs.
type verbTable map[string]Verb

func newVerbTable(vs []Verb) verbTable {
	t := make(verbTable, len(vs))
	for _, v := range vs {
		t[v.Name] = v
	}
	return t
}

// usage lists the table's commands, one per line, sorted.
func (t verbTable) usage() string {
	var lines []string
	for _, v := range t {
		lines = append(lines, v.Usage)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

func (t verbTable) names() string {
	var ns []string
	for n := range t {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return strings.Join(ns, ", ")
}

// check validates words against the table.
func (t verbTable) check(words []string) error {
	if len(words) == 0 {
		return &ctlError{errno: linux.EINVAL, msg: "empty command; verbs: " + t.names()}
	}
	v, ok := t[words[0]]
	if !ok {
		return &ctlError{errno: linux.EINVAL, msg: fmt.Sprintf("unknown command %q; verbs: %s", words[0], t.names())}
	}
	if err := v.Check(words); err != nil {
		return &ctlError{errno: linux.EINVAL, msg: err.Error()}
	}
	return nil
}

// ctlError is a ctl failure with the errno the 9P client receives.
type ctlError struct {
	errno linux.Errno
	msg   string
}

// Error implements error.
func (e *ctlError) Error() string { return e.msg }

// Unwrap returns the errno.
func (e *ctlError) Unwrap() error { return e.errno }

// ErrBadCtl is wrapped by every error ParseCtl returns.
var ErrBadCtl = errors.New("bad ctl command")

// ParseCtl splits one command written to a ctl file into words. One
// trailing newline (and a carriage return before it) is allowed; any other
// control character, invalid UTF-8, or a line longer than MaxCtlLine is
// refused. Words are separated by spaces or tabs; a word may be quoted with
// single quotes as in rc(1), where ” inside quotes stands for one quote, so
// "seed import x '/my disks/a.qcow2'" has four words. QuoteWords is the
// inverse.
func ParseCtl(b []byte) ([]string, error) {
	if len(b) > MaxCtlLine {
		return nil, fmt.Errorf("%w: command is %d bytes; the limit is %d", ErrBadCtl, len(b), MaxCtlLine)
	}
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: command is not valid UTF-8", ErrBadCtl)
	}
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quoted bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			return nil, fmt.Errorf("%w: one command per write (found a newline inside)", ErrBadCtl)
		}
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, fmt.Errorf("%w: control character %#02x at byte %d", ErrBadCtl, c, i)
		}
		switch {
		case quoted:
			if c == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					cur.WriteByte('\'')
					i++
				} else {
					quoted = false
				}
				continue
			}
			cur.WriteByte(c)
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			quoted, inWord = true, true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("%w: unterminated quote", ErrBadCtl)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// QuoteWords joins words into one ctl command line that ParseCtl splits back
// into the same words; words with spaces, tabs or quotes (or empty words)
// are quoted rc-style.
func QuoteWords(words []string) string {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		if w != "" && !strings.ContainsAny(w, " \t'") {
			b.WriteString(w)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(w, "'", "''"))
		b.WriteByte('\'')
	}
	return b.String()
}

// CheckCtl checks a /ctl command against GridVerbs, as writes to /ctl are
// checked; the engine checks commands it is given directly with it.
func CheckCtl(words []string) error { return newVerbTable(GridVerbs()).check(words) }

// CheckNodeCtl checks a /nodes/NAME/ctl command against NodeVerbs.
func CheckNodeCtl(words []string) error { return newVerbTable(NodeVerbs()).check(words) }
