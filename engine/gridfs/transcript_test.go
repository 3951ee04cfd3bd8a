//go:build !windows

package gridfs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/engine/gridfs"
)

// TestTranscripts runs testdata/*.txt against a fresh fake grid each. Lines:
//
//	# comment
//	write PATH COMMAND...   write COMMAND to the ctl file PATH; must succeed,
//	! MESSAGE               ...unless followed by this: must fail with MESSAGE
//	read PATH               read PATH; the following "| " lines are its content
//	| TEXT                  one expected line
//	status NODE TEXT...     set NODE's status in the fake engine
//	event NODE LEVEL WHAT   the fake engine logs an event (NODE - for none)
//
// Mismatches are reported as file:line.
func TestTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata/*.txt transcripts")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			s := startServer(t)
			c := dial(t, s)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			runTranscript(t, file, strings.Split(string(b), "\n"), s, c)
		})
	}
}

func runTranscript(t *testing.T, file string, lines []string, s *server, c *gridfs.Client) {
	ctx := context.Background()
	at := func(i int) string { return fmt.Sprintf("%s:%d", file, i+1) }
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, rest, _ := strings.Cut(line, " ")
		switch cmd {
		case "write":
			path, command, _ := strings.Cut(rest, " ")
			var err error
			if node, ok := strings.CutPrefix(path, "nodes/"); ok {
				err = c.NodeCtl(ctx, strings.TrimSuffix(node, "/ctl"), command)
			} else {
				err = c.Ctl(ctx, command)
			}
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "! ") {
				i++
				want := strings.TrimPrefix(lines[i], "! ")
				var ce *gridfs.CtlError
				if !errors.As(err, &ce) || ce.Msg != want {
					t.Errorf("%s: write %s %q: got error %v, want %q", at(i), path, command, err, want)
				}
			} else if err != nil {
				t.Errorf("%s: write %s %q: %v", at(i), path, command, err)
			}
		case "read":
			var want strings.Builder
			start := i
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "|") {
				i++
				want.WriteString(strings.TrimPrefix(strings.TrimPrefix(lines[i], "|"), " ") + "\n")
			}
			got, err := c.ReadFile(ctx, rest)
			if err != nil {
				t.Errorf("%s: read %s: %v", at(start), rest, err)
			} else if string(got) != want.String() {
				t.Errorf("%s: read %s:\n got:\n%s want:\n%s", at(start), rest, got, want.String())
			}
		case "status":
			node, text, _ := strings.Cut(rest, " ")
			s.e.SetStatus(node, text)
		case "event": // event NODE LEVEL WHAT: the engine logs it (at a fixed time)
			f := strings.SplitN(rest, " ", 3)
			if len(f) < 3 {
				t.Fatalf("%s: want event NODE LEVEL WHAT", at(i))
			}
			node := f[0]
			if node == "-" {
				node = ""
			}
			s.e.AddEvent(gridfs.Event{Time: time.Date(2026, 12, 2, 3, 4, 5, 6e6, time.UTC), Node: node, Level: f[1], What: f[2]})
		default:
			t.Fatalf("%s: unknown transcript command %q", at(i), cmd)
		}
	}
}
