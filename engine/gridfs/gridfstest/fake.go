// Package gridfstest provides an in-memory gridfs.Engine for tests of
// gridfs and of its users (CLI, GUI): a small grid whose node states
// follow the commands written to it, with real console hubs.
package gridfstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"gridlord/engine/console"
	"gridlord/engine/gridfs"
)

var _ gridfs.Engine = (*Engine)(nil)

// Call is one command the fake received.
type Call struct {
	// Node is "" for a grid-level /ctl command.
	Node string
	// Words is the command.
	Words []string
}

// Engine is a fake gridfs.Engine. Node commands change node states
// ("start" → running, "stop"/"poweroff" → stopped); grid "add"/"remove"
// change the node list; every accepted command fires Changed. All methods
// are safe for concurrent use.
type Engine struct {
	mu      sync.Mutex
	nodes   []string
	status  map[string]string
	ini     map[string][]byte
	logs    map[string][]byte
	hubs    map[string]*console.Hub
	seeds   []string
	stats   []byte
	calls   []Call
	fail    map[string]error
	changed chan struct{}
	block   chan struct{}
	events  *gridfs.EventLog
}

var _ gridfs.EventSource = (*Engine)(nil)

// EventLog implements gridfs.EventSource: the events AddEvent added.
func (e *Engine) EventLog() *gridfs.EventLog { return e.events }

// AddEvent adds an event to the engine's event log (/log).
func (e *Engine) AddEvent(ev gridfs.Event) { e.events.Add(ev) }

// New returns a fake grid with nodes venti (running), fossil1 and cpu1 (stopped).
func New() *Engine {
	e := &Engine{
		status:  map[string]string{},
		ini:     map[string][]byte{},
		logs:    map[string][]byte{},
		hubs:    map[string]*console.Hub{},
		fail:    map[string]error{},
		changed: make(chan struct{}),
		events:  gridfs.NewEventLog(0),
		seeds:   []string{"9legacy vac:0123456789abcdef0123456789abcdef01234567 1073741824 qcow2"},
		stats:   []byte("arenas 1\nblocks 42\nbytes 1234567\n"),
	}
	e.addNode("venti", "running ip=10.0.9.1")
	e.addNode("fossil1", "stopped ip=10.0.9.10 pending=false")
	e.addNode("cpu1", "stopped ip=10.0.9.11 pending=false")
	return e
}

func (e *Engine) addNode(name, status string) {
	e.nodes = append(e.nodes, name)
	e.status[name] = status
	e.ini[name] = []byte("sysname=" + name + "\nconsole=0\n")
	e.logs[name] = []byte("log of " + name + "\n")
}

// fire closes the current Changed channel. e.mu must be held.
func (e *Engine) fire() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// Bump signals a change, as a state change in a real engine would.
func (e *Engine) Bump() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fire()
}

// SetStatus sets node's status line and signals a change.
func (e *Engine) SetStatus(node, status string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status[node] = status
	e.fire()
}

// SetConsole gives node a console hub (nil removes it).
func (e *Engine) SetConsole(node string, h *console.Hub) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if h == nil {
		delete(e.hubs, node)
		return
	}
	e.hubs[node] = h
}

// FailVerb makes every later command with this first word fail with err
// (nil clears it).
func (e *Engine) FailVerb(verb string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		delete(e.fail, verb)
		return
	}
	e.fail[verb] = err
}

// BlockCommands makes commands wait until the returned function is called
// or their context ends (to test cancellation and slow commands).
func (e *Engine) BlockCommands() (release func()) {
	ch := make(chan struct{})
	e.mu.Lock()
	e.block = ch
	e.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			if e.block == ch {
				e.block = nil
			}
			e.mu.Unlock()
			close(ch)
		})
	}
}

// Calls returns the commands received so far.
func (e *Engine) Calls() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

func (e *Engine) wait(ctx context.Context) error {
	e.mu.Lock()
	b := e.block
	e.mu.Unlock()
	if b == nil {
		return nil
	}
	select {
	case <-b:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("command interrupted: %w", ctx.Err())
	}
}

// GridJSON implements gridfs.Engine.
func (e *Engine) GridJSON() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	type node struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	var g struct {
		Version int    `json:"version"`
		Nodes   []node `json:"nodes"`
	}
	g.Version = 1
	for _, n := range e.nodes {
		g.Nodes = append(g.Nodes, node{n, strings.Fields(e.status[n])[0]})
	}
	b, err := json.MarshalIndent(g, "", "  ")
	return append(b, '\n'), err
}

var gridVerbs = []string{"add", "arrange", "clone", "down", "identity", "ip", "memory", "move", "remove", "rename", "seed", "unwire", "up", "wire"}

// Ctl implements gridfs.Engine.
func (e *Engine) Ctl(ctx context.Context, words []string) error {
	if err := e.wait(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(words) == 0 || !slices.Contains(gridVerbs, words[0]) {
		return fmt.Errorf("unknown grid command; verbs: %s", strings.Join(gridVerbs, " "))
	}
	if err := e.fail[words[0]]; err != nil {
		return err
	}
	switch words[0] {
	case "add":
		if len(words) < 3 {
			return errors.New("usage: add KIND NAME [SEED]")
		}
		if _, ok := e.status[words[2]]; ok {
			return fmt.Errorf("node %s already exists", words[2])
		}
		e.addNode(words[2], "stopped")
	case "remove":
		if len(words) != 2 {
			return errors.New("usage: remove NAME")
		}
		i := slices.Index(e.nodes, words[1])
		if i < 0 {
			return fmt.Errorf("no node %s", words[1])
		}
		e.nodes = slices.Delete(e.nodes, i, i+1)
		delete(e.status, words[1])
	case "up", "down":
		st := map[string]string{"up": "running", "down": "stopped"}[words[0]]
		for _, n := range e.nodes {
			if n != "venti" {
				e.status[n] = st
			}
		}
	}
	e.calls = append(e.calls, Call{Words: slices.Clone(words)})
	e.fire()
	return nil
}

// Nodes implements gridfs.Engine.
func (e *Engine) Nodes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.nodes)
}

// NodeCtl implements gridfs.Engine.
func (e *Engine) NodeCtl(ctx context.Context, node string, words []string) error {
	if err := e.wait(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.status[node]; !ok {
		return fmt.Errorf("no node %s", node)
	}
	if err := e.fail[words[0]]; err != nil {
		return err
	}
	switch words[0] {
	case "start":
		e.status[node] = "running"
	case "stop", "poweroff":
		e.status[node] = "stopped"
	}
	e.calls = append(e.calls, Call{Node: node, Words: slices.Clone(words)})
	e.fire()
	return nil
}

func (e *Engine) get(node string, m map[string][]byte) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := m[node]
	if !ok {
		return nil, fmt.Errorf("no node %s", node)
	}
	return slices.Clone(b), nil
}

// NodeStatus implements gridfs.Engine.
func (e *Engine) NodeStatus(node string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.status[node]
	if !ok {
		return "", fmt.Errorf("no node %s", node)
	}
	return s, nil
}

// NodeIni implements gridfs.Engine.
func (e *Engine) NodeIni(node string) ([]byte, error) { return e.get(node, e.ini) }

// NodeLog implements gridfs.Engine.
func (e *Engine) NodeLog(node string) ([]byte, error) { return e.get(node, e.logs) }

// Identity implements gridfs.Engine: the fake's nodes have no nvram.
func (e *Engine) Identity(context.Context, []string) error {
	return errors.New("the fake engine's nodes have no nvram")
}

// NodeDrawterm implements gridfs.Engine: the fake's nodes run no cpu
// service.
func (e *Engine) NodeDrawterm(node string) ([]byte, error) {
	if _, err := e.get(node, e.logs); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("node %s of the fake engine runs no cpu service", node)
}

// Console implements gridfs.Engine.
func (e *Engine) Console(node string) (*console.Hub, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.hubs[node]
	if !ok {
		return nil, fmt.Errorf("node %s has no console", node)
	}
	return h, nil
}

// Seeds implements gridfs.Engine.
func (e *Engine) Seeds() ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := slices.Clone(e.seeds)
	sort.Strings(s)
	return s, nil
}

// VentiMirrors implements gridfs.Engine: the fake venti has no mirrors.
func (e *Engine) VentiMirrors() ([]byte, error) { return nil, nil }

// VentiStats implements gridfs.Engine.
func (e *Engine) VentiStats() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.stats), nil
}

// Changed implements gridfs.Engine.
func (e *Engine) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}
