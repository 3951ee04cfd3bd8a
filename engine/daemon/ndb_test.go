package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/grid"
	"gridlord/testing/testenv"
)

// The lines typed at a node's console replace the grid's ndb section in
// place, keep every other line, and say whether they worked — run here by
// sh (a stand-in guest's shell), by rc (Plan 9's syntax), and by sh with
// sed -E, whose extended expressions read ( ) | + ? as operators the way
// Plan 9's sed (regexp(6)) does.
func TestNdbLinesInShells(t *testing.T) {
	g, err := grid.Default(grid.WithName("lab.grid-1"))
	if err != nil {
		t.Fatal(err)
	}
	section := g.Ndb()
	stock := "# stock\nauth=sources.cs.bell-labs.com authdom=outside.plan9.bell-labs.com\n"
	for _, variant := range []struct {
		name, shell, sed string
		plan9            bool
	}{
		{"sh", "sh", "sed", false}, {"rc", "rc", "sed", true}, {"regexp6", "sh", "sed -E", false},
	} {
		t.Run(variant.name, func(t *testing.T) {
			sh := testenv.Tool(t, variant.shell)
			dir := t.TempDir()
			file := filepath.Join(dir, "local")
			// An old section (another cpu) between the stock lines and a
			// line the user added after it.
			old := strings.Replace(section, "sys=cpu1", "sys=oldcpu", 1)
			if err := os.WriteFile(file, []byte(stock+old+"sys=mine ip=1.2.3.4\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(section string) string {
				lines, err := ndbLines(file, section, variant.plan9)
				if err != nil {
					t.Fatal(err)
				}
				if variant.plan9 {
					// The host's rc has no rfork or ramfs: the scratch
					// file goes to the test's directory instead (the
					// real console runs them: the seed's grid test).
					if !strings.HasPrefix(lines[0], "@{"+plan9Scratch) {
						t.Fatalf("Plan 9 line %q does not start with its scratch namespace", lines[0])
					}
					lines[0] = strings.Replace(lines[0], plan9Scratch, "", 1)
				}
				script := strings.ReplaceAll(strings.Join(lines, "\n"), ndbTmp, filepath.Join(dir, "tmp")) + "\n"
				script = strings.Replace(script, " sed '", " "+variant.sed+" '", 1)
				cmd := exec.Command(sh)
				cmd.Stdin = strings.NewReader(script)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", variant.shell, err, out)
				}
				return string(out)
			}
			for i := 0; i < 2; i++ { // a second run changes nothing
				if out := run(section); ndbResult.FindString(out) != "gridlord-ndb-ok" {
					t.Fatalf("run %d printed %q, want gridlord-ndb-ok", i, out)
				}
				got, _ := os.ReadFile(file)
				if want := stock + "sys=mine ip=1.2.3.4\n" + section; string(got) != want {
					t.Fatalf("run %d: file is\n%s\nwant\n%s", i, got, want)
				}
			}
			// A file the shell cannot write (its directory is missing),
			// and one sed cannot read (a directory): it says so, and
			// nothing is overwritten.
			file = filepath.Join(dir, "missing", "local")
			if out := run(section); !strings.Contains(out, "gridlord-ndb-failed") {
				t.Errorf("unwritable file: printed %q, want gridlord-ndb-failed", out)
			}
			file = filepath.Join(dir, "adir")
			os.Mkdir(file, 0o755)
			if out := run(section); !strings.Contains(out, "gridlord-ndb-failed") {
				t.Errorf("unreadable file: printed %q, want gridlord-ndb-failed", out)
			}
		})
	}
	// An auth server's speaks-for lines are continuation lines: typed with
	// spaces, not a tab a line-editing shell would complete on.
	auth, err := ndbLines(NdbAuth, "# gridlord grid g: begin\nhostid=glenda\n\tuid=!sys uid=*\n# gridlord grid g: end\n", true)
	if err != nil || !strings.Contains(auth[0], "echo '    uid=!sys uid=*'") || strings.Contains(auth[0], "\t") {
		t.Errorf("speaks-for lines typed as %q (%v)", auth, err)
	}
	// The console echoes what is typed, wrapped wherever the terminal
	// likes: no echo may look like a result.
	lines, err := ndbLines(NdbLocal, section, false)
	if err != nil {
		t.Fatal(err)
	}
	plan9Lines, err := ndbLines(NdbLocal, section, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range append(lines, plan9Lines...) {
		for k := 0; k <= len(l); k++ {
			if echo := "standin# " + l[:k] + "\r\r\n" + l[k:] + "\r\n"; ndbResult.MatchString(echo) {
				t.Fatalf("the echo of %q wrapped at %d reads as a result", l, k)
			}
		}
	}
	if _, err := ndbLines(NdbLocal, "only one line", false); err == nil {
		t.Error("a section without markers was accepted")
	}
	if _, err := ndbLines(NdbLocal, "# begin\nsys=it's\n# end", true); err == nil {
		t.Error("a line with a quote was accepted")
	}
}
