// Package daemon is the Gridlord engine: the long-lived process that owns one
// grid. It holds the grid directory's lock, serves the embedded venti (where
// seeds are stored as vac archives), runs the grid's virtual switch and the
// QEMU supervisor, prepares node disks (linked clones of materialised seeds,
// configured offline from the grid model) and starts and stops nodes in
// dependency order. gridfs serves an *Engine to the GUI and the CLI.
//
// # Files in the grid directory
//
//	grid.json, grid.json.bak   the model (engine/grid)
//	engine.lock                flock held by the running engine; holds its pid
//	engine.sock                gridfs (unix socket, mode 0600)
//	engine.log                 the detached engine's log (written by the CLI)
//	boot.json                  direct-kernel boot records of seeds (see DirectBoot)
//	passwords.json             passwords set for the grid's users (mode 0600)
//	venti/                     the embedded venti's store (default)
//	mirrors/                   the venti's mirrors and how far each got
//	cache/<score>/             materialised seeds (default)
//	nodes/<uuid>/              per node: disk.qcow2 and the supervisor's files
//
// The supervisor names VMs by node UUID, so its directory for a node is the
// model's NodeDir and a rename never moves a running VM's sockets.
//
// # Concurrency
//
// Engine.mu guards the model, the node states and the change channel; it is
// never held while waiting for a VM. Each node has an operation lock that
// serialises its start, stop, reset and clone. Operations run on the engine's
// own context, not the caller's: a CLI that dies mid-command does not abort a
// start half way (the caller's context only bounds how long it waits).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/mirror"
	"gridlord/engine/network"
	"gridlord/engine/ninep"
	"gridlord/engine/procstat"
	"gridlord/engine/qemu"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

var _ gridfs.Engine = (*Engine)(nil)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// VentiStore is the embedded venti's store directory (default
	// GRIDDIR/venti).
	VentiStore string
	// VentiAddr is the embedded venti's listen address. The default is
	// grid.DefaultVentiAddr, or a free loopback port when that one is taken;
	// an address given here must be free. Tests use 127.0.0.1:0.
	VentiAddr string
	// CacheDir holds materialised seeds (default GRIDDIR/cache); it may be
	// shared by grids.
	CacheDir string
	// AccelCacheDir caches QEMU's accelerator probe ("" disables it).
	AccelCacheDir string
	// Accel forces the accelerator ("tcg", "kvm"); empty means probe (or
	// $GRIDLORD_ACCEL).
	Accel string
	// ReadyTimeout bounds a node's boot to readiness (default 5 minutes).
	ReadyTimeout time.Duration
	// StopTimeout bounds a clean stop before QEMU is told to quit (default
	// 60 seconds).
	StopTimeout time.Duration
	// Log receives the engine's messages; nil discards them.
	Log *slog.Logger
	// NewRunner builds what runs the VMs (default NewQEMURunner); tests
	// give daemontest's fake.
	NewRunner func(RunnerConfig) (Runner, error)
}

// Node states, the first word of NodeStatus (gridfs's).
const (
	StateStopped  = gridfs.StateStopped
	StateStarting = gridfs.StateStarting
	StateRunning  = gridfs.StateRunning
	StateStopping = gridfs.StateStopping
	StateFailed   = gridfs.StateFailed
)

// nodeState is the engine's view of one node.
type nodeState struct {
	state string
	err   string
	op    sync.Mutex // serialises lifecycle operations on the node
}

// Engine runs one grid. Its methods are safe for concurrent use.
type Engine struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *gridLock
	// events keeps what log logs at level info and above, for gridfs /log.
	events *gridfs.EventLog
	meter  procstat.Meter // the VMs' live figures, for their status

	ctx    context.Context // engine lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ops    sync.WaitGroup // operations started by run; Close waits for them

	store   *store.Store
	mirrors *mirror.Manager // pushes every block to the grid's mirror ventis
	ventiLn net.Listener
	// ventiMu guards ventiLn's replacement and ventiStop, which stops the
	// embedded venti's server (nil while it is stopped: SetVenti).
	ventiMu   sync.Mutex
	ventiStop context.CancelFunc
	ventiSrv  *venti.Server
	sw        *switchRef
	vms       Runner     // runs the nodes' VMs (Options.NewRunner)
	seedMu    sync.Mutex // serialises seed materialisation
	shippedMu sync.Mutex // serialises imports of shipped seeds
	closeOnce sync.Once

	mu   sync.Mutex
	g    *grid.Grid
	boot map[string]DirectBoot
	// passwords are the grid's passwords by "user@authdom" (identity.go);
	// replaced, never changed in place.
	passwords map[string]string
	states    map[uuid.UUID]*nodeState
	changed   chan struct{}
	seq       uint64
}

// Open starts the engine of the grid in dir: it locks the grid (a second
// engine is refused with the first one's pid), opens and serves the embedded
// venti, builds the switch and the supervisor and re-adopts VMs a previous
// engine left running. Close releases it all without stopping the VMs.
func Open(ctx context.Context, dir string, opts Options) (e *Engine, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("grid directory %s: %w", dir, err)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.VentiStore == "" {
		opts.VentiStore = filepath.Join(dir, grid.VentiDir)
	}
	if opts.CacheDir == "" {
		opts.CacheDir = filepath.Join(dir, grid.CacheDir)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 5 * time.Minute
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 60 * time.Second
	}
	g, err := grid.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("open grid: %w", err)
	}
	lk, err := lockGrid(dir)
	if err != nil {
		return nil, err
	}
	events := gridfs.NewEventLog(0)
	e = &Engine{
		dir: dir, opts: opts, log: slog.New(events.Handler(opts.Log.Handler())).With("grid", dir), lock: lk, events: events,
		g: g, states: make(map[uuid.UUID]*nodeState), changed: make(chan struct{}),
		sw: &switchRef{},
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	opened := e // the error returns below set e to nil
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if e.boot, err = loadBoot(dir); err != nil {
		return nil, err
	}
	if e.passwords, err = loadPasswords(dir); err != nil {
		return nil, err
	}
	if e.store, err = store.Open(opts.VentiStore, store.WithLogger(opts.Log)); err != nil {
		return nil, fmt.Errorf("open the grid's venti store %s: %w", opts.VentiStore, err)
	}
	if e.ventiLn, err = e.listenVenti(opts.VentiAddr); err != nil {
		return nil, err
	}
	if a, ok := e.ventiLn.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		if d := e.DefaultPasswords(); len(d) > 0 {
			return nil, fmt.Errorf("the grid's venti would listen on %s, beyond this machine, while nodes still have their seed's well-known default password (%s): change it first (gridlord identity), or keep the venti on loopback", a, strings.Join(d, ", "))
		}
	}
	if e.mirrors, err = mirror.New(e.store, filepath.Join(dir, grid.MirrorsDir), e.log); err != nil {
		return nil, fmt.Errorf("the grid's venti mirrors: %w", err)
	}
	e.mirrors.Start(e.ctx)
	e.ventiSrv = venti.NewServer(e.store, venti.WithLogger(opts.Log))
	e.serveVenti(e.ventiLn)
	if err := e.rebuildSwitch(); err != nil {
		return nil, err
	}
	if opts.NewRunner == nil {
		opts.NewRunner = NewQEMURunner
	}
	e.vms, err = opts.NewRunner(RunnerConfig{
		StateDir:      filepath.Join(dir, grid.NodesDir),
		Net:           e.sw,
		Accel:         opts.Accel,
		AccelCacheDir: opts.AccelCacheDir,
		Log:           opts.Log,
		OnState:       e.onVMState,
	})
	if err != nil {
		return nil, err
	}
	nodes, aerr := e.vms.AdoptAll(ctx)
	if aerr != nil {
		e.log.Warn("re-adopting VMs", "err", aerr)
	}
	for _, n := range nodes {
		e.adopted(n)
	}
	e.log.Info("engine running", "venti", e.ventiLn.Addr().String(), "adopted", len(nodes))
	return e, nil
}

// adopted records a VM found running at Open.
func (e *Engine) adopted(vm VM) {
	id, err := uuid.Parse(vm.Name())
	e.mu.Lock()
	var gn *grid.Node
	if err == nil {
		gn = e.g.NodeByID(id)
	}
	if gn == nil {
		e.mu.Unlock()
		e.log.Warn("adopted a VM that is not in the grid; leaving it alone", "vm", vm.Name())
		return
	}
	st := e.stateLocked(gn.ID)
	st.state, st.err = StateRunning, ""
	name := gn.Name
	e.notifyLocked()
	e.mu.Unlock()
	e.forward(gn.ID, name)
	e.log.Info("re-adopted running node", "node", name, "pid", vm.Info().PID)
}

// Dir returns the grid directory.
func (e *Engine) Dir() string { return e.dir }

// listenVenti listens for the embedded venti on addr; with no addr, on
// grid.DefaultVentiAddr or, when another venti (another grid's, say) has that
// port, on a free loopback port: guests reach the venti on 17034 through
// the switch whatever the host port, and VentiAddr tells host tools.
func (e *Engine) listenVenti(addr string) (net.Listener, error) {
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("embedded venti: listen on %s: %w (is another venti running? give another address)", addr, err)
		}
		return ln, nil
	}
	ln, err := net.Listen("tcp", grid.DefaultVentiAddr)
	if err == nil {
		return ln, nil
	}
	ln, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err2 != nil {
		return nil, fmt.Errorf("embedded venti: listen on %s: %w; on a free loopback port: %v", grid.DefaultVentiAddr, err, err2)
	}
	e.log.Warn("the venti port is taken (another grid's engine or a venti runs); the embedded venti listens on another loopback port, guests still reach it on 17034",
		"taken", grid.DefaultVentiAddr, "addr", ln.Addr().String(), "err", err)
	return ln, nil
}

// VentiAddr returns the address the embedded venti listens on.
func (e *Engine) VentiAddr() string {
	e.ventiMu.Lock()
	defer e.ventiMu.Unlock()
	return e.ventiLn.Addr().String()
}

// serveVenti serves the embedded venti on ln until SetVenti stops it or
// the engine closes. e.ventiMu must be held or the engine opening.
func (e *Engine) serveVenti(ln net.Listener) {
	ctx, cancel := context.WithCancel(e.ctx)
	e.ventiStop = cancel
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := e.ventiSrv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			e.log.Error("embedded venti stopped", "err", err)
		}
	}()
}

// VentiRunning reports whether the embedded venti serves (see SetVenti).
func (e *Engine) VentiRunning() bool {
	e.ventiMu.Lock()
	defer e.ventiMu.Unlock()
	return e.ventiStop != nil
}

// SetVenti stops the embedded venti's server (on false: its listener and
// every connection close, for host tools and guests alike; the engine's
// own use of the store, mirroring included, goes on) or starts it again on
// the same address. It is for maintenance and for failing the grid over
// to a mirror (Network.Failover).
func (e *Engine) SetVenti(on bool) error {
	e.ventiMu.Lock()
	defer e.ventiMu.Unlock()
	switch {
	case on == (e.ventiStop != nil):
		return nil
	case !on:
		e.ventiStop()
		e.ventiStop = nil
		e.log.Info("embedded venti stopped", "addr", e.ventiLn.Addr().String())
		return nil
	}
	addr := e.ventiLn.Addr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("start the embedded venti again on %s: %w", addr, err)
	}
	e.ventiLn = ln
	e.serveVenti(ln)
	return nil
}

// SocketPath returns where gridfs is served (GRIDDIR/engine.sock).
func (e *Engine) SocketPath() string { return filepath.Join(e.dir, grid.SocketName) }

// Serve serves gridfs on the engine's socket until ctx ends.
func (e *Engine) Serve(ctx context.Context) error {
	return serveGridfs(ctx, e, e.SocketPath(), e.log)
}

// Close detaches from the VMs (they keep running; the next engine re-adopts
// them), closes the switch and the venti and releases the grid's lock.
func (e *Engine) Close() error {
	var errs []error
	e.closeOnce.Do(func() {
		// Stop taking operations and let those under way finish (they see
		// the cancelled context) before detaching from the VMs and closing
		// the store they may still be using.
		e.mu.Lock()
		e.cancel()
		e.mu.Unlock()
		e.ops.Wait()
		if e.vms != nil {
			errs = append(errs, e.vms.Close())
		}
		if e.ventiLn != nil {
			e.ventiLn.Close()
		}
		e.sw.close()
		e.wg.Wait()
		if e.mirrors != nil {
			errs = append(errs, e.mirrors.Close())
		}
		if e.store != nil {
			errs = append(errs, e.store.Close())
		}
		errs = append(errs, e.lock.release())
		e.mu.Lock()
		e.notifyLocked()
		e.mu.Unlock()
	})
	return errors.Join(errs...)
}

// EventLog implements gridfs.EventSource: what the engine logs at level
// info and above, served as /log.
func (e *Engine) EventLog() *gridfs.EventLog { return e.events }

// Changed returns a channel closed at the next change of the grid or of a
// node's state.
func (e *Engine) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// notifyLocked wakes Changed's waiters; e.mu must be held.
func (e *Engine) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
	e.seq++
}

// stateLocked returns node id's state record; e.mu must be held.
func (e *Engine) stateLocked(id uuid.UUID) *nodeState {
	st := e.states[id]
	if st == nil {
		st = &nodeState{state: StateStopped}
		e.states[id] = st
	}
	return st
}

// setState changes a node's state and notifies.
func (e *Engine) setState(id uuid.UUID, state, msg string) {
	e.mu.Lock()
	st := e.stateLocked(id)
	st.state, st.err = state, msg
	e.notifyLocked()
	e.mu.Unlock()
}

// onVMState follows VMs that end on their own (guest powered off, QEMU
// crashed).
func (e *Engine) onVMState(info qemu.Info) {
	id, err := uuid.Parse(info.Name)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stateLocked(id)
	switch info.State {
	case qemu.Failed:
		if st.state != StateStopping {
			st.state, st.err = StateFailed, info.Err
		}
	case qemu.Stopped:
		if st.state == StateRunning {
			st.state, st.err = StateStopped, "the VM ended on its own ("+info.Exit+")"
		}
	}
	e.notifyLocked()
}

// saveLocked saves the model; e.mu must be held.
func (e *Engine) saveLocked() error {
	if err := e.g.Save(); err != nil {
		return fmt.Errorf("save grid: %w", err)
	}
	e.notifyLocked()
	return nil
}

// switchRef is the supervisor's view of the switch, which the engine may
// replace when the grid's members change while no VM runs.
type switchRef struct {
	mu      sync.Mutex
	sw      *network.Switch
	members map[string]network.Member
	// failover is the mirror venti exposed on grid.FailoverPort ("":
	// none).
	failover string
}

// AcceptQEMU implements qemu.Switch with the current switch.
func (r *switchRef) AcceptQEMU(ctx context.Context, conn net.Conn) error {
	r.mu.Lock()
	sw := r.sw
	r.mu.Unlock()
	if sw == nil {
		conn.Close()
		return errors.New("the grid network is not running (is the engine closing?); restart the engine to reconnect the VM")
	}
	return sw.AcceptQEMU(ctx, conn)
}

func (r *switchRef) get() *network.Switch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sw
}

func (r *switchRef) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sw != nil {
		r.sw.Close()
		r.sw = nil
	}
}

// failoverAddr is the grid's failover venti (Network.Failover).
func (e *Engine) failoverAddr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.g.Network.Failover
}

// exposeFailover makes the grid's failover venti reachable from the
// running switch (a switch built later exposes it itself). A switch that
// already carries another failover venti keeps it until it is rebuilt,
// which happens once no VM runs.
func (e *Engine) exposeFailover() error {
	addr := e.failoverAddr()
	e.sw.mu.Lock()
	defer e.sw.mu.Unlock()
	if e.sw.sw == nil || addr == "" || addr == e.sw.failover {
		return nil
	}
	if e.sw.failover != "" {
		return fmt.Errorf("the running grid network carries failover venti %s until every node is stopped; stop the grid (gridlord down) to switch to %s", e.sw.failover, addr)
	}
	if err := e.sw.sw.ExposeHost(grid.FailoverPort, addr); err != nil {
		return fmt.Errorf("grid network: failover venti %s for guests: %w", addr, err)
	}
	e.sw.failover = addr
	return nil
}

// networkPlan returns the switch configuration and members of the model.
func (e *Engine) networkPlan() (network.Config, []network.Member) {
	e.mu.Lock()
	defer e.mu.Unlock()
	nw := e.g.Network
	cfg := network.Config{Subnet: nw.Subnet.String(), GatewayIP: nw.Gateway.String(), HostIP: nw.Host.String(), Outbound: nw.Outbound}
	var ms []network.Member
	for _, l := range e.g.Leases() {
		// Members are keyed by node ID, so a rename (while VMs run, when
		// the switch cannot be rebuilt) keeps a node's lease and forwards.
		ms = append(ms, network.Member{Name: l.ID.String(), MAC: l.MAC.String(), IP: l.IP.String()})
	}
	return cfg, ms
}

// rebuildSwitch (re)creates the switch from the model.
func (e *Engine) rebuildSwitch() error {
	cfg, ms := e.networkPlan()
	sw, err := network.New(cfg, ms, e.opts.Log)
	if err != nil {
		return fmt.Errorf("grid network: %w", err)
	}
	if err := sw.ExposeHost(network.VentiPort, e.VentiAddr()); err != nil {
		sw.Close()
		return fmt.Errorf("grid network: embedded venti for guests: %w", err)
	}
	failover := e.failoverAddr()
	if failover != "" {
		if err := sw.ExposeHost(grid.FailoverPort, failover); err != nil {
			sw.Close()
			return fmt.Errorf("grid network: failover venti %s for guests: %w", failover, err)
		}
	}
	if err := e.servePlan9Tree(sw); err != nil {
		sw.Close()
		return err
	}
	set := make(map[string]network.Member, len(ms))
	for _, m := range ms {
		set[m.Name] = m
	}
	e.sw.mu.Lock()
	old := e.sw.sw
	e.sw.sw, e.sw.members, e.sw.failover = sw, set, failover
	e.sw.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// refreshSwitch rebuilds the switch when the model's leases differ from
// the switch's and no VM runs, so that nodes added, cloned or readdressed
// while the grid is down get their leases (and removed ones lose theirs)
// before anything starts.
func (e *Engine) refreshSwitch() {
	cfg, ms := e.networkPlan()
	e.sw.mu.Lock()
	same := len(ms) == len(e.sw.members) && e.sw.sw != nil && e.sw.sw.Config().Outbound == cfg.Outbound &&
		e.sw.failover == e.failoverAddr()
	for _, m := range ms {
		if have, ok := e.sw.members[m.Name]; !ok || have != m {
			same = false
		}
	}
	e.sw.mu.Unlock()
	if same || e.anyVMRunning() {
		return
	}
	if err := e.rebuildSwitch(); err != nil {
		e.log.Warn("rebuilding the grid network for the changed nodes", "err", err)
	}
}

// servePlan9Tree serves the grid's tree over 9P2000 to the guests of sw, at
// the host address on grid.GridfsPort, inside the grid network only (there
// is no host socket); it ends with the switch.
func (e *Engine) servePlan9Tree(sw *network.Switch) error {
	ln, err := sw.ListenHost(grid.GridfsPort)
	if err != nil {
		return fmt.Errorf("grid network: the grid's tree for Plan 9 nodes: %w", err)
	}
	srv := ninep.NewServer(gridfs.NewPlan9FS(e, gridfs.Plan9Options{Owner: e.hostOwner}), ninep.Options{Logger: e.log.With("service", "gridfs-9p2000")})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := srv.Serve(e.ctx, ln); err != nil && e.ctx.Err() == nil {
			e.log.Debug("the grid's 9P2000 tree stopped (switch rebuilt or closed)", "err", err)
		}
	}()
	return nil
}

// hostOwner is the grid's host owner: the user of its auth server, else
// of its first node with a VM.
func (e *Engine) hostOwner() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	owner := ""
	for _, n := range e.g.Nodes {
		switch {
		case n.HasVM() && n.Kind.ServesAuth():
			return n.User
		case n.HasVM() && owner == "":
			owner = n.User
		}
	}
	return owner
}

// ensureMember makes sure the switch hands node id (called name) its lease:
// the switch is rebuilt for the model when no VM runs, else the lease is
// added to the running switch.
func (e *Engine) ensureMember(id uuid.UUID, name string) error {
	_, ms := e.networkPlan()
	var want *network.Member
	for i := range ms {
		if ms[i].Name == id.String() {
			want = &ms[i]
		}
	}
	if want == nil {
		return fmt.Errorf("node %s has no address in the grid network", name)
	}
	e.sw.mu.Lock()
	have, ok := e.sw.members[id.String()]
	e.sw.mu.Unlock()
	if ok && have == *want {
		return nil // this node's lease is right, whatever else changed
	}
	if !e.anyVMRunning() {
		return e.rebuildSwitch()
	}
	// Others run on this switch: give it the node's lease in place.
	e.sw.mu.Lock()
	defer e.sw.mu.Unlock()
	if e.sw.sw == nil {
		return fmt.Errorf("node %s: the grid network is not up", name)
	}
	if err := e.sw.sw.SetMember(*want); err != nil {
		return fmt.Errorf("node %s was added or readdressed while other nodes run, and its lease cannot be given on the running network (%w): stop the grid (gridlord down) and start again", name, err)
	}
	members := maps.Clone(e.sw.members)
	members[want.Name] = *want
	e.sw.members = members
	return nil
}

// anyVMRunning reports whether the runner has a live VM.
func (e *Engine) anyVMRunning() bool {
	e.mu.Lock()
	var ids []string
	for _, n := range e.g.Nodes {
		ids = append(ids, n.ID.String())
	}
	e.mu.Unlock()
	for _, id := range ids {
		if live(e.vms.VM(id)) {
			return true
		}
	}
	return false
}

// forward sets up the host-to-guest port forwards of running node id
// (once per switch).
func (e *Engine) forward(id uuid.UUID, name string) {
	sw := e.sw.get()
	if sw == nil || len(sw.Forwards(id.String())) > 0 {
		return
	}
	if _, err := sw.ForwardStandard(id.String(), 0); err != nil {
		e.log.Warn("port forwards", "node", name, "err", err)
	}
}
