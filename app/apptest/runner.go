// Package apptest provides an engine-side fake for tests of package app and
// of the window: a Runner whose "VMs" are goroutines that go through the
// real state sequence and talk on real console hubs (engine/console), and
// a gridfs.Engine over an app.Local so the Remote backend can be tested on a
// real 9P socket.
package apptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"gridlord/app"
	"gridlord/engine/console"
	"gridlord/engine/grid"
)

// Runner is a fake app.Runner. Start moves a node to starting, then after
// Delay to running, when its stand-in guest prints a banner on the console
// and answers each line typed with "echo: LINE". Stop moves it through
// stopping to stopped. Safe for concurrent use.
type Runner struct {
	// Delay is how long starting and stopping last.
	Delay time.Duration

	notes app.Notifier
	mu    sync.Mutex
	state map[uuid.UUID]string
	hubs  map[uuid.UUID]*console.Hub
	calls []string
}

var _ app.Runner = (*Runner)(nil)

// NewRunner returns a runner whose transitions take delay.
func NewRunner(delay time.Duration) *Runner {
	return &Runner{Delay: delay, state: map[uuid.UUID]string{}, hubs: map[uuid.UUID]*console.Hub{}}
}

// Calls lists the commands received, as "start cpu1".
func (r *Runner) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func (r *Runner) set(id uuid.UUID, st string) {
	r.mu.Lock()
	r.state[id] = st
	r.mu.Unlock()
	r.notes.Notify()
}

// Start implements app.Runner.
func (r *Runner) Start(_ context.Context, _ *grid.Grid, n *grid.Node) error {
	r.mu.Lock()
	r.calls = append(r.calls, "start "+n.Name)
	h := r.hubs[n.ID]
	if h == nil {
		var err error
		if h, err = console.New(n.Name, console.Options{}); err != nil {
			r.mu.Unlock()
			return err
		}
		r.hubs[n.ID] = h
	}
	r.mu.Unlock()
	r.set(n.ID, "starting")
	name := n.Name
	time.AfterFunc(r.Delay, func() {
		host, guest := pipePair()
		h.Attach(host)
		go standIn(guest, name)
		r.set(n.ID, "running")
	})
	return nil
}

// Stop implements app.Runner.
func (r *Runner) Stop(_ context.Context, n *grid.Node, force bool) error {
	r.mu.Lock()
	verb := "stop "
	if force {
		verb = "poweroff "
	}
	r.calls = append(r.calls, verb+n.Name)
	h := r.hubs[n.ID]
	r.mu.Unlock()
	r.set(n.ID, "stopping")
	time.AfterFunc(r.Delay, func() {
		if h != nil {
			h.Detach()
		}
		r.set(n.ID, "stopped")
	})
	return nil
}

// Reset implements app.Runner.
func (r *Runner) Reset(_ context.Context, n *grid.Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "reset "+n.Name)
	if st := r.state[n.ID]; st != "" && st != "stopped" {
		return fmt.Errorf("%s is %s: stop it before resetting its disk", n.Name, st)
	}
	return nil
}

// State implements app.Runner.
func (r *Runner) State(n *grid.Node) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.state[n.ID]; ok {
		return s
	}
	return "stopped"
}

// Hub returns n's console hub (nil if it never started).
func (r *Runner) Hub(n *grid.Node) *console.Hub {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hubs[n.ID]
}

// Console implements app.Runner: a subscription to the hub, typing into it.
func (r *Runner) Console(n *grid.Node) (io.ReadWriteCloser, error) {
	h := r.Hub(n)
	if h == nil {
		return nil, fmt.Errorf("%s has never been started: no console", n.Name)
	}
	return &hubConn{h: h, r: h.Subscribe(true)}, nil
}

// Changed implements app.Runner.
func (r *Runner) Changed() <-chan struct{} { return r.notes.Changed() }

// hubConn is one console subscriber.
type hubConn struct {
	h *console.Hub
	r *console.Reader
}

func (c *hubConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *hubConn) Write(p []byte) (int, error) { return c.h.Write(p) }
func (c *hubConn) Close() error                { return c.r.Close() }

// standIn is the fake guest: a banner, then an echo of every line.
func standIn(conn io.ReadWriteCloser, name string) {
	defer conn.Close()
	fmt.Fprintf(conn, "Plan 9 (stand-in)\r\n%s: ready\r\n", name)
	buf := make([]byte, 512)
	var line strings.Builder
	for {
		n, err := conn.Read(buf)
		for _, c := range buf[:n] {
			if c == '\n' || c == '\r' {
				if line.Len() > 0 {
					fmt.Fprintf(conn, "echo: %s\r\n", line.String())
					line.Reset()
				}
				continue
			}
			line.WriteByte(c)
		}
		if err != nil {
			return
		}
	}
}

// pipePair returns two connected in-memory streams.
func pipePair() (io.ReadWriteCloser, io.ReadWriteCloser) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return &pipeEnd{ar, aw}, &pipeEnd{br, bw}
}

type pipeEnd struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p *pipeEnd) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeEnd) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeEnd) Close() error                { return errors.Join(p.r.Close(), p.w.Close()) }
