package gridfs

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Node states, the first word of a status line.
const (
	StateStopped  = "stopped"
	StateStarting = "starting"
	StateRunning  = "running"
	StateStopping = "stopping"
	StateFailed   = "failed"
)

// Forward is one host-to-guest port forward of a running node.
type Forward struct {
	GuestPort int
	Host      string // "127.0.0.1:PORT"
}

// NodeStatus is a node's state as /nodes/NAME/status has it, one line:
//
//	STATE kind=K ip=IP pid=PID pending=BOOL [uptime=SECONDS cpu=PERCENT rss=BYTES] [password=default] [fwd=PORT:HOST,...] [err="..."]
//	running kind=venti embedded=true ip=IP addr=HOST:PORT      (the embedded venti)
//
// The engine formats it, the CLI and the window parse it; Format and
// ParseNodeStatus are each other's inverse.
type NodeStatus struct {
	State string // StateStopped, StateStarting, ...
	Kind  string
	IP    string
	// PID is the VM's process id, 0 when none runs.
	PID int
	// Pending: the node runs an older configuration than the grid's; its
	// next start applies it.
	Pending bool
	// DefaultPassword: its host owner still has its seed's well-known
	// password.
	DefaultPassword bool
	Forwards        []Forward
	// Err says why the node failed or ended.
	Err string
	// Embedded is the engine's own venti (no VM); Addr is where it listens.
	Embedded bool
	Addr     string
	// Measured: Uptime, CPU and RSS are the live figures of the VM's
	// process (QEMU): how long it has run, its CPU use in percent of one
	// core since the engine last measured it, and its resident memory in
	// bytes. Unknown (false) when no VM runs or the OS is not measured.
	Measured bool
	Uptime   time.Duration
	CPU      float64
	RSS      int64
}

// Up reports whether the node's VM is up: starting, running or stopping.
func (s NodeStatus) Up() bool {
	return s.State == StateStarting || s.State == StateRunning || s.State == StateStopping
}

// Forward returns the host address forwarded to guest port p, "" if none.
func (s NodeStatus) Forward(p int) string {
	for _, f := range s.Forwards {
		if f.GuestPort == p {
			return f.Host
		}
	}
	return ""
}

// Format returns the status line (without a newline).
func (s NodeStatus) Format() string {
	var b strings.Builder
	if s.Embedded {
		fmt.Fprintf(&b, "%s kind=%s embedded=true ip=%s addr=%s", s.State, s.Kind, s.IP, s.Addr)
		return b.String()
	}
	fmt.Fprintf(&b, "%s kind=%s ip=%s pid=%d pending=%t", s.State, s.Kind, s.IP, s.PID, s.Pending)
	if s.Measured {
		fmt.Fprintf(&b, " uptime=%d cpu=%s rss=%d", int64(s.Uptime/time.Second), strconv.FormatFloat(s.CPU, 'f', 1, 64), s.RSS)
	}
	if s.DefaultPassword {
		b.WriteString(" password=default")
	}
	if len(s.Forwards) > 0 {
		fw := make([]string, len(s.Forwards))
		for i, f := range s.Forwards {
			fw[i] = fmt.Sprintf("%d:%s", f.GuestPort, f.Host)
		}
		fmt.Fprintf(&b, " fwd=%s", strings.Join(fw, ","))
	}
	if s.Err != "" {
		fmt.Fprintf(&b, " err=%s", strconv.Quote(s.Err))
	}
	return b.String()
}

// ParseNodeStatus reads a status line (Format's). Unknown keys are
// ignored, so an older client reads a newer engine's line.
func ParseNodeStatus(line string) (NodeStatus, error) {
	line = strings.TrimSpace(line)
	state, rest, _ := strings.Cut(line, " ")
	s := NodeStatus{State: state}
	switch state {
	case StateStopped, StateStarting, StateRunning, StateStopping, StateFailed:
	default:
		return s, fmt.Errorf("node status %q: unknown state %q", line, state)
	}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
		key, val, ok := strings.Cut(rest, "=")
		if !ok || strings.Contains(key, " ") {
			return s, fmt.Errorf("node status %q: %q is not key=value", line, rest)
		}
		rest = val
		if strings.HasPrefix(val, `"`) {
			q, err := strconv.QuotedPrefix(val)
			if err != nil {
				return s, fmt.Errorf("node status %q: %s: %w", line, key, err)
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(val, " ")
		}
		var err error
		switch key {
		case "kind":
			s.Kind = val
		case "ip":
			s.IP = val
		case "addr":
			s.Addr = val
		case "embedded":
			s.Embedded, err = strconv.ParseBool(val)
		case "pid":
			s.PID, err = strconv.Atoi(val)
		case "pending":
			s.Pending, err = strconv.ParseBool(val)
		case "password":
			s.DefaultPassword = val == "default"
		case "uptime":
			var secs int64
			secs, err = strconv.ParseInt(val, 10, 64)
			s.Uptime, s.Measured = time.Duration(secs)*time.Second, true
		case "cpu":
			s.CPU, err = strconv.ParseFloat(val, 64)
			s.Measured = true
		case "rss":
			s.RSS, err = strconv.ParseInt(val, 10, 64)
			s.Measured = true
		case "err":
			s.Err = val
		case "fwd":
			for _, f := range strings.Split(val, ",") {
				p, host, ok := strings.Cut(f, ":")
				n, perr := strconv.Atoi(p)
				if !ok || perr != nil {
					return s, fmt.Errorf("node status %q: forward %q is not PORT:HOST", line, f)
				}
				s.Forwards = append(s.Forwards, Forward{GuestPort: n, Host: host})
			}
		}
		if err != nil {
			return s, fmt.Errorf("node status %q: %s: %w", line, key, err)
		}
	}
	return s, nil
}
