// Package daemontest runs the real engine (daemon.Open) with a fake VM
// runner, for tests where VMs are not the point: the CLI's, the window's and
// gridfs's conformance suite. A fake VM boots from the disk the engine
// prepared, prints on its serial console what a Plan 9 node prints at
// readiness (its sysname's "# " prompt), listens on the grid network where
// its role listens (grid.ReadyPorts, reached through Runner.DialGuest as
// the engine's readiness probe does) and answers the lines the engine types
// (ndb updates, fshalt) as rc would.
package daemontest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"gridlord/engine/console"
	"gridlord/engine/daemon"
	"gridlord/engine/grid"
	"gridlord/engine/procstat"
	"gridlord/engine/qemu"
)

// Runner is a fake daemon.Runner. Give its New to daemon.Options.NewRunner.
// Its VMs outlive Close (as QEMU processes outlive an engine), so a second
// engine on the same grid with the same Runner re-adopts them; Shutdown
// ends them. Safe for concurrent use.
type Runner struct {
	// Boot is how long a VM takes from start to its prompt.
	Boot time.Duration

	mu    sync.Mutex
	cfg   daemon.RunnerConfig
	vms   map[string]*VM
	pid   int
	calls []string
	typed map[string][]string // lines typed at each node's console, by node name
}

var _ daemon.Runner = (*Runner)(nil)

// NewRunner returns a fake runner whose VMs boot in boot.
func NewRunner(boot time.Duration) *Runner {
	return &Runner{Boot: boot, vms: map[string]*VM{}, pid: 40000, typed: map[string][]string{}}
}

// New implements daemon.Options.NewRunner: the engine's runner is r.
func (r *Runner) New(cfg daemon.RunnerConfig) (daemon.Runner, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("fake runner state directory: %w", err)
	}
	r.mu.Lock()
	r.cfg = cfg
	r.mu.Unlock()
	return r, nil
}

// Calls lists what the engine asked, in order: "start NODE", "stop NODE".
func (r *Runner) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Typed lists the lines typed at node's console so far.
func (r *Runner) Typed(node string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.typed[node])
}

// node is what a fake VM knows of its node: the grid model the engine
// saved, as a real guest knows its role from the disk the engine wrote.
type node struct {
	name  string
	ip    string
	ports []int
}

// lookup reads the engine's grid for the node whose UUID is id.
func (r *Runner) lookup(id string) (node, error) {
	g, err := grid.Load(filepath.Dir(r.cfg.StateDir))
	if err != nil {
		return node{}, fmt.Errorf("fake VM %s: read the grid: %w", id, err)
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return node{}, fmt.Errorf("fake VM %s: not a node UUID: %w", id, err)
	}
	n := g.NodeByID(u)
	if n == nil {
		return node{}, fmt.Errorf("fake VM %s: no such node in the grid", id)
	}
	seed, err := g.Seed(n.Seed)
	if err != nil {
		return node{}, fmt.Errorf("fake VM %s: %w", n.Name, err)
	}
	return node{name: n.Name, ip: n.IP.String(), ports: grid.ReadyPorts(n.Kind, seed.Family)}, nil
}

// Start implements daemon.Runner: the disk must be there (the engine makes
// it), the console hub logs to the VM's console.log as the supervisor's.
func (r *Runner) Start(_ context.Context, spec qemu.Spec) (daemon.VM, error) {
	spec, err := spec.Validate()
	if err != nil {
		return nil, err
	}
	for _, d := range spec.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return nil, fmt.Errorf("fake VM %s: disk: %w", spec.Name, err)
		}
	}
	nd, err := r.lookup(spec.Name)
	if err != nil {
		return nil, err
	}
	vm, err := r.boot(spec, nd)
	if err != nil {
		return nil, err
	}
	r.note(vm.Info())
	return vm, nil
}

// boot makes and records the VM of spec.
func (r *Runner) boot(spec qemu.Spec, nd node) (*VM, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "start "+nd.name)
	if old := r.vms[spec.Name]; old != nil && old.live() {
		return nil, fmt.Errorf("node %s: %w", spec.Name, qemu.ErrAlreadyRunning)
	}
	dir := filepath.Join(r.cfg.StateDir, spec.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	hub, err := console.New(spec.Name, console.Options{LogPath: filepath.Join(dir, qemu.FileConsoleLog)})
	if err != nil {
		return nil, err
	}
	r.pid++
	vm := &VM{r: r, node: nd, hub: hub, done: make(chan struct{}), started: time.Now(), memMB: spec.MemoryMiB, info: qemu.Info{Name: spec.Name, State: qemu.Running, PID: r.pid}}
	r.vms[spec.Name] = vm
	host, guest := pipePair()
	hub.Attach(host)
	go vm.guest(guest, r.Boot)
	return vm, nil
}

// note tells the engine of a state change, in order (r.mu not held), as
// the supervisor does.
func (r *Runner) note(info qemu.Info) {
	r.mu.Lock()
	on := r.cfg.OnState
	r.mu.Unlock()
	if on != nil {
		on(info)
	}
}

// VM implements daemon.Runner.
func (r *Runner) VM(name string) daemon.VM {
	r.mu.Lock()
	defer r.mu.Unlock()
	if vm := r.vms[name]; vm != nil {
		return vm
	}
	return nil
}

// Stop implements daemon.Runner.
func (r *Runner) Stop(_ context.Context, name string, _ time.Duration) error {
	r.mu.Lock()
	vm := r.vms[name]
	if vm != nil {
		r.calls = append(r.calls, "stop "+vm.node.name)
	}
	r.mu.Unlock()
	if vm == nil {
		return fmt.Errorf("node %s: not known to this engine", name)
	}
	vm.end("exit status 0")
	return nil
}

// AdoptAll implements daemon.Runner: the VMs still running from an engine
// that closed.
func (r *Runner) AdoptAll(context.Context) ([]daemon.VM, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var vms []daemon.VM
	for _, vm := range r.vms {
		if vm.live() {
			vms = append(vms, vm)
		}
	}
	return vms, nil
}

// DialGuest implements daemon.Runner: a connection to a running fake VM's
// listener at addr, refused when none listens there.
func (r *Runner) DialGuest(ctx context.Context, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("dial %s: bad port", addr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, vm := range r.vms {
		if vm.listening(host, p) {
			a, b := net.Pipe()
			go func() { <-ctx.Done(); b.Close() }()
			return a, nil
		}
	}
	return nil, fmt.Errorf("dial %s on the virtual network: connection refused", addr)
}

// Close implements daemon.Runner: the VMs keep running.
func (r *Runner) Close() error { return nil }

// Shutdown ends every VM (a test's clean-up).
func (r *Runner) Shutdown() {
	r.mu.Lock()
	vms := make([]*VM, 0, len(r.vms))
	for _, vm := range r.vms {
		vms = append(vms, vm)
	}
	r.mu.Unlock()
	for _, vm := range vms {
		vm.end("killed")
		vm.hub.Close()
	}
}

// Crash ends node's VM as if QEMU died.
func (r *Runner) Crash(node string) error {
	r.mu.Lock()
	var vm *VM
	for _, v := range r.vms {
		if v.node.name == node && v.live() {
			vm = v
		}
	}
	r.mu.Unlock()
	if vm == nil {
		return fmt.Errorf("no running fake VM for %s", node)
	}
	vm.end("signal: killed")
	return nil
}

// VM is a fake VM.
type VM struct {
	r    *Runner
	node node
	hub  *console.Hub
	done chan struct{}

	started time.Time
	memMB   int

	mu     sync.Mutex
	info   qemu.Info
	ports  []int // listening
	closed bool
}

var (
	_ daemon.VM       = (*VM)(nil)
	_ daemon.Measurer = (*VM)(nil)
)

// FakeCPU is the CPU use every fake VM reports, in percent of one core.
const FakeCPU = 3.5

// Figures implements daemon.Measurer: a fake VM has no process of its own,
// so it reports plausible figures: the time since it started, FakeCPU, and
// its guest memory plus 32 MiB as its RSS.
func (v *VM) Figures() (procstat.Figures, error) {
	return procstat.Figures{Uptime: time.Since(v.started), CPU: FakeCPU, RSS: int64(v.memMB+32) << 20}, nil
}

// Name implements daemon.VM.
func (v *VM) Name() string { return v.info.Name }

// Info implements daemon.VM.
func (v *VM) Info() qemu.Info {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.info
}

// Done implements daemon.VM.
func (v *VM) Done() <-chan struct{} { return v.done }

// Console implements daemon.VM.
func (v *VM) Console() *console.Hub { return v.hub }

func (v *VM) live() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.closed
}

func (v *VM) listening(ip string, port int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.closed && v.node.ip == ip && slices.Contains(v.ports, port)
}

// end powers the VM off.
func (v *VM) end(exit string) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.closed = true
	v.ports = nil
	v.info.State, v.info.Exit = qemu.Stopped, exit
	info := v.info
	v.mu.Unlock()
	v.hub.Detach()
	close(v.done)
	v.r.note(info)
}

// serve opens the role's listeners.
func (v *VM) serve() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.closed {
		v.ports = slices.Clone(v.node.ports)
	}
}

// Typed lines the fake rc answers.
var (
	// echoLower is the engine's way of printing a result word that its
	// own echo cannot match: "echo WORD | tr A-Z a-z".
	echoLower = regexp.MustCompile(`&& echo ([A-Z-]+) \| tr A-Z a-z`)
)

// guest is the fake Plan 9: boot messages, then after boot its services
// listen and the prompt appears; each line typed is answered as rc would
// answer the engine's lines, then the prompt again.
func (v *VM) guest(conn io.ReadWriteCloser, boot time.Duration) {
	defer conn.Close()
	prompt := v.node.name + "# "
	fmt.Fprintf(conn, "Plan 9 (fake VM %s)\r\nE820: fake\r\n", v.node.name)
	select {
	case <-time.After(boot):
	case <-v.done:
		return
	}
	v.serve()
	fmt.Fprintf(conn, "init: starting /bin/rc\r\n%s", prompt)
	buf := make([]byte, 4096)
	var line strings.Builder
	for {
		n, err := conn.Read(buf)
		for _, c := range buf[:n] {
			if c != '\n' && c != '\r' {
				line.WriteByte(c)
				continue
			}
			if line.Len() == 0 {
				continue
			}
			l := line.String()
			line.Reset()
			v.r.mu.Lock()
			v.r.typed[v.node.name] = append(v.r.typed[v.node.name], l)
			v.r.mu.Unlock()
			fmt.Fprintf(conn, "%s\r\n%s", answer(l), prompt)
		}
		if err != nil {
			return
		}
	}
}

// answer is what rc prints for a line the engine types.
func answer(l string) string {
	switch {
	case l == "fshalt":
		return "fshalt: done halting"
	case echoLower.MatchString(l):
		return strings.ToLower(echoLower.FindStringSubmatch(l)[1])
	}
	w, _, _ := strings.Cut(l, " ")
	return w + ": not found"
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
