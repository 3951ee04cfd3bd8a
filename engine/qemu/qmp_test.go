package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// fakeQEMU serves QMP on one end of a pipe, answering with reply(cmd, id).
// An event is sent right before the capabilities reply, to provoke the
// handshake race go-qemu's SocketMonitor gets wrong.
func fakeQEMU(t *testing.T, reply func(w *bufio.Writer, cmd, id string)) net.Conn {
	return fakeQEMUAfter(t, "", reply)
}

// fakeQEMUAfter is fakeQEMU sending stale before its greeting, as QEMU does
// with events queued for a client that has gone.
func fakeQEMUAfter(t *testing.T, stale string, reply func(w *bufio.Writer, cmd, id string)) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		w := bufio.NewWriter(server)
		w.WriteString(stale)
		w.WriteString(`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}` + "\n")
		w.Flush()
		sc := bufio.NewScanner(server)
		for sc.Scan() {
			var c struct {
				Execute string          `json:"execute"`
				ID      json.RawMessage `json:"id"`
			}
			if json.Unmarshal(sc.Bytes(), &c) != nil {
				return
			}
			id := string(c.ID)
			if c.Execute == "qmp_capabilities" {
				w.WriteString(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "NIC_RX_FILTER_CHANGED", "data": {}}` + "\n")
				w.WriteString(`{"return": {}, "id": ` + id + "}\n")
				w.Flush()
				continue
			}
			reply(w, c.Execute, id)
			w.Flush()
		}
	}()
	return client
}

func TestMonitorHandshakeRaceAndEvents(t *testing.T) {
	conn := fakeQEMU(t, func(w *bufio.Writer, cmd, id string) {
		switch cmd {
		case "query-status":
			w.WriteString(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}` + "\n")
			w.WriteString(`{"return": {"status": "running", "singlestep": false, "running": true}, "id": ` + id + "}\n")
		case "system_powerdown":
			w.WriteString(`{"return": {}, "id": ` + id + "}\n")
			w.WriteString(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "POWERDOWN"}` + "\n")
		default:
			w.WriteString(`{"error": {"class": "CommandNotFound", "desc": "The command ` + cmd + ` has not been found"}, "id": ` + id + "}\n")
		}
	})
	m, err := newMonitor(context.Background(), conn, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Disconnect()
	if m.Version.String() != "7.2.22" {
		t.Errorf("version %s", m.Version)
	}
	st, err := m.Status(context.Background())
	if err != nil || st != "running" {
		t.Fatalf("Status = %q, %v", st, err)
	}
	if err := m.Powerdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = m.Run([]byte(`{"execute":"bogus"}`))
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Fatalf("bogus command: %v", err)
	}
	evs, _ := m.Events(context.Background())
	var names []string
	for len(names) < 3 {
		select {
		case ev := <-evs:
			names = append(names, ev.Event)
		case <-time.After(2 * time.Second):
			t.Fatalf("events so far %v", names)
		}
	}
	if strings.Join(names, " ") != "NIC_RX_FILTER_CHANGED RESUME POWERDOWN" {
		t.Errorf("events %v", names)
	}
}

func TestMonitorTimeoutAndClose(t *testing.T) {
	conn := fakeQEMU(t, func(w *bufio.Writer, cmd, id string) {
		if cmd == "query-status" {
			return // a wedged QEMU: never answers
		}
		w.WriteString(`{"return": {}, "id": ` + id + "}\n")
	})
	m, err := newMonitor(context.Background(), conn, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := m.Status(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wedged status: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("timeout took %v", time.Since(start))
	}
	// Later commands still line up (the late reply cannot be taken for theirs).
	if err := m.Pause(context.Background()); err != nil {
		t.Fatalf("stop after a timeout: %v", err)
	}
	m.Disconnect()
	select {
	case <-m.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed after Disconnect")
	}
	if _, err := m.Run([]byte(`{"execute":"cont"}`)); err == nil {
		t.Fatal("Run after close succeeded")
	}
}

func TestMonitorEventsNeverBlockReplies(t *testing.T) {
	conn := fakeQEMU(t, func(w *bufio.Writer, cmd, id string) {
		for i := 0; i < 1000; i++ { // far more than the event buffer
			w.WriteString(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X"}` + "\n")
		}
		w.WriteString(`{"return": {}, "id": ` + id + "}\n")
	})
	m, err := newMonitor(context.Background(), conn, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Disconnect()
	for i := 0; i < 3; i++ {
		if err := m.Resume(context.Background()); err != nil {
			t.Fatalf("command %d with nobody reading events: %v", i, err)
		}
	}
	if m.DroppedEvents() == 0 {
		t.Error("no events counted as dropped")
	}
}

func TestMonitorSkipsStaleEventsBeforeGreeting(t *testing.T) {
	stale := `{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "NETDEV_STREAM_DISCONNECTED", "data": {"netdev-id": "net0"}}` + "\n"
	conn := fakeQEMUAfter(t, stale+stale, func(w *bufio.Writer, cmd, id string) {
		w.WriteString(`{"return": {}, "id": ` + id + "}\n")
	})
	m, err := newMonitor(context.Background(), conn, 5*time.Second)
	if err != nil {
		t.Fatalf("greeting after stale events: %v", err)
	}
	defer m.Disconnect()
	if m.Version.QEMU.Major != 7 {
		t.Errorf("version = %+v", m.Version)
	}

	many := strings.Repeat(stale, maxEventsBeforeGreeting+2)
	conn = fakeQEMUAfter(t, many, func(w *bufio.Writer, cmd, id string) {})
	defer conn.Close()
	if _, err := newMonitor(context.Background(), conn, 5*time.Second); err == nil || !strings.Contains(err.Error(), "no QMP greeting") {
		t.Fatalf("endless events before greeting: %v", err)
	}
}

func TestMonitorNotQMP(t *testing.T) {
	client, server := net.Pipe()
	go func() { server.Write([]byte("login: \n")); server.Close() }()
	if _, err := newMonitor(context.Background(), client, time.Second); err == nil || !strings.Contains(err.Error(), "QMP") {
		t.Fatalf("non-QMP peer: %v", err)
	}
}

func FuzzParseQMPLine(f *testing.F) {
	f.Add([]byte(`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}`))
	f.Add([]byte(`{"return": {}, "id": "gl-1"}`))
	f.Add([]byte(`{"error": {"class": "GenericError", "desc": "x"}, "id": "gl-2"}`))
	f.Add([]byte(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := parseQMPLine(line)
		if err != nil {
			return
		}
		if m.QMP == nil && m.Event == "" && m.Return == nil && m.Error == nil {
			t.Fatalf("accepted an empty message %q", line)
		}
	})
}
