package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/digitalocean/go-qemu/qmp/raw"
)

// Monitor is a QMP client implementing go-qemu's qmp.Monitor, so go-qemu's
// typed raw API runs over it. Unlike go-qemu's SocketMonitor it bounds every
// step with a timeout (a wedged QEMU cannot hang the engine), matches
// replies to commands by id (an event arriving during the capabilities
// handshake cannot shift later replies), and never lets a slow event
// consumer block command replies: events go to a buffered channel and are
// dropped, and counted, when it is full.
//
// Run may be called from many goroutines. The events channel is closed
// when the connection ends; Done is closed at the same time.
type Monitor struct {
	conn    net.Conn
	timeout time.Duration

	// Version and Capabilities come from QEMU's greeting.
	Version      qmp.Version
	Capabilities []string

	wmu     sync.Mutex // serializes writes
	mu      sync.Mutex // guards pending and err
	pending map[string]chan qmpReply
	err     error
	nextID  atomic.Uint64
	events  chan qmp.Event
	dropped atomic.Int64
	done    chan struct{}
}

var _ qmp.Monitor = (*Monitor)(nil)

// QMPError is an error reply from QEMU.
type QMPError struct {
	Command string
	Class   string
	Desc    string
}

// Error quotes QEMU's description and error class.
func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s (%s)", e.Command, e.Desc, e.Class)
}

type qmpReply struct {
	raw []byte
	err error
}

// qmpMessage is any line QEMU sends on a QMP connection.
type qmpMessage struct {
	QMP *struct {
		Version      qmp.Version `json:"version"`
		Capabilities []string    `json:"capabilities"`
	} `json:"QMP"`
	Event  string          `json:"event"`
	ID     json.RawMessage `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// parseQMPLine classifies one line from QEMU. It is the parser fuzzed by
// FuzzParseQMPLine.
func parseQMPLine(line []byte) (qmpMessage, error) {
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("qmp: bad message %.80q: %w", line, err)
	}
	if m.QMP == nil && m.Event == "" && m.Return == nil && m.Error == nil {
		return m, fmt.Errorf("qmp: message %.80q is neither greeting, event nor reply", line)
	}
	return m, nil
}

// maxQMPLine bounds one QMP message (query-qmp-schema is about 150 KiB).
const maxQMPLine = 16 << 20

// DialMonitor connects to a QMP server at ep, reads the greeting and
// negotiates capabilities, all within timeout (also the default timeout of
// later commands). ctx cancels the dial and handshake.
func DialMonitor(ctx context.Context, ep Endpoint, timeout time.Duration) (*Monitor, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, ep.Network, ep.Address)
	if err != nil {
		return nil, fmt.Errorf("connect QMP %s: %w", ep, err)
	}
	m, err := newMonitor(ctx, conn, timeout)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("QMP %s: %w", ep, err)
	}
	return m, nil
}

func newMonitor(ctx context.Context, conn net.Conn, timeout time.Duration) (*Monitor, error) {
	m := &Monitor{
		conn:    conn,
		timeout: timeout,
		pending: make(map[string]chan qmpReply),
		events:  make(chan qmp.Event, 256),
		done:    make(chan struct{}),
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(time.Now().Add(timeout))
	msg, err := readGreeting(br)
	if err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Time{})
	m.Version, m.Capabilities = msg.QMP.Version, msg.QMP.Capabilities
	go m.readLoop(br)
	// Events that arrive before the reply are routed by readLoop, and the
	// reply is matched by id, so the handshake race cannot misalign replies.
	if _, err := m.RunContext(ctx, []byte(`{"execute":"qmp_capabilities"}`)); err != nil {
		m.Disconnect()
		return nil, fmt.Errorf("capabilities handshake: %w", err)
	}
	return m, nil
}

// maxEventsBeforeGreeting bounds the events readGreeting skips. When a
// client reattaches, QEMU can flush events queued for the previous client
// (NETDEV_STREAM_DISCONNECTED, for one) ahead of the new greeting.
const maxEventsBeforeGreeting = 64

// readGreeting reads QEMU's QMP greeting, skipping stale events first.
func readGreeting(br *bufio.Reader) (qmpMessage, error) {
	for i := 0; ; i++ {
		line, err := readLine(br)
		if err != nil {
			return qmpMessage{}, fmt.Errorf("read greeting: %w (QEMU serves one QMP client at a time: is another Gridlord engine attached to this VM?)", err)
		}
		msg, err := parseQMPLine(line)
		if err == nil && msg.QMP != nil {
			return msg, nil
		}
		if err != nil || msg.Event == "" || i >= maxEventsBeforeGreeting {
			return qmpMessage{}, fmt.Errorf("no QMP greeting (got %.80q); is this a QMP socket?", line)
		}
	}
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			if len(line) > maxQMPLine {
				return nil, fmt.Errorf("qmp: message longer than %d bytes", maxQMPLine)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return bytes.TrimSpace(line), nil
	}
}

func (m *Monitor) readLoop(br *bufio.Reader) {
	var err error
	for {
		var line []byte
		line, err = readLine(br)
		if err != nil {
			break
		}
		if len(line) == 0 {
			continue
		}
		msg, perr := parseQMPLine(line)
		if perr != nil {
			continue
		}
		if msg.Event != "" {
			var ev qmp.Event
			if json.Unmarshal(line, &ev) == nil {
				select {
				case m.events <- ev:
				default:
					m.dropped.Add(1)
				}
			}
			continue
		}
		var id string
		if json.Unmarshal(msg.ID, &id) != nil {
			continue // a reply we did not ask for
		}
		m.mu.Lock()
		ch := m.pending[id]
		delete(m.pending, id)
		m.mu.Unlock()
		if ch != nil {
			ch <- qmpReply{raw: line}
		}
	}
	m.mu.Lock()
	m.err = fmt.Errorf("QMP connection closed: %w", err)
	for id, ch := range m.pending {
		ch <- qmpReply{err: m.err}
		delete(m.pending, id)
	}
	m.mu.Unlock()
	close(m.events)
	close(m.done)
}

// Connect is a no-op: DialMonitor already negotiated the connection. It
// exists to satisfy qmp.Monitor.
func (m *Monitor) Connect() error { return nil }

// Disconnect closes the connection. It is idempotent.
func (m *Monitor) Disconnect() error {
	err := m.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Done is closed once the connection has ended (QEMU exited or Disconnect).
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Events returns the single event stream of this connection. It is closed
// when the connection ends. Events are dropped while the channel is full.
func (m *Monitor) Events(context.Context) (<-chan qmp.Event, error) { return m.events, nil }

// DroppedEvents counts events lost because nobody was reading Events.
func (m *Monitor) DroppedEvents() int64 { return m.dropped.Load() }

// Run executes one QMP command (JSON such as {"execute":"stop"}) with the
// monitor's default timeout and returns the raw reply.
func (m *Monitor) Run(cmd []byte) ([]byte, error) { return m.RunContext(context.Background(), cmd) }

// RunContext is Run bounded by ctx as well as the default timeout.
func (m *Monitor) RunContext(ctx context.Context, cmd []byte) ([]byte, error) {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(cmd, &c); err != nil {
		return nil, fmt.Errorf("qmp: command %.80q is not a JSON object: %w", cmd, err)
	}
	var name string
	json.Unmarshal(c["execute"], &name)
	id := "gl-" + strconv.FormatUint(m.nextID.Add(1), 10)
	c["id"], _ = json.Marshal(id)
	line, _ := json.Marshal(c)
	line = append(line, '\n')

	ch := make(chan qmpReply, 1)
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return nil, fmt.Errorf("qmp %s: %w", name, err)
	}
	m.pending[id] = ch
	m.mu.Unlock()
	forget := func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
	}

	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	m.wmu.Lock()
	deadline, _ := ctx.Deadline()
	m.conn.SetWriteDeadline(deadline)
	_, err := m.conn.Write(line)
	m.wmu.Unlock()
	if err != nil {
		forget()
		return nil, fmt.Errorf("qmp %s: send: %w", name, err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("qmp %s: %w", name, r.err)
		}
		msg, err := parseQMPLine(r.raw)
		if err != nil {
			return nil, err
		}
		if msg.Error != nil {
			return nil, &QMPError{Command: name, Class: msg.Error.Class, Desc: msg.Error.Desc}
		}
		return r.raw, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("qmp %s: no reply: %w", name, ctx.Err())
	}
}

// bound returns a qmp.Monitor whose Run is limited by ctx, for go-qemu's
// typed raw API.
func (m *Monitor) bound(ctx context.Context) *raw.Monitor {
	return raw.NewMonitor(ctxMonitor{m, ctx})
}

type ctxMonitor struct {
	*Monitor
	ctx context.Context
}

// Run runs cmd bounded by the bound context.
func (c ctxMonitor) Run(cmd []byte) ([]byte, error) { return c.Monitor.RunContext(c.ctx, cmd) }

// Status returns QEMU's run state ("running", "paused", "shutdown", ...).
// It decodes query-status itself because go-qemu's generated enum rejects
// states newer than its QEMU 2.11 schema.
func (m *Monitor) Status(ctx context.Context) (string, error) {
	out, err := m.RunContext(ctx, []byte(`{"execute":"query-status"}`))
	if err != nil {
		return "", err
	}
	var r struct {
		Return struct {
			Status string `json:"status"`
		} `json:"return"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.Return.Status == "" {
		return "", fmt.Errorf("qmp query-status: unexpected reply %.120q", out)
	}
	return r.Return.Status, nil
}

// Powerdown presses the ACPI power button (system_powerdown).
func (m *Monitor) Powerdown(ctx context.Context) error { return m.bound(ctx).SystemPowerdown() }

// Reset resets the machine (system_reset).
func (m *Monitor) Reset(ctx context.Context) error { return m.bound(ctx).SystemReset() }

// Pause stops the virtual CPUs (stop).
func (m *Monitor) Pause(ctx context.Context) error { return m.bound(ctx).Stop() }

// Resume restarts the virtual CPUs (cont).
func (m *Monitor) Resume(ctx context.Context) error { return m.bound(ctx).Cont() }

// Quit makes QEMU exit at once (quit). The connection closes as QEMU exits,
// so a lost reply is not an error.
func (m *Monitor) Quit(ctx context.Context) error {
	err := m.bound(ctx).Quit()
	if err != nil {
		select {
		case <-m.done:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}
