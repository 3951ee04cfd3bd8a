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
// sh (a stand-in guest's shell) and by rc (Plan 9's syntax).
func TestNdbLinesInShells(t *testing.T) {
	g, err := grid.Default()
	if err != nil {
		t.Fatal(err)
	}
	section := g.Ndb()
	stock := "# stock\nauth=sources.cs.bell-labs.com authdom=outside.plan9.bell-labs.com\n"
	for _, shell := range []string{"sh", "rc"} {
		t.Run(shell, func(t *testing.T) {
			sh := testenv.Tool(t, shell)
			dir := t.TempDir()
			file := filepath.Join(dir, "local")
			// An old section (another cpu) between the stock lines and a
			// line the user added after it.
			old := strings.Replace(section, "sys=cpu1", "sys=oldcpu", 1)
			if err := os.WriteFile(file, []byte(stock+old+"sys=mine ip=1.2.3.4\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(section string) string {
				lines, err := ndbLines(file, section)
				if err != nil {
					t.Fatal(err)
				}
				script := strings.ReplaceAll(strings.Join(lines, "\n"), ndbTmp, filepath.Join(dir, "tmp")) + "\n"
				cmd := exec.Command(sh)
				cmd.Stdin = strings.NewReader(script)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", shell, err, out)
				}
				return string(out)
			}
			for i := 0; i < 2; i++ { // a second run changes nothing
				if out := run(section); !ndbResult.MatchString(out) || !strings.Contains(out, "gridlord-ndb-ok") {
					t.Fatalf("run %d printed %q, want gridlord-ndb-ok", i, out)
				}
				got, _ := os.ReadFile(file)
				if want := stock + "sys=mine ip=1.2.3.4\n" + section; string(got) != want {
					t.Fatalf("run %d: file is\n%s\nwant\n%s", i, got, want)
				}
			}
			// A file the shell cannot write (its directory is missing):
			// it says so.
			file = filepath.Join(dir, "missing", "local")
			if out := run(section); !strings.Contains(out, "gridlord-ndb-failed") {
				t.Errorf("unwritable file: printed %q, want gridlord-ndb-failed", out)
			}
		})
	}
	// The console echoes what is typed, wrapped wherever the terminal
	// likes: no echo may look like a result.
	lines, err := ndbLines(NdbLocal, section)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		for k := 0; k <= len(l); k++ {
			if echo := "standin# " + l[:k] + "\r\r\n" + l[k:] + "\r\n"; ndbResult.MatchString(echo) {
				t.Fatalf("the echo of %q wrapped at %d reads as a result", l, k)
			}
		}
	}
	if _, err := ndbLines(NdbLocal, "only one line"); err == nil {
		t.Error("a section without markers was accepted")
	}
	if _, err := ndbLines(NdbLocal, "# begin\nsys=it's\n# end"); err == nil {
		t.Error("a line with a quote was accepted")
	}
}
