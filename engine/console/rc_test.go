package console

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gridlord/testing/testenv"
)

// shellConsole plays a Plan 9 serial console in front of the host's rc:
// what is typed is echoed (a carriage return as CR LF, as Plan 9's
// console does) and handed to rc as a line; rc's output and prompts
// (stdout and stderr) come back on the same stream.
type shellConsole struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	r    *io.PipeReader
	w    *io.PipeWriter
	wmu  sync.Mutex
	line []byte
}

// Write is rc's output (its stdout and stderr) and the console's echo.
func (c *shellConsole) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *shellConsole) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *shellConsole) Close() error { return c.r.Close() }

// typeIn is what the hub writes: echo it, pass whole lines to rc.
func (c *shellConsole) typeIn(p []byte) {
	for _, b := range p {
		if b == '\r' {
			c.Write([]byte("\n"))
			c.in.Write(append(c.line, '\n'))
			c.line = c.line[:0]
			continue
		}
		c.Write([]byte{b})
		c.line = append(c.line, b)
	}
}

// console is the ReadWriteCloser the hub attaches: reads are rc's output,
// writes are typed.
type consoleConn struct{ c *shellConsole }

func (k consoleConn) Read(p []byte) (int, error)  { return k.c.Read(p) }
func (k consoleConn) Write(p []byte) (int, error) { k.c.typeIn(p); return len(p), nil }
func (k consoleConn) Close() error                { return k.c.Close() }

var testPrompt = regexp.MustCompile(`installer# $`)

// rcHub returns a hub whose console is the host's rc.
func rcHub(t *testing.T) *Hub {
	t.Helper()
	rc := testenv.Tool(t, "rc")
	c := &shellConsole{}
	c.r, c.w = io.Pipe()
	c.cmd = exec.Command(rc, "-i")
	in, err := c.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.in = in
	c.cmd.Stdout, c.cmd.Stderr = c, c
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(in, "prompt=('installer# ' '')\n"); err != nil {
		t.Fatal(err)
	}
	h, err := New("rc", Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.Attach(consoleConn{c})
	t.Cleanup(func() {
		h.Close()
		c.in.Close()
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	return h
}

// TestRCWithHostShell runs lines through the host's rc behind an echoing
// console: output and status come back exactly, whatever the line prints
// (the typed form of the markers, prompts, quotes), a failing command
// and a failed redirection give their status, questions are answered,
// output is bounded, and a line that outlives its timeout is reported
// without breaking the next one.
func TestRCWithHostShell(t *testing.T) {
	h := rcHub(t)
	r := NewRC(h, testPrompt)
	defer r.Close()
	ctx := context.Background()
	run := func(line string) Result {
		t.Helper()
		res, err := r.Run(ctx, line, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := run("echo hello; echo 'two words'"); res.Output != "hello\ntwo words\n" || !res.OK() {
		t.Errorf("echo: %+v", res)
	}
	if res := run("echo 'glrc''-''x installer# '"); res.Output != "glrc'-'x installer# \n" || !res.OK() {
		t.Errorf("marker-like output: %+v", res)
	}
	if res := run("ls /nonexistent-gridlord"); res.OK() || !strings.Contains(res.Output, "nonexistent-gridlord") {
		t.Errorf("failing ls: %+v", res)
	}
	if res := run("echo x >/nonexistent-gridlord/f"); res.OK() {
		t.Errorf("failed redirection: %+v", res)
	}
	if res := run("{echo a; echo b} | wc -l"); strings.TrimSpace(res.Output) != "2" || !res.OK() {
		t.Errorf("pipeline: %+v", res)
	}
	if res := run("true"); res.Output != "" || !res.OK() {
		t.Errorf("silent: %+v", res)
	}

	// A dialog: two questions without a newline after them.
	res, err := r.Dialog(ctx, `sh -c 'printf "Password: "; read a; printf "Post id: "; read b; echo got $a $b'`,
		[]Answer{{regexp.MustCompile(`Password: $`), "secret"}, {regexp.MustCompile(`Post id: $`), ""}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || !strings.HasSuffix(res.Output, "got secret\n") || !strings.HasPrefix(res.Output, "Password: \n") {
		t.Errorf("dialog: %+v", res)
	}

	r.MaxOutput = 100
	res = run("for(i in `{seq 1 200}) echo line $i")
	if !res.Truncated || len(res.Output) != 100 || !strings.HasSuffix(res.Output, "line 200\n") {
		t.Errorf("bounded output: truncated %v, %d bytes, %q", res.Truncated, len(res.Output), res.Output)
	}
	r.MaxOutput = 64 << 10

	if _, err := r.Run(ctx, "sleep 2", 200*time.Millisecond); err == nil {
		t.Error("a line that outlives its timeout succeeded")
	}
	if res := run("echo after"); res.Output != "after\n" {
		t.Errorf("after a timeout: %+v", res)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Run(cctx, "echo never", 0); err == nil {
		t.Error("a cancelled context ran a line")
	}
}

func TestRCRefusesUntypableLines(t *testing.T) {
	for _, l := range []string{"echo a\necho b", "echo 'a", "{echo a", "echo a}", "echo \x7f"} {
		if err := checkLine(l); err == nil {
			t.Errorf("%q accepted", l)
		}
	}
	for _, l := range []string{"echo '{'", "@{rfork n; ramfs -m /tmp && echo x}", "echo 'it''s'"} {
		if err := checkLine(l); err != nil {
			t.Errorf("%q: %v", l, err)
		}
	}
}

// scripted is a console that answers each typed line with a canned
// response built from the markers it finds in the line.
type scripted struct {
	mu      sync.Mutex
	r       *io.PipeReader
	w       *io.PipeWriter
	line    []byte
	respond func(line string) string
}

func (s *scripted) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *scripted) Close() error               { s.w.Close(); return s.r.Close() }
func (s *scripted) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range p {
		if b != '\r' {
			s.line = append(s.line, b)
			continue
		}
		out := string(s.line) + "\r\n" + s.respond(string(s.line))
		s.line = s.line[:0]
		go s.w.Write([]byte(out))
	}
	return len(p), nil
}

var typedMark = regexp.MustCompile(`echo (glrc'-'[0-9a-f]+'-'[0-9]+)'-'b;`)

// FuzzRCOutput: whatever bytes a command prints (the console's output is
// outside input), Run returns them (without carriage returns) and the
// status, or stops at the first copy of its own end marker.
func FuzzRCOutput(f *testing.F) {
	f.Add([]byte("hello\r\n"), "")
	f.Add([]byte("installer# \r\nglrc-00-1 x\r\n"), "ls: no")
	f.Add([]byte{0, 1, 2, 0xff, '\n'}, "1")
	f.Fuzz(func(t *testing.T, data []byte, status string) {
		status = strings.TrimSpace(strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, status))
		s := &scripted{}
		s.r, s.w = io.Pipe()
		s.respond = func(line string) string {
			if line == "" {
				return "installer# "
			}
			m := typedMark.FindStringSubmatch(line)
			if m == nil {
				return "rc: syntax error\r\ninstaller# "
			}
			mark := strings.ReplaceAll(m[1], "'", "")
			out := mark + "-b\r\n" + string(data) + mark + " " + status + "\r\ninstaller# "
			return out
		}
		h, err := New("fuzz", Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		h.Attach(s)
		r := NewRC(h, testPrompt)
		defer r.Close()
		r.MaxOutput = 1 << 20
		res, err := r.Run(context.Background(), "cat data", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		mark := "glrc-" + r.nonce + "-1"
		want := string(data)
		wantStatus := status
		if i := strings.Index(want, mark); i >= 0 {
			want = want[:i]
			rest := string(data)[i+len(mark):]
			rest = strings.TrimPrefix(rest, " ")
			if j := strings.IndexByte(rest, '\n'); j >= 0 {
				wantStatus = strings.TrimSpace(strings.TrimSuffix(rest[:j], "\r"))
			} else {
				return // the marker's own line runs on into ours
			}
		}
		want = strings.ReplaceAll(want, "\r", "")
		if res.Output != want || res.Status != wantStatus {
			t.Fatalf("output %q status %q, want %q %q", res.Output, res.Status, want, wantStatus)
		}
	})
}
