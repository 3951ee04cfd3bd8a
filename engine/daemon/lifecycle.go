package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"gridlord/engine/console"
	"gridlord/engine/grid"
	"gridlord/engine/qemu"
	"gridlord/images"
)

// plan9Prompt is the console prompt of a booted Plan 9 cpu or auth server:
// its sysname and "# " (plan9-grid-roles.md: "cpuc# ").
var plan9Prompt = regexp.MustCompile(`[A-Za-z0-9.\-]+# `)

// fshaltDone matches the end of fshalt on a fossil's console (or, on a
// stand-in guest, the shell's complaint that there is no fshalt).
var fshaltDone = regexp.MustCompile(`(?i)done halting|halted|fshalt: not found`)

// nodeRef is what a lifecycle step needs to know about a node, copied out
// of the model under e.mu.
type nodeRef struct {
	id       uuid.UUID
	name     string
	kind     grid.Kind
	hasVM    bool
	ip       string
	mac      string
	memoryMB int
	seed     string
	family   images.Family
}

// ref looks a node up by name.
func (e *Engine) ref(name string) (nodeRef, *nodeState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.g.Node(name)
	if n == nil {
		return nodeRef{}, nil, fmt.Errorf("no node %s in the grid (nodes: %s)", name, strings.Join(e.namesLocked(), ", "))
	}
	return e.refLocked(n)
}

// refLocked is n's nodeRef and state; e.mu must be held.
func (e *Engine) refLocked(n *grid.Node) (nodeRef, *nodeState, error) {
	r := refOf(n)
	if seed, err := e.g.Seed(n.Seed); err == nil {
		r.family = seed.Family
	}
	return r, e.stateLocked(n.ID), nil
}

// refByID looks a node up by ID: lifecycle steps follow a node by ID, so
// a rename while it starts or stops does not lose it.
func (e *Engine) refByID(id uuid.UUID) (nodeRef, *nodeState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.g.NodeByID(id)
	if n == nil {
		return nodeRef{}, nil, fmt.Errorf("node %s is no longer in the grid", id)
	}
	return e.refLocked(n)
}

func refOf(n *grid.Node) nodeRef {
	r := nodeRef{id: n.ID, name: n.Name, kind: n.Kind, hasVM: n.HasVM(), mac: n.MAC.String(), memoryMB: n.MemoryMB, seed: n.Seed}
	if n.IP.IsValid() {
		r.ip = n.IP.String()
	}
	return r
}

// namesLocked lists node names; e.mu must be held.
func (e *Engine) namesLocked() []string {
	var s []string
	for _, n := range e.g.Nodes {
		s = append(s, n.Name)
	}
	return s
}

// vmNode returns the runner's live VM for id, or nil.
func (e *Engine) vmNode(id uuid.UUID) VM {
	if vm := e.vms.VM(id.String()); live(vm) {
		return vm
	}
	return nil
}

// Start starts the named nodes and everything they depend on; with no names
// the whole grid. Nodes boot in parallel where they can: each waits only
// until what it depends on serves it — a fossil's 564 for the cpus rooted
// there, which comes up while the fossil's boot is still running its
// cpurc; full readiness for anything else — so a cpu boots while its
// fossil finishes. A node whose dependency fails is not started.
func (e *Engine) Start(ctx context.Context, names ...string) error {
	e.mu.Lock()
	order, err := e.g.StartOrder(names...)
	var refs []nodeRef
	deps, dependants := map[string][]string{}, map[string][]string{}
	if err == nil {
		for _, p := range e.g.Check() {
			if p.Severity != grid.SeverityError {
				continue
			}
			for _, n := range order {
				if n.Name == p.Node {
					err = errors.Join(err, fmt.Errorf("cannot start %s: %s", p.Node, p.Message))
				}
			}
		}
		for _, n := range order {
			refs = append(refs, refOf(n))
			for _, d := range e.g.Dependencies(n) {
				if d.HasVM() {
					deps[n.Name] = append(deps[n.Name], d.Name)
					dependants[d.Name] = append(dependants[d.Name], n.Name)
				}
			}
		}
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}
	e.refreshSwitch() // nodes added while the grid was down
	type run struct {
		serving chan struct{} // closed once dependants may start
		once    sync.Once
		done    chan struct{} // closed at the end; err is set before
		err     error
	}
	runs := make(map[string]*run, len(refs))
	for _, r := range refs {
		runs[r.name] = &run{serving: make(chan struct{}), done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	for _, r := range refs {
		rn := runs[r.name]
		if !r.hasVM { // the embedded venti is up while the engine is
			close(rn.serving)
			close(rn.done)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(rn.done)
			serve := func() {
				rn.once.Do(func() {
					if len(dependants[r.name]) > 0 {
						e.log.Info("node serves its dependants; they may boot", "node", r.name, "dependants", strings.Join(dependants[r.name], ","))
					}
					close(rn.serving)
				})
			}
			for _, d := range deps[r.name] {
				dr := runs[d]
				if dr == nil {
					continue // outside this start: StartOrder put it first, or it is not needed
				}
				select {
				case <-dr.serving:
				case <-dr.done:
					if dr.err != nil {
						rn.err = fmt.Errorf("%s was not started: %s, which it needs, did not start", r.name, d)
						return
					}
				}
			}
			if rn.err = e.startOne(ctx, r.id, serve); rn.err == nil {
				serve()
			}
		}()
	}
	wg.Wait()
	var errs []error
	for _, r := range refs {
		if rn := runs[r.name]; rn.err != nil {
			errs = append(errs, rn.err)
		}
	}
	return errors.Join(errs...)
}

// startOne prepares, boots and waits for one node. serving is called as
// soon as dependants may start booting (see Start), before readiness.
func (e *Engine) startOne(ctx context.Context, id uuid.UUID, serving func()) error {
	r, st, err := e.refByID(id)
	if err != nil {
		return err
	}
	name := r.name
	st.op.Lock()
	defer st.op.Unlock()
	if e.vmNode(r.id) != nil {
		return nil
	}
	e.setState(r.id, StateStarting, "")
	fail := func(err error) error {
		e.setState(r.id, StateFailed, err.Error())
		return err
	}
	if err := e.prepareDisk(ctx, id, false); err != nil {
		return fail(err)
	}
	if err := e.ensureMember(id, name); err != nil {
		return fail(err)
	}
	if err := e.formatFossil(ctx, id); err != nil {
		return fail(err)
	}
	spec, boot, err := e.vmSpec(id)
	if err != nil {
		return fail(err)
	}
	e.log.Info("starting node", "node", name, "kind", r.kind)
	vn, err := e.vms.Start(ctx, spec)
	if err != nil {
		return fail(fmt.Errorf("start %s: %w", name, err))
	}
	e.forward(id, name)
	if err := e.waitReady(ctx, r, vn, boot, serving); err != nil {
		if e.ctx.Err() != nil {
			// The engine is closing, not the node failing: leave the VM
			// running for the next engine to re-adopt.
			return fmt.Errorf("start %s: %w", name, err)
		}
		e.log.Warn("node did not become ready; powering it off", "node", name, "err", err)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		e.vms.Stop(sctx, r.id.String(), 0)
		cancel()
		return fail(err)
	}
	e.writeNdb(ctx, id, vn, boot == nil)
	e.setState(r.id, StateRunning, "")
	e.log.Info("node ready", "node", name)
	return nil
}

// vmSpec builds the QEMU spec of a node; boot is its seed's direct boot
// record, if any.
func (e *Engine) vmSpec(id uuid.UUID) (qemu.Spec, *DirectBoot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.g.NodeByID(id)
	if n == nil {
		return qemu.Spec{}, nil, fmt.Errorf("node %s is no longer in the grid", id)
	}
	seed, err := e.g.Seed(n.Seed)
	if err != nil {
		return qemu.Spec{}, nil, err
	}
	arch := seed.Arch
	var boot *DirectBoot
	if b, ok := e.boot[n.Seed]; ok {
		boot = &b
		if b.Arch != "" {
			arch = images.Arch(b.Arch)
		}
	}
	spec := qemu.Spec{
		Name:      n.ID.String(),
		UUID:      n.ID.String(),
		Arch:      qemuArch(arch),
		MemoryMiB: n.MemoryMB,
		Disks:     []qemu.Disk{{Path: e.g.NodeDir(n) + "/" + grid.DiskName, Format: "qcow2", Bus: qemu.Bus(seed.DiskBus)}},
		NICs:      []qemu.NIC{{Model: seed.NIC, MAC: n.MAC.String()}},
	}
	if boot != nil {
		spec.Kernel, spec.Initrd = boot.Kernel, boot.Initrd
		spec.Append = strings.ReplaceAll(boot.Append, "{name}", n.Name)
		if boot.NIC != "" {
			spec.NICs[0].Model = boot.NIC
		}
	}
	return spec, boot, nil
}

// qemuArch maps a seed architecture to QEMU's.
func qemuArch(a images.Arch) string {
	if a == images.Arch386 {
		return "i386"
	}
	return "x86_64"
}

// waitReady waits until the node serves what its kind serves. A real
// Plan 9 node: its console prompt, then every listener of its role
// (grid.ReadyPorts: a fossil's 564, an auth server's 567, the cpu
// listener), each accepting through the switch. A direct-boot stand-in: its
// ready line (then its setup lines are typed), then its kind's port.
func (e *Engine) waitReady(ctx context.Context, r nodeRef, vn VM, boot *DirectBoot, serving func()) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	go func() { // a VM that dies stops the wait at once
		select {
		case <-vn.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	failed := func(what string, err error) error {
		if info := vn.Info(); info.State == qemu.Failed || info.State == qemu.Stopped {
			what += fmt.Sprintf(" (QEMU ended: %s %s)", info.Exit, info.Err)
		}
		return fmt.Errorf("node %s: %s: %v; console tail:\n%s", r.name, what, err, strings.Join(vn.Console().LastLines(20), "\n"))
	}
	ex := console.NewExpecter(vn.Console(), true)
	defer ex.Close()
	if boot != nil {
		if _, err := ex.Expect(ctx, regexp.MustCompile(boot.Ready), 0); err != nil {
			return failed("no ready line "+strconv.Quote(boot.Ready), err)
		}
		for _, line := range boot.Setup[string(r.kind)] {
			if err := ex.SendLine(line); err != nil {
				return failed("type setup line", err)
			}
		}
	}
	var ports []int
	if boot != nil {
		// A stand-in guest: its ready line, then the service its kind
		// serves (a stand-in cpu serves none).
		switch {
		case r.kind.IsFossil():
			ports = []int{grid.FossilPort}
		case r.kind == grid.KindAuth:
			ports = []int{grid.AuthPort}
		case r.kind == grid.KindVenti:
			ports = []int{grid.VentiPort}
		}
	} else {
		// Real Plan 9. A fossil serves 564 as soon as fossil starts, long
		// before init: cpus rooted there may boot from then on. Then the
		// console prompt (cpurc has run) and every listener of the role.
		if r.kind.IsFossil() {
			if err := e.waitListening(ctx, r.ip, grid.FossilPort); err != nil {
				return failed(fmt.Sprintf("%s:%d does not accept connections", r.ip, grid.FossilPort), err)
			}
			serving()
		}
		if _, err := ex.Expect(ctx, plan9Prompt, 0); err != nil {
			return failed("no console prompt", err)
		}
		ports = grid.ReadyPorts(r.kind, r.family)
	}
	for _, port := range ports {
		if err := e.waitListening(ctx, r.ip, port); err != nil {
			return failed(fmt.Sprintf("%s:%d does not accept connections", r.ip, port), err)
		}
		if port == grid.FossilPort {
			serving()
		}
	}
	return nil
}

// waitListening waits until the guest at ip accepts TCP connections on
// port (through the switch, for QEMU VMs: Runner.DialGuest).
func (e *Engine) waitListening(ctx context.Context, ip string, port int) error {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	var last error
	for {
		dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := e.vms.DialGuest(dctx, addr)
		dcancel()
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Stop stops the named nodes and everything that depends on them,
// dependants first (grid.StopOrder); with no names the whole grid. A fossil
// is halted from its console (fshalt) before QEMU quits; with poweroff every
// VM is ended at once.
func (e *Engine) Stop(ctx context.Context, poweroff bool, names ...string) error {
	e.mu.Lock()
	order, err := e.g.StopOrder(names...)
	var refs []nodeRef
	for _, n := range order {
		refs = append(refs, refOf(n))
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range refs {
		if r.hasVM {
			errs = append(errs, e.stopOne(ctx, r.id, poweroff))
		}
	}
	return errors.Join(errs...)
}

// stopOne stops one node.
func (e *Engine) stopOne(ctx context.Context, id uuid.UUID, poweroff bool) error {
	r, st, err := e.refByID(id)
	if err != nil {
		return err
	}
	name := r.name
	st.op.Lock()
	defer st.op.Unlock()
	vn := e.vmNode(r.id)
	if vn == nil {
		e.mu.Lock()
		if st.state != StateFailed {
			st.state, st.err = StateStopped, ""
		}
		e.notifyLocked()
		e.mu.Unlock()
		return nil
	}
	e.setState(r.id, StateStopping, "")
	grace := 10 * time.Second
	if poweroff {
		grace = 0
	} else if r.kind.IsFossil() {
		e.log.Info("halting fossil", "node", name)
		ex := console.NewExpecter(vn.Console(), false)
		err := ex.SendLine("fshalt")
		if err == nil {
			_, err = ex.Expect(ctx, fshaltDone, e.opts.StopTimeout)
		}
		ex.Close()
		if err != nil {
			e.log.Warn("fshalt did not finish; quitting QEMU anyway", "node", name, "err", err)
		}
		grace = 2 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace+30*time.Second)
	defer cancel()
	if err := e.vms.Stop(sctx, r.id.String(), grace); err != nil {
		e.setState(r.id, StateFailed, err.Error())
		return fmt.Errorf("stop %s: %w", name, err)
	}
	e.setState(r.id, StateStopped, "")
	e.log.Info("node stopped", "node", name)
	// Changes made while it ran go to its disk now.
	e.mu.Lock()
	n := e.g.NodeByID(id)
	pending := n != nil && n.Pending()
	e.mu.Unlock()
	if pending {
		if disk, err := e.diskPath(id); err == nil {
			if err := e.applyConfig(id, disk); err != nil {
				e.log.Warn("writing the pending configuration after stop", "node", name, "err", err)
			}
		}
	}
	return nil
}

// Reset recreates a stopped node's disk from its seed and configures it,
// keeping its links, address and place.
func (e *Engine) Reset(ctx context.Context, name string) error {
	r, st, err := e.ref(name)
	if err != nil {
		return err
	}
	if !r.hasVM {
		return fmt.Errorf("%s is the embedded venti: it has no disk to reset", name)
	}
	st.op.Lock()
	defer st.op.Unlock()
	if e.vmNode(r.id) != nil {
		return fmt.Errorf("node %s is running: stop it before resetting its disk", name)
	}
	if err := e.prepareDisk(ctx, r.id, true); err != nil {
		e.setState(r.id, StateFailed, err.Error())
		return err
	}
	e.setState(r.id, StateStopped, "")
	return nil
}

// Clone adds a node like src (same kind, seed and links; new name, address
// and MAC) whose disk is a copy of src's (src must be stopped) or, if src has
// no disk yet, a clone of the seed.
func (e *Engine) Clone(ctx context.Context, src, name string) (string, error) {
	r, st, err := e.ref(src)
	if err != nil {
		return "", err
	}
	if !r.hasVM {
		return "", fmt.Errorf("%s is the embedded venti: add a venti node instead of cloning it", src)
	}
	st.op.Lock()
	defer st.op.Unlock()
	if e.vmNode(r.id) != nil {
		return "", fmt.Errorf("node %s is running: stop it first, its disk is copied while it is stopped", src)
	}
	e.mu.Lock()
	n, err := e.g.CloneNode(src, name)
	if err == nil {
		name = n.Name
		err = e.saveLocked()
	}
	e.mu.Unlock()
	if err != nil {
		return "", err
	}
	e.refreshSwitch()
	if err := e.prepareDisk(ctx, n.ID, false); err != nil {
		return name, err
	}
	return name, nil
}
