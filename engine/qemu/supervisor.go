package qemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"gridlord/engine/console"
)

// Switch is what the supervisor needs from a virtual network: take over a
// connection to one VM NIC's stream socket and serve frames on it until the
// connection ends or ctx is done. engine/network's Switch implements it.
type Switch interface {
	AcceptQEMU(ctx context.Context, conn net.Conn) error
}

// SupervisorOptions configures a Supervisor.
type SupervisorOptions struct {
	// CacheDir caches the accelerator probe; empty means the user's cache
	// directory plus "gridlord" (no cache when there is none).
	CacheDir string
	// Accel forces the accelerator for every node; empty means probe.
	Accel string
	// Console configures each node's console hub; LogPath is set per node.
	Console console.Options
	// Log receives lifecycle messages; nil discards them.
	Log *slog.Logger
	// OnState is called after every node state change. Optional.
	OnState func(Info)
}

// Supervisor runs the nodes of one state directory (StateDir/NAME holds a
// node's sockets, record and logs). It holds each VM's single QMP and serial
// connection, fans the console out through a console.Hub, and connects each
// NIC to the switch.
//
// Restart: Close detaches without stopping the VMs; a new Supervisor on the
// same directory re-adopts them with AdoptAll and reconnects QMP, console
// and NICs, because all three are servers inside QEMU. Limits: console
// output printed while no engine is connected is not captured, frames sent
// while no switch is connected are dropped, TCP connections the guest had
// through the switch (to exposed host services) break, and the switch must be
// recreated with the same configuration so the guests' fixed leases stay
// valid. Guest-to-guest traffic and the guests' addresses survive.
type Supervisor struct {
	dir  string
	sw   Switch
	opts SupervisorOptions

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	nodes    map[string]*Node
	starting map[string]bool // names a Start is bringing up
}

// Node is a VM together with its console hub.
type Node struct {
	VM      *VM
	Console *console.Hub
	cancel  context.CancelFunc
}

// NewSupervisor returns a supervisor for the nodes under stateDir, whose
// NICs are connected to sw (nil: NICs stay unconnected).
func NewSupervisor(stateDir string, sw Switch, opts SupervisorOptions) (*Supervisor, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.CacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			opts.CacheDir = filepath.Join(d, "gridlord")
		}
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("supervisor state directory: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{dir: stateDir, sw: sw, opts: opts, ctx: ctx, cancel: cancel,
		nodes: make(map[string]*Node), starting: make(map[string]bool)}, nil
}

// NodeDir is the directory of the node called name.
func (s *Supervisor) NodeDir(name string) string { return filepath.Join(s.dir, name) }

// Node returns the node called name, or nil.
func (s *Supervisor) Node(name string) *Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[name]
}

func (s *Supervisor) vmOptions(hub *console.Hub) Options {
	return Options{
		Accel:       s.opts.Accel,
		CacheDir:    s.opts.CacheDir,
		Log:         s.opts.Log,
		ConsoleTail: hub.LastLines,
		OnState:     s.opts.OnState,
	}
}

func (s *Supervisor) newHub(name string) (*console.Hub, error) {
	copts := s.opts.Console
	copts.LogPath = filepath.Join(s.NodeDir(name), FileConsoleLog)
	if copts.Log == nil {
		copts.Log = s.opts.Log
	}
	return console.New(name, copts)
}

// Start launches a node. Its console and NICs are connected while its CPUs
// are still paused, so no console output or frame is missed.
func (s *Supervisor) Start(ctx context.Context, spec Spec) (*Node, error) {
	if _, err := spec.Validate(); err != nil {
		return nil, err
	}
	// The name is reserved until Start returns, so two concurrent Starts
	// of one node cannot both launch a QEMU.
	s.mu.Lock()
	if n := s.nodes[spec.Name]; s.starting[spec.Name] || n != nil && n.VM.Info().State != Stopped && n.VM.Info().State != Failed {
		s.mu.Unlock()
		return nil, fmt.Errorf("node %s: %w", spec.Name, ErrAlreadyRunning)
	}
	s.starting[spec.Name] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.starting, spec.Name)
		s.mu.Unlock()
	}()
	dir := s.NodeDir(spec.Name)
	_, statErr := os.Stat(dir)
	created := errors.Is(statErr, os.ErrNotExist)
	// The hub's log lives in the node directory, which must exist first; so
	// check what can fail without QEMU before creating anything.
	if _, err := checkBinary(spec); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node %s: %w", spec.Name, err)
	}
	hub, err := s.newHub(spec.Name)
	if err != nil {
		return nil, err
	}
	nctx, ncancel := context.WithCancel(s.ctx)
	node := &Node{Console: hub, cancel: ncancel}
	opts := s.vmOptions(hub)
	opts.BeforeRun = func(ctx context.Context, v *VM) error {
		return s.connect(ctx, nctx, v, hub)
	}
	vm, err := Start(ctx, spec, dir, opts)
	if err != nil {
		ncancel()
		hub.Close()
		if created {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	node.VM = vm
	s.track(node)
	return node, nil
}

func checkBinary(spec Spec) (string, error) {
	spec, err := spec.Validate()
	if err != nil {
		return "", err
	}
	return lookPath(spec.BinaryName())
}

// AdoptAll re-adopts every still-running VM recorded under the state
// directory, reconnecting console and NICs. Dead VMs' records are removed.
func (s *Supervisor) AdoptAll(ctx context.Context) ([]*Node, error) {
	recs, _ := filepath.Glob(filepath.Join(s.dir, "*", FileState))
	var nodes []*Node
	var errs []error
	for _, r := range recs {
		dir := filepath.Dir(r)
		name := filepath.Base(dir)
		hub, err := s.newHub(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		vm, err := Adopt(ctx, dir, s.vmOptions(hub))
		if err != nil {
			hub.Close()
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		nctx, ncancel := context.WithCancel(s.ctx)
		node := &Node{VM: vm, Console: hub, cancel: ncancel}
		if err := s.connect(ctx, nctx, vm, hub); err != nil {
			errs = append(errs, err)
		}
		s.track(node)
		nodes = append(nodes, node)
	}
	return nodes, errors.Join(errs...)
}

// track registers a node and releases its attachments when it ends.
func (s *Supervisor) track(n *Node) {
	s.mu.Lock()
	old := s.nodes[n.VM.Name()]
	s.nodes[n.VM.Name()] = n
	s.mu.Unlock()
	if old != nil && old.Console != n.Console {
		old.Console.Close() // a stopped or failed run of the same node
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-n.VM.Done():
		case <-s.ctx.Done():
		}
		n.cancel()
	}()
}

// connect dials the VM's serial socket into the hub and its NIC sockets
// into the switch, and keeps redialling each while the VM runs (QEMU's
// servers accept a new client after the old one leaves).
func (s *Supervisor) connect(ctx, life context.Context, v *VM, hub *console.Hub) error {
	files := v.Files()
	conn, err := dialEndpoint(ctx, files.Serial)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	first := hub.Attach(conn)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.redial(life, v, first, func() (<-chan struct{}, error) {
			c, err := dialEndpoint(life, files.Serial)
			if err != nil {
				return nil, err
			}
			return hub.Attach(c), nil
		})
		hub.Detach()
	}()
	if s.sw == nil {
		return nil
	}
	for _, ep := range files.NICs {
		c, err := dialListening(ctx, ep, nicListenWait)
		if err != nil {
			return fmt.Errorf("NIC %s: %w", ep, err)
		}
		attach := func(c net.Conn) <-chan struct{} {
			done := make(chan struct{})
			go func() {
				defer close(done)
				defer c.Close()
				if err := s.sw.AcceptQEMU(life, c); err != nil && life.Err() == nil {
					s.opts.Log.Debug("NIC connection ended", "node", v.Name(), "err", err)
				}
			}()
			go func() {
				select {
				case <-life.Done():
					c.Close()
				case <-done:
				}
			}()
			return done
		}
		first := attach(c)
		s.wg.Add(1)
		go func(ep Endpoint) {
			defer s.wg.Done()
			s.redial(life, v, first, func() (<-chan struct{}, error) {
				c, err := dialEndpoint(life, ep)
				if err != nil {
					return nil, err
				}
				return attach(c), nil
			})
		}(ep)
	}
	return nil
}

// redial waits for a connection to end and makes a new one while the VM
// is alive and life is not done.
func (s *Supervisor) redial(life context.Context, v *VM, ended <-chan struct{}, dial func() (<-chan struct{}, error)) {
	for {
		select {
		case <-ended:
		case <-life.Done():
			return
		}
		for {
			select {
			case <-life.Done():
				return
			case <-v.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			if st := v.Info().State; st != Running && st != Starting {
				return
			}
			var err error
			if ended, err = dial(); err == nil {
				break
			}
		}
	}
}

func dialEndpoint(ctx context.Context, ep Endpoint) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, ep.Network, ep.Address)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ep, err)
	}
	return c, nil
}

// nicListenWait is how long a NIC's socket may take to appear: QEMU
// listens on a stream netdev's socket asynchronously (net/stream.c), so it
// may not exist yet when QMP answers (seen in CI: "net0.sock: connect: no
// such file or directory" 100 ms after the start).
const nicListenWait = 10 * time.Second

// dialListening is dialEndpoint, retried while the endpoint does not yet
// listen (no socket file, or refused) for up to wait.
func dialListening(ctx context.Context, ep Endpoint, wait time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := dialEndpoint(ctx, ep)
		if err == nil || !(errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect %s: %w", ep, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts a node down (see VM.Stop) and closes its console hub.
func (s *Supervisor) Stop(ctx context.Context, name string, grace time.Duration) error {
	n := s.Node(name)
	if n == nil {
		return fmt.Errorf("node %s: not known to this engine", name)
	}
	err := n.VM.Stop(ctx, grace)
	n.cancel()
	return err
}

// Close detaches from every node without stopping the VMs: QMP, console
// and NIC connections are closed, records stay for AdoptAll, hubs close.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	nodes := s.nodes
	s.nodes = map[string]*Node{}
	s.mu.Unlock()
	for _, n := range nodes {
		n.VM.Detach()
	}
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.Console.Close())
	}
	return errors.Join(errs...)
}
