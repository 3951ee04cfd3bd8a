package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/procstat"
	"gridlord/engine/qemu"
)

// Runner runs the VMs of the engine's nodes, each named by its node's UUID.
// It is all the engine uses of QEMU: the production Runner is the QEMU
// supervisor (NewQEMURunner); engine/daemon/daemontest has a fake whose VMs
// print what a booted Plan 9 node prints and listen where it listens, so
// tests run this engine without QEMU (as Lima's driver interface lets its
// host agent run on any driver). Methods are safe for concurrent use.
type Runner interface {
	// Start boots spec and returns the VM once it runs; its console is
	// connected before the guest's CPUs start.
	Start(ctx context.Context, spec qemu.Spec) (VM, error)
	// VM returns the VM called name that this runner started or adopted
	// (running or not), or nil.
	VM(name string) VM
	// Stop shuts the VM called name down: the guest gets grace to power
	// off, then QEMU is told to quit (0: at once).
	Stop(ctx context.Context, name string, grace time.Duration) error
	// AdoptAll takes over the VMs a previous engine left running.
	AdoptAll(ctx context.Context) ([]VM, error)
	// DialGuest connects to addr ("IP:PORT") on the grid network, as the
	// engine's readiness probe does; for QEMU VMs through the switch.
	DialGuest(ctx context.Context, addr string) (net.Conn, error)
	// Close detaches from every VM without stopping it.
	Close() error
}

// VM is one node's virtual machine as a Runner reports it.
type VM interface {
	// Name is the VM's name: its node's UUID.
	Name() string
	// Info is a snapshot of its state.
	Info() qemu.Info
	// Done is closed when the VM has ended.
	Done() <-chan struct{}
	// Console is its serial console.
	Console() *console.Hub
}

// Measurer is a VM that measures its own figures (uptime, CPU, RSS) rather
// than the engine measuring its process by pid: a VM without a process of
// its own (daemontest's fake VMs).
type Measurer interface {
	Figures() (procstat.Figures, error)
}

// GuestNet is the grid network as a Runner sees it: it plugs QEMU's NIC
// streams in and reaches guests' listeners.
type GuestNet interface {
	qemu.Switch
	// DialGuest connects to "IP:PORT" on the grid network.
	DialGuest(ctx context.Context, addr string) (net.Conn, error)
}

// RunnerConfig is what Options.NewRunner builds a Runner from.
type RunnerConfig struct {
	// StateDir holds one directory per VM, named as the VM: the grid's
	// nodes directory, so a VM's files sit beside its node's disk.
	StateDir string
	// Net is the grid network.
	Net GuestNet
	// Accel forces the accelerator ("" probes); AccelCacheDir caches the
	// probe ("" disables the cache).
	Accel, AccelCacheDir string
	// Log receives the runner's messages.
	Log *slog.Logger
	// OnState is called after every change of a VM's state, also when a VM
	// ends on its own.
	OnState func(qemu.Info)
}

// NewQEMURunner is the production Runner: QEMU processes under a
// qemu.Supervisor, NICs on cfg.Net.
func NewQEMURunner(cfg RunnerConfig) (Runner, error) {
	sup, err := qemu.NewSupervisor(cfg.StateDir, cfg.Net, qemu.SupervisorOptions{
		CacheDir: cfg.AccelCacheDir,
		Accel:    cfg.Accel,
		Log:      cfg.Log,
		OnState:  cfg.OnState,
	})
	if err != nil {
		return nil, err
	}
	return &qemuRunner{sup: sup, net: cfg.Net}, nil
}

// qemuRunner adapts a qemu.Supervisor to Runner.
type qemuRunner struct {
	sup *qemu.Supervisor
	net GuestNet
}

// qemuVM adapts a supervisor's node to VM.
type qemuVM struct{ n *qemu.Node }

func (v qemuVM) Name() string          { return v.n.VM.Name() }
func (v qemuVM) Info() qemu.Info       { return v.n.VM.Info() }
func (v qemuVM) Done() <-chan struct{} { return v.n.VM.Done() }
func (v qemuVM) Console() *console.Hub { return v.n.Console }

func (r *qemuRunner) Start(ctx context.Context, spec qemu.Spec) (VM, error) {
	n, err := r.sup.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return qemuVM{n}, nil
}

func (r *qemuRunner) VM(name string) VM {
	if n := r.sup.Node(name); n != nil {
		return qemuVM{n}
	}
	return nil
}

func (r *qemuRunner) Stop(ctx context.Context, name string, grace time.Duration) error {
	return r.sup.Stop(ctx, name, grace)
}

func (r *qemuRunner) AdoptAll(ctx context.Context) ([]VM, error) {
	nodes, err := r.sup.AdoptAll(ctx)
	vms := make([]VM, len(nodes))
	for i, n := range nodes {
		vms[i] = qemuVM{n}
	}
	return vms, err
}

func (r *qemuRunner) DialGuest(ctx context.Context, addr string) (net.Conn, error) {
	return r.net.DialGuest(ctx, addr)
}

func (r *qemuRunner) Close() error { return r.sup.Close() }

// live reports whether a VM's state is one of a running QEMU.
func live(vm VM) bool {
	if vm == nil {
		return false
	}
	s := vm.Info().State
	return s != qemu.Stopped && s != qemu.Failed
}

// DialGuest implements GuestNet with the current switch.
func (r *switchRef) DialGuest(ctx context.Context, addr string) (net.Conn, error) {
	sw := r.get()
	if sw == nil {
		return nil, errors.New("the grid network is not running (is the engine closing?)")
	}
	c, err := sw.DialGuest(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", addr, err)
	}
	return c, nil
}
