package drawterm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ExecResult is how a command run by Exec ended on the cpu node.
type ExecResult struct {
	// Status is rc's $status after the command: empty for success,
	// otherwise the failure text ("ls 123: error").
	Status string
}

// OK reports whether the command succeeded.
func (r ExecResult) OK() bool { return r.Status == "" }

// ExitCode maps Status to a process exit code: 0 for success, 1 otherwise.
func (r ExecResult) ExitCode() int {
	if r.OK() {
		return 0
	}
	return 1
}

// ErrNoStatus means drawterm ended before the command's status arrived:
// the login failed, the connection broke, or the command ended rc itself.
var ErrNoStatus = errors.New("drawterm ended without the command's exit status")

// Exec runs one rc command line on the cpu node at t with drawterm-9front in
// text mode (-G -c) and copies its output to out. The command runs in a
// subshell followed by an echo of its $status behind a random marker, which
// Exec takes off the output: the old cpu protocol carries no exit status.
// A password must be in t.Password: drawterm would otherwise prompt on its
// standard input, which Exec does not connect.
func Exec(ctx context.Context, b Binary, t Target, command string, out io.Writer) (ExecResult, error) {
	if b.Flavor != Front9 {
		return ExecResult{}, fmt.Errorf("running commands needs drawterm-9front's text mode (-G); %s is the Bell Labs drawterm: %s", b.Path, InstallHint())
	}
	if t.Password == "" {
		return ExecResult{}, fmt.Errorf("no password for %s@%s: give one in $PASS", t.User, t.AuthDom)
	}
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return ExecResult{}, err
	}
	marker := "gridlord-exit-" + hex.EncodeToString(nonce) + ":"
	t.NoGraphics = true
	args, err := Args(b, t)
	if err != nil {
		return ExecResult{}, err
	}
	// The old cpu protocol takes a command of at most 128 bytes, so the
	// command goes in a script file that the cpu server reads from the
	// host's namespace, which drawterm exports to it (/mnt/term/root is
	// the host's root). rc: @{...} is a subshell, so an exit in the
	// command ends only it.
	script, err := os.CreateTemp("", "gridlord-exec-*.rc")
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec: %w", err)
	}
	defer os.Remove(script.Name())
	body := "@{" + command + "\n}\ngridlordstatus=$status\necho\necho " + marker + " $gridlordstatus\n"
	_, err = script.WriteString(body)
	if cerr := script.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec: write the command's script: %w", err)
	}
	remote, err := remotePath(script.Name())
	if err != nil {
		return ExecResult{}, err
	}
	args = append(args, "-c", "rc "+remote)
	cmd := exec.CommandContext(ctx, b.Path, args...)
	// The cpu server changes to drawterm's working directory and says so
	// on the output when it has none of that name: "/" it always has.
	cmd.Dir = "/"
	mw := &markerWriter{w: out, marker: []byte("\n" + marker)}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = mw, &stderr
	cmd.Env = append(os.Environ(), "PASS="+t.Password)
	runErr := cmd.Run()
	mw.flush()
	if !mw.found {
		msg := strings.TrimSpace(stderr.String() + "\n" + string(mw.tail()))
		if ctx.Err() != nil {
			return ExecResult{}, fmt.Errorf("exec on %s: %w", t.CPU, ctx.Err())
		}
		return ExecResult{}, fmt.Errorf("exec on %s as %s: %w (%v): %s", t.CPU, t.User, ErrNoStatus, runErr, msg)
	}
	st, _, _ := strings.Cut(string(mw.status), "\n")
	return ExecResult{Status: strings.TrimSpace(st)}, nil
}

// remotePath is where a cpu server that drawterm connects to sees the
// host file path: drawterm exports the host's root at /mnt/term/root.
func remotePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	abs = filepath.ToSlash(abs)
	if vol := filepath.VolumeName(abs); vol != "" {
		abs = "/" + strings.ToLower(strings.TrimSuffix(vol, ":")) + strings.TrimPrefix(abs, vol)
	}
	if strings.ContainsAny(abs, " '\t\n") {
		return "", fmt.Errorf("exec: the temporary directory %s has a space or quote in its path: set TMPDIR to another", filepath.Dir(path))
	}
	return "/mnt/term/root" + abs, nil
}

// markerWriter passes output through to w until marker, holding back only
// a tail that could be the start of it; what follows the marker is the
// status line.
type markerWriter struct {
	w      io.Writer
	marker []byte
	buf    []byte
	found  bool
	status []byte
	werr   error
	last   []byte // the last output passed through, for error messages
}

func (m *markerWriter) Write(p []byte) (int, error) {
	if m.found {
		m.status = append(m.status, p...)
		return len(p), nil
	}
	m.buf = append(m.buf, p...)
	if i := bytes.Index(m.buf, m.marker); i >= 0 {
		m.emit(m.buf[:i])
		m.status = append(m.status, m.buf[i+len(m.marker):]...)
		m.found, m.buf = true, nil
		return len(p), nil
	}
	keep := 0
	for k := min(len(m.buf), len(m.marker)-1); k > 0; k-- {
		if bytes.HasPrefix(m.marker, m.buf[len(m.buf)-k:]) {
			keep = k
			break
		}
	}
	m.emit(m.buf[:len(m.buf)-keep])
	m.buf = append(m.buf[:0], m.buf[len(m.buf)-keep:]...)
	return len(p), nil
}

func (m *markerWriter) emit(b []byte) {
	if len(b) == 0 {
		return
	}
	m.last = append(m.last, b...)
	if n := len(m.last) - 512; n > 0 {
		m.last = append(m.last[:0], m.last[n:]...)
	}
	if m.w != nil && m.werr == nil {
		_, m.werr = m.w.Write(b)
	}
}

// flush writes out a held-back tail that never became the marker.
func (m *markerWriter) flush() {
	if !m.found {
		m.emit(m.buf)
		m.buf = nil
	}
}

// tail returns the last output seen, for error messages.
func (m *markerWriter) tail() []byte { return m.last }
