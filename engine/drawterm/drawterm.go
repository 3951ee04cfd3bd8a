// Package drawterm finds a drawterm executable (9front's drawterm-9front or
// the Bell Labs drawterm), builds its arguments for a cpu node reached
// through the grid's loopback port forwards, launches it and reports its
// exit.
//
// The two flavours differ: 9front's takes the cpu host with -h and speaks
// rcpu (port 17019) by default, where -c is a command to run; Bell Labs'
// takes the cpu server with -c and speaks the old cpu protocol (17010).
package drawterm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Flavor is which drawterm a binary is.
type Flavor string

// Flavours.
const (
	Front9 Flavor = "9front" // drawterm-9front: -h host, rcpu 17019
	Labs   Flavor = "labs"   // Bell Labs / 9legacy drawterm: -c cpuserver, cpu 17010
)

// ErrNotFound means no drawterm was found.
var ErrNotFound = errors.New("drawterm not found")

// Binary is a drawterm executable.
type Binary struct {
	Path   string
	Flavor Flavor
}

// Names returns the drawterm binaries searched for on PATH, in order.
func Names() []string { return []string{"drawterm-9front", "drawterm"} }

// InstallHint tells how to install drawterm on this OS.
func InstallHint() string {
	switch runtime.GOOS {
	case "linux":
		return "install it with: sudo apt-get install drawterm-9front (or drawterm), or build it from https://git.9front.org/plan9front/drawterm"
	case "darwin":
		return "build drawterm-9front from https://git.9front.org/plan9front/drawterm (make CONF=osx-cocoa) and set its path in Gridlord's settings"
	case "windows":
		return "download drawterm.exe from https://drawterm.9front.org and set its path in Gridlord's settings"
	}
	return "install drawterm-9front from https://drawterm.9front.org"
}

// Find returns the drawterm at path (when not empty) or the first of Names
// on PATH, with its flavour.
func Find(ctx context.Context, path string) (Binary, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return Binary{}, fmt.Errorf("%w: configured drawterm %s: %v; %s", ErrNotFound, path, err, InstallHint())
		}
		return Binary{Path: p, Flavor: detectFlavor(ctx, p)}, nil
	}
	for _, n := range Names() {
		if p, err := exec.LookPath(n); err == nil {
			return Binary{Path: p, Flavor: detectFlavor(ctx, p)}, nil
		}
	}
	return Binary{}, fmt.Errorf("%w on PATH (looked for %s); %s", ErrNotFound, strings.Join(Names(), ", "), InstallHint())
}

// detectFlavor asks the binary for its usage message (drawterm prints it
// for an unknown flag before touching the display) and recognises
// 9front's "-h host"; the file name decides when the usage says nothing.
func detectFlavor(ctx context.Context, path string) Flavor {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "-?").CombinedOutput()
	if f, ok := FlavorFromUsage(out); ok {
		return f
	}
	if strings.Contains(filepath.Base(path), "9front") {
		return Front9
	}
	return Labs
}

// FlavorFromUsage recognises a drawterm usage message.
func FlavorFromUsage(usage []byte) (Flavor, bool) {
	switch {
	case bytes.Contains(usage, []byte("-h host")), bytes.Contains(usage, []byte("[-GBO]")):
		return Front9, true
	case bytes.Contains(usage, []byte("-c cpuserver")):
		return Labs, true
	}
	return "", false
}

// Proto is the cpu protocol a node speaks.
type Proto string

// Cpu protocols.
const (
	// NCPU is the old cpu protocol on 17010 (Bell Labs 4e, 9legacy):
	// drawterm-9front needs -O for it.
	NCPU Proto = "ncpu"
	// RCPU is 9front's rcpu on 17019 (dp9ik and TLS).
	RCPU Proto = "rcpu"
)

// Port returns the guest port the protocol listens on.
func (p Proto) Port() int {
	if p == RCPU {
		return 17019
	}
	return 17010
}

// Target is where drawterm connects: host:port pairs as seen from the host
// (the loopback forwards of the cpu and auth nodes). The engine computes it
// for a cpu node (gridfs /nodes/NAME/drawterm); Marshal and ParseTarget are
// its text form there.
type Target struct {
	CPU  string // "127.0.0.1:PORT" forwarded to the cpu node's Proto.Port()
	Auth string // "127.0.0.1:PORT" forwarded to the auth server's 567
	// Secstore is "127.0.0.1:PORT" forwarded to the auth server's secstore
	// (5356). drawterm with no factotum asks a secstore for keys, at the
	// auth address when none is given, where it would wait forever for a
	// ticket server to speak: a secstore address that answers (or refuses)
	// is what lets it go on to ask for the password.
	Secstore string
	// Proto is the cpu protocol (default NCPU).
	Proto Proto
	User  string // Plan 9 user; empty means drawterm's default ($USER)
	// AuthDom is the auth domain, for prompts.
	AuthDom string
	// Password is passed to drawterm-9front in $PASS (not on the command
	// line); Bell Labs drawterm always asks on its terminal.
	Password string
	// NoGraphics runs drawterm-9front in text mode (-G).
	NoGraphics bool
}

// Marshal returns the target as "key value" lines (the gridfs drawterm
// file). The password is included when known: the file is served only to
// the grid's owner.
func (t Target) Marshal() []byte {
	var b strings.Builder
	for _, kv := range [][2]string{{"cpu", t.CPU}, {"proto", string(t.Proto)}, {"auth", t.Auth}, {"secstore", t.Secstore}, {"user", t.User}, {"authdom", t.AuthDom}, {"password", t.Password}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s %s\n", kv[0], kv[1])
		}
	}
	return []byte(b.String())
}

// ParseTarget reads what Marshal wrote.
func ParseTarget(b []byte) (Target, error) {
	var t Target
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			return t, fmt.Errorf("drawterm target line %d %q: want \"key value\"", i+1, line)
		}
		switch k {
		case "cpu":
			t.CPU = v
		case "proto":
			t.Proto = Proto(v)
		case "auth":
			t.Auth = v
		case "secstore":
			t.Secstore = v
		case "user":
			t.User = v
		case "authdom":
			t.AuthDom = v
		case "password":
			t.Password = v
		default:
			return t, fmt.Errorf("drawterm target line %d: unknown key %q", i+1, k)
		}
	}
	if t.CPU == "" {
		return t, errors.New("drawterm target has no cpu address (is the node running?)")
	}
	if t.Proto != "" && t.Proto != NCPU && t.Proto != RCPU {
		return t, fmt.Errorf("drawterm target: unknown protocol %q (ncpu or rcpu)", t.Proto)
	}
	return t, nil
}

// dialString turns "host:port" into a Plan 9 dial string "tcp!host!port".
func dialString(hostport string) (string, error) {
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return "", err
	}
	return "tcp!" + host + "!" + port, nil
}

func splitHostPort(hp string) (string, string, error) {
	i := strings.LastIndexByte(hp, ':')
	if i <= 0 || i == len(hp)-1 {
		return "", "", fmt.Errorf("address %q: want host:port", hp)
	}
	host, port := strings.Trim(hp[:i], "[]"), hp[i+1:]
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return "", "", fmt.Errorf("address %q: bad port", hp)
	}
	return host, port, nil
}

// Args builds the command line (without the program name) for b at t.
func Args(b Binary, t Target) ([]string, error) {
	cpu, err := dialString(t.CPU)
	if err != nil {
		return nil, fmt.Errorf("drawterm cpu: %w", err)
	}
	var args []string
	switch b.Flavor {
	case Front9:
		args = append(args, "-h", cpu)
		if t.Proto != RCPU {
			args = append(args, "-O")
		}
		if t.NoGraphics {
			args = append(args, "-G")
		}
	default:
		if t.Proto == RCPU {
			return nil, errors.New("the node speaks 9front's rcpu, which the Bell Labs drawterm cannot: install drawterm-9front")
		}
		args = append(args, "-c", cpu)
	}
	for _, a := range []struct{ flag, addr, what string }{{"-a", t.Auth, "auth"}, {"-s", t.Secstore, "secstore"}} {
		if a.addr == "" {
			continue
		}
		ds, err := dialString(a.addr)
		if err != nil {
			return nil, fmt.Errorf("drawterm %s: %w", a.what, err)
		}
		args = append(args, a.flag, ds)
	}
	if t.User != "" {
		args = append(args, "-u", t.User)
	}
	return args, nil
}

// Session is a running drawterm.
type Session struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Launch starts drawterm at t. Its output goes to out (nil discards it).
// Wait or Done reports its end; cancelling ctx kills it.
func Launch(ctx context.Context, b Binary, t Target, out io.Writer) (*Session, error) {
	return LaunchTTY(ctx, b, t, nil, out)
}

// LaunchTTY is Launch with in as drawterm's standard input: in text mode
// (-G) what it reads is typed at the remote rc.
func LaunchTTY(ctx context.Context, b Binary, t Target, in io.Reader, out io.Writer) (*Session, error) {
	args, err := Args(b, t)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, b.Path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, out
	cmd.Env = os.Environ()
	if t.Password != "" && b.Flavor == Front9 {
		cmd.Env = append(cmd.Env, "PASS="+t.Password)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start drawterm %s: %w", b.Path, err)
	}
	s := &Session{cmd: cmd, done: make(chan struct{})}
	go func() {
		if err := cmd.Wait(); err != nil {
			s.err = fmt.Errorf("drawterm exited: %w", err)
		}
		close(s.done)
	}()
	return s, nil
}

// Done is closed when drawterm has exited.
func (s *Session) Done() <-chan struct{} { return s.done }

// Wait waits for drawterm to exit and returns nil for exit status 0.
func (s *Session) Wait() error {
	<-s.done
	return s.err
}

// ExitCode is drawterm's exit status, or -1 while it runs or if killed.
func (s *Session) ExitCode() int {
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}
