package daemon

import (
	"github.com/google/uuid"

	"context"
	"fmt"
	"gridlord/engine/grid"
	"regexp"
	"strings"
	"time"

	"gridlord/engine/console"
)

// Peers in ndb. A node that boots its own root keeps /lib/ndb/local (and an
// auth server /lib/ndb/auth) inside its file system, which cannot be written
// offline (plan9-grid-roles.md §8). So once such a node is ready the engine
// types the grid's sections (grid.NodeConfig.Ndb and AuthNdb) in at its
// console, replacing the previous ones, as the old confighelper's ndb
// updater did. The lines work in rc and in sh (a stand-in guest's shell).

// NdbLocal and NdbAuth are the ndb files the engine keeps a section of.
const (
	NdbLocal = "/lib/ndb/local"
	NdbAuth  = "/lib/ndb/auth"
)

// ndbResult matches what the console prints after a section is written.
// It is not anchored: Plan 9's rc prints its prompt on the same line as a
// command's output when lines are typed ahead. The command is typed in
// capitals, so its echo never matches, however a terminal wraps it.
var ndbResult = regexp.MustCompile(`gridlord-ndb-(ok|failed)`)

// ndbWait bounds the wait for one file's result.
const ndbWait = 30 * time.Second

// ndbTmp is the scratch file the new contents are built in.
const ndbTmp = "/tmp/gridlord.ndb"

// plan9Scratch starts the lines typed at a real Plan 9 console: in a
// subshell with a namespace of its own, a fresh ramfs on /tmp, because on
// a cpu server's console /tmp is the file server's and not writable (no
// /usr/$user/tmp is bound there), and a failed redirection makes rc drop
// the whole line.
const plan9Scratch = "rfork n; ramfs -m /tmp && "

// ndbLines returns the console lines that replace section (whose first and
// last lines are its markers, see grid.ReplaceSection) in file and print
// gridlord-ndb-ok, or leave file as it was and print gridlord-ndb-failed.
// Each step runs only if the one before worked (one line of && steps), so
// a file that cannot be read is never overwritten with the section alone.
// For a real Plan 9 console (plan9 set) the steps run in an rc subshell
// with its own /tmp (plan9Scratch); otherwise (a stand-in's sh) in the
// console's shell, and a second line removes the scratch file.
func ndbLines(file, section string, plan9 bool) ([]string, error) {
	lines := strings.Split(strings.TrimRight(section, "\n"), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("ndb section for %s has no markers", file)
	}
	begin, err := markerRegexp(lines[0])
	if err != nil {
		return nil, err
	}
	end, err := markerRegexp(lines[len(lines)-1])
	if err != nil {
		return nil, err
	}
	steps := []string{"touch " + file, fmt.Sprintf("sed '/^%s/,/^%s/d' %s >%s", begin, end, file, ndbTmp)}
	for _, l := range lines {
		// rc and sh quote a quote differently; ndb values never need one.
		// A tab would make a line-editing shell complete; ndb takes any
		// leading white space for a continuation line.
		l = strings.ReplaceAll(l, "\t", "    ")
		if strings.ContainsAny(l, "'\r") {
			return nil, fmt.Errorf("ndb line %q for %s cannot be typed: it holds a quote", l, file)
		}
		steps = append(steps, fmt.Sprintf("echo '%s' >>%s", l, ndbTmp))
	}
	steps = append(steps, fmt.Sprintf("cat %s >%s", ndbTmp, file))
	const result = " && echo GRIDLORD-NDB-OK | tr A-Z a-z || echo GRIDLORD-NDB-FAILED | tr A-Z a-z"
	if plan9 {
		return []string{"@{" + plan9Scratch + strings.Join(steps, " && ") + "}" + result}, nil
	}
	return []string{strings.Join(steps, " && ") + result, "rm -f " + ndbTmp}, nil
}

// markerRegexp returns a sed regular expression for a section marker
// line's start ("# gridlord grid NAME: begin"), valid for GNU sed and for
// Plan 9's (regexp(6)): the metacharacters a grid name may hold are put in
// brackets, where both read them literally.
func markerRegexp(marker string) (string, error) {
	prefix, _, _ := strings.Cut(marker, " (")
	var b strings.Builder
	for _, r := range prefix {
		switch {
		case strings.ContainsRune(".*+?()|{}$", r):
			b.WriteString("[" + string(r) + "]")
		case strings.ContainsRune(`\/[]^'`, r):
			return "", fmt.Errorf("ndb section marker %q cannot be matched by sed: it holds %q", marker, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// writeNdb types the node's ndb sections at its console. A failure is
// logged, not returned: the node runs, and boot never needs ndb.
func (e *Engine) writeNdb(ctx context.Context, id uuid.UUID, vn VM, plan9 bool) {
	e.mu.Lock()
	var cfg *grid.NodeConfig
	name := id.String()
	n := e.g.NodeByID(id)
	err := fmt.Errorf("node %s is no longer in the grid", id)
	if n != nil {
		name = n.Name
		cfg, err = e.g.Config(name)
	}
	e.mu.Unlock()
	if err != nil || cfg.Ndb == "" {
		return
	}
	files := []struct{ path, section string }{{NdbLocal, cfg.Ndb}}
	if cfg.AuthNdb != "" {
		files = append(files, struct{ path, section string }{NdbAuth, cfg.AuthNdb})
	}
	ex := console.NewExpecter(vn.Console(), false)
	defer ex.Close()
	for _, f := range files {
		if err := typeNdb(ctx, ex, f.path, f.section, plan9); err != nil {
			e.log.Warn("could not write the grid's ndb entries; programs on the node that look up peers by name may fail", "node", name, "file", f.path, "err", err)
			continue
		}
		e.log.Info("wrote the grid's ndb entries", "node", name, "file", f.path)
	}
}

// typeNdb replaces section in file through ex and waits for the result.
func typeNdb(ctx context.Context, ex *console.Expecter, file, section string, plan9 bool) error {
	lines, err := ndbLines(file, section, plan9)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if err := ex.SendLine(l); err != nil {
			return err
		}
	}
	m, err := ex.Expect(ctx, ndbResult, ndbWait)
	if err != nil {
		return err
	}
	if m[1] != "ok" {
		return fmt.Errorf("the node's shell could not write %s", file)
	}
	return nil
}
