package qemu

import (
	"gridlord/engine/atomicfile"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// State is a VM's lifecycle state.
type State string

// Lifecycle: Stopped -> Starting -> Running -> Stopping -> Stopped, or
// Failed from any state when QEMU dies unexpectedly or cannot start.
const (
	Stopped  State = "stopped"
	Starting State = "starting"
	Running  State = "running"
	Stopping State = "stopping"
	Failed   State = "failed"
)

// Info is a snapshot of a VM.
type Info struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	PID   int    `json:"pid,omitempty"`
	Accel string `json:"accel,omitempty"`
	Files Files  `json:"files"`
	// Exit describes how QEMU ended ("exit status 0", "signal: killed",
	// "unknown (adopted process)"), once it has.
	Exit string `json:"exit,omitempty"`
	// Err says why the VM failed.
	Err string `json:"err,omitempty"`
	// LastLines are the last console lines (and QEMU messages) at failure.
	LastLines []string `json:"lastLines,omitempty"`
	// Adopted is true when this engine found the VM already running.
	Adopted bool `json:"adopted,omitempty"`
}

// Options configures Start and Adopt.
type Options struct {
	// Accel forces the accelerator; empty means Spec.Accel, else ChooseAccel.
	Accel string
	// CacheDir caches the accelerator probe; empty disables the cache.
	CacheDir string
	// Log receives lifecycle messages; nil discards them.
	Log *slog.Logger
	// ConsoleTail returns the last n console lines; it fills
	// Info.LastLines when the VM fails. Optional.
	ConsoleTail func(n int) []string
	// BeforeRun is called once QEMU is up with its CPUs still paused
	// (Start only), so consoles and NICs can be connected before the guest
	// prints or sends anything. An error aborts the start.
	BeforeRun func(ctx context.Context, v *VM) error
	// OnState is called (from the VM's goroutines, not concurrently) after
	// every state change. Optional.
	OnState func(Info)
	// StartTimeout bounds the wait for QEMU's QMP socket (default 30 s).
	StartTimeout time.Duration
	// QMPTimeout bounds every QMP command (default 5 s).
	QMPTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.QMPTimeout <= 0 {
		o.QMPTimeout = 5 * time.Second
	}
}

// record is vm.json: what a restarted engine needs to re-adopt the VM.
type record struct {
	Spec      Spec      `json:"spec"`
	Files     Files     `json:"files"`
	PID       int       `json:"pid"`
	Accel     string    `json:"accel"`
	Binary    string    `json:"binary"`
	Args      []string  `json:"args"`
	StartedAt time.Time `json:"startedAt"`
}

// VM is one QEMU process. Exactly one goroutine waits for the process (for
// a VM this engine started) or polls for it (for an adopted one); all
// methods are safe for concurrent use.
type VM struct {
	opts Options
	rec  record
	mon  *Monitor

	mu          sync.Mutex
	info        Info
	sawShutdown string // reason of QMP SHUTDOWN, if seen

	exited chan exitNote // fed once by the waiter or poller
	done   chan struct{} // closed when the VM has stopped or failed
	quit   chan struct{} // closed by Detach
	cbmu   sync.Mutex    // serializes OnState calls
	cmd    *exec.Cmd     // nil when adopted
	logf   *os.File      // QEMU's stdout/stderr file (started VMs)
	onceQ  sync.Once     // closes quit
}

type exitNote struct {
	desc  string // "exit status 0", "signal: killed", ...
	clean bool   // exit status 0
	known bool   // false for adopted processes
}

// Start launches the VM for spec with its runtime files in dir (created if
// needed) and returns once QMP reports it running. On failure nothing is
// left running, and the runtime files it made are removed.
func Start(ctx context.Context, spec Spec, dir string, opts Options) (*VM, error) {
	opts.defaults()
	spec, err := spec.Validate()
	if err != nil {
		return nil, err
	}
	binary, err := exec.LookPath(spec.BinaryName())
	if err != nil {
		return nil, notInstalled(spec.BinaryName(), err)
	}
	for _, p := range []string{spec.Kernel, spec.Initrd} {
		if p != "" {
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("node %s: boot file: %w", spec.Name, err)
			}
		}
	}
	for _, d := range spec.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return nil, fmt.Errorf("node %s: %w: %s: %v", spec.Name, ErrDiskMissing, d.Path, err)
		}
	}
	if rec, err := readRecord(dir); err == nil && processAlive(rec.PID, rec.Files.QMP.Address) {
		return nil, fmt.Errorf("node %s: %w (pid %d); adopt or stop it first", spec.Name, ErrAlreadyRunning, rec.PID)
	}
	accel := opts.Accel
	if accel == "" {
		accel = spec.Accel
	}
	if accel == "" {
		if accel, err = ChooseAccel(ctx, binary, opts.CacheDir, opts.Log); err != nil {
			return nil, err
		}
	}
	_, statErr := os.Stat(dir)
	createdDir := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node %s: state directory: %w", spec.Name, err)
	}
	files, err := runtimeFiles(dir, len(spec.NICs))
	if err != nil {
		return nil, err
	}
	_, args, err := Cmdline(spec, files, accel)
	if err != nil {
		cleanupDir(dir, files, createdDir)
		return nil, err
	}
	args = append(args, "-S") // CPUs start paused; BeforeRun, then cont
	removeSockets(files)      // stale sockets of a dead QEMU
	logf, err := os.Create(filepath.Join(dir, FileQEMULog))
	if err != nil {
		cleanupDir(dir, files, createdDir)
		return nil, fmt.Errorf("node %s: %w", spec.Name, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	detach(cmd)
	v := &VM{
		opts:   opts,
		cmd:    cmd,
		logf:   logf,
		exited: make(chan exitNote, 1),
		done:   make(chan struct{}),
		quit:   make(chan struct{}),
		rec: record{Spec: spec, Files: files, Accel: accel, Binary: binary,
			Args: args, StartedAt: time.Now().UTC()},
		info: Info{Name: spec.Name, State: Stopped, Accel: accel, Files: files},
	}
	opts.Log.Debug("starting QEMU", "node", spec.Name, "cmd", binary+" "+strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		cleanupDir(dir, files, createdDir)
		return nil, fmt.Errorf("node %s: start %s: %w", spec.Name, binary, err)
	}
	v.rec.PID = cmd.Process.Pid
	v.setState(func(i *Info) { i.State = Starting; i.PID = cmd.Process.Pid })
	go func() {
		err := cmd.Wait()
		logf.Close()
		n := exitNote{desc: "exit status 0", clean: err == nil, known: true}
		if err != nil {
			n.desc = err.Error()
		}
		v.exited <- n
	}()
	fail := func(err error) (*VM, error) {
		killProcess(cmd.Process.Pid)
		<-v.exitedPeek()
		cleanupDir(dir, files, createdDir)
		v.setState(func(i *Info) { i.State = Failed; i.Err = err.Error() })
		return nil, err
	}
	if err := writeRecord(dir, v.rec); err != nil {
		return fail(fmt.Errorf("node %s: record: %w", spec.Name, err))
	}
	mon, err := v.dialQMP(ctx)
	if err != nil {
		return fail(err)
	}
	v.mon = mon
	go v.readEvents()
	if opts.BeforeRun != nil {
		if err := opts.BeforeRun(ctx, v); err != nil {
			mon.Disconnect()
			return fail(fmt.Errorf("node %s: %w", spec.Name, err))
		}
	}
	if err := mon.Resume(ctx); err != nil {
		mon.Disconnect()
		return fail(fmt.Errorf("node %s: start CPUs: %w", spec.Name, err))
	}
	if st, err := mon.Status(ctx); err != nil {
		mon.Disconnect()
		return fail(fmt.Errorf("node %s: QEMU status after starting its CPUs: %w", spec.Name, err))
	} else if st != "running" {
		mon.Disconnect()
		return fail(fmt.Errorf("node %s: QEMU is %q after starting its CPUs, not running; see its log", spec.Name, st))
	}
	v.setState(func(i *Info) { i.State = Running })
	go v.watch()
	return v, nil
}

// exitedPeek waits for the process to exit and puts the note back for
// watch (used only on the start failure path, where watch never runs).
func (v *VM) exitedPeek() <-chan struct{} {
	c := make(chan struct{})
	go func() {
		n := <-v.exited
		v.exited <- n
		close(c)
	}()
	return c
}

// dialQMP waits for QEMU's QMP socket, failing fast when QEMU exits.
func (v *VM) dialQMP(ctx context.Context) (*Monitor, error) {
	name := v.rec.Spec.Name
	ctx, cancel := context.WithTimeout(ctx, v.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(30 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(v.rec.Files.QMP.Address); err == nil || v.rec.Files.QMP.Network == "tcp" {
			m, err := DialMonitor(ctx, v.rec.Files.QMP, v.opts.QMPTimeout)
			if err == nil {
				return m, nil
			}
		}
		select {
		case n := <-v.exited:
			v.exited <- n
			return nil, fmt.Errorf("node %s: QEMU exited at start (%s): %w", name, n.desc, classifyQEMUError(v.qemuLog()))
		case <-ctx.Done():
			return nil, fmt.Errorf("node %s: QEMU did not open its QMP socket %s: %w", name, v.rec.Files.QMP, ctx.Err())
		case <-tick.C:
		}
	}
}

func (v *VM) qemuLog() string {
	b, _ := os.ReadFile(filepath.Join(v.rec.Files.Dir, FileQEMULog))
	if len(b) > 8192 {
		b = b[len(b)-8192:]
	}
	return string(b)
}

// Adopt finds the VM recorded in dir by an earlier engine and takes it over
// if its QEMU is still running. A dead VM's stale files are removed and the
// error wraps os.ErrNotExist.
func Adopt(ctx context.Context, dir string, opts Options) (*VM, error) {
	opts.defaults()
	rec, err := readRecord(dir)
	if err != nil {
		return nil, err
	}
	if !processAlive(rec.PID, rec.Files.QMP.Address) {
		removeRuntime(rec.Files)
		return nil, fmt.Errorf("node %s: QEMU pid %d is gone: %w", rec.Spec.Name, rec.PID, os.ErrNotExist)
	}
	v := &VM{
		opts:   opts,
		rec:    rec,
		exited: make(chan exitNote, 1),
		done:   make(chan struct{}),
		quit:   make(chan struct{}),
		info:   Info{Name: rec.Spec.Name, State: Starting, PID: rec.PID, Accel: rec.Accel, Files: rec.Files, Adopted: true},
	}
	mon, err := DialMonitor(ctx, rec.Files.QMP, opts.QMPTimeout)
	if err != nil {
		return nil, fmt.Errorf("node %s: adopt pid %d: %w", rec.Spec.Name, rec.PID, err)
	}
	v.mon = mon
	st, err := mon.Status(ctx)
	if err != nil {
		mon.Disconnect()
		return nil, fmt.Errorf("node %s: adopt pid %d: %w", rec.Spec.Name, rec.PID, err)
	}
	go v.readEvents()
	go v.poll()
	v.setState(func(i *Info) { i.State = Running })
	opts.Log.Info("adopted running VM", "node", rec.Spec.Name, "pid", rec.PID, "qemuStatus", st)
	go v.watch()
	return v, nil
}

// poll watches an adopted process, which this engine cannot wait for.
func (v *VM) poll() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-v.quit:
			return
		case <-v.mon.Done():
		case <-t.C:
		}
		if !processAlive(v.rec.PID, v.rec.Files.QMP.Address) {
			v.exited <- exitNote{desc: "unknown (adopted process)"}
			return
		}
		select {
		case <-v.mon.Done():
			time.Sleep(50 * time.Millisecond) // QMP gone: the process follows soon
		default:
		}
	}
}

func (v *VM) readEvents() {
	evs, _ := v.mon.Events(context.Background())
	for ev := range evs {
		if ev.Event == "SHUTDOWN" {
			reason, _ := ev.Data["reason"].(string)
			v.mu.Lock()
			v.sawShutdown = reason
			v.mu.Unlock()
			v.opts.Log.Debug("QEMU shutdown event", "node", v.rec.Spec.Name, "reason", reason)
		}
	}
}

// watch turns the process's exit into the final state.
func (v *VM) watch() {
	var n exitNote
	select {
	case n = <-v.exited:
	case <-v.quit:
		return
	}
	v.mon.Disconnect()
	v.mu.Lock()
	state, reason := v.info.State, v.sawShutdown
	v.mu.Unlock()
	// A stop we asked for, or a guest poweroff (QMP SHUTDOWN then exit 0),
	// ends in Stopped; anything else is a failure.
	ok := state == Stopping || (reason != "" && (n.clean || !n.known))
	var lines []string
	if !ok {
		if v.opts.ConsoleTail != nil {
			lines = v.opts.ConsoleTail(20)
		}
		if l := lastMeaningfulLine(v.qemuLog()); l != "" {
			lines = append(lines, "qemu: "+l)
		}
	}
	removeRuntime(v.rec.Files)
	v.setState(func(i *Info) {
		i.Exit = n.desc
		if ok {
			i.State = Stopped
			return
		}
		i.State = Failed
		i.Err = "QEMU exited unexpectedly (" + n.desc + ")"
		i.LastLines = lines
	})
	close(v.done)
}

func (v *VM) setState(f func(*Info)) {
	v.mu.Lock()
	f(&v.info)
	info := v.info
	v.mu.Unlock()
	v.opts.Log.Debug("VM state", "node", info.Name, "state", info.State)
	if v.opts.OnState != nil {
		v.cbmu.Lock()
		v.opts.OnState(info)
		v.cbmu.Unlock()
	}
}

// Info returns a snapshot of the VM.
func (v *VM) Info() Info {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := v.info
	i.LastLines = append([]string(nil), i.LastLines...)
	return i
}

// Name is the node's name.
func (v *VM) Name() string { return v.rec.Spec.Name }

// Spec is the validated spec the VM runs.
func (v *VM) Spec() Spec { return v.rec.Spec }

// Files are the VM's sockets and directory.
func (v *VM) Files() Files { return v.rec.Files }

// Cmdline is the QEMU command line, for logs ("to reproduce").
func (v *VM) Cmdline() string { return v.rec.Binary + " " + strings.Join(v.rec.Args, " ") }

// Done is closed once the VM has stopped or failed. It is never closed for
// a detached VM.
func (v *VM) Done() <-chan struct{} { return v.done }

// Monitor is the VM's QMP connection, owned by the VM.
func (v *VM) Monitor() *Monitor { return v.mon }

// Status asks QEMU for its run state over QMP.
func (v *VM) Status(ctx context.Context) (string, error) { return v.mon.Status(ctx) }

// Powerdown presses the ACPI power button; the guest decides what to do.
func (v *VM) Powerdown(ctx context.Context) error { return v.mon.Powerdown(ctx) }

// Reset resets the machine.
func (v *VM) Reset(ctx context.Context) error { return v.mon.Reset(ctx) }

// Pause stops the virtual CPUs (QMP stop).
func (v *VM) Pause(ctx context.Context) error { return v.mon.Pause(ctx) }

// Resume restarts the virtual CPUs (QMP cont).
func (v *VM) Resume(ctx context.Context) error { return v.mon.Resume(ctx) }

// Stop shuts the VM down by the ladder: ACPI power button and up to grace
// for the guest to power off, then QMP quit, then kill. It returns once
// QEMU has exited, with the errors of the steps that failed joined; if ctx
// ends first it returns without escalating and the VM keeps shutting down.
func (v *VM) Stop(ctx context.Context, grace time.Duration) error {
	v.mu.Lock()
	st := v.info.State
	if st == Running || st == Starting {
		v.info.State = Stopping
	}
	v.mu.Unlock()
	if st == Stopped || st == Failed {
		return nil
	}
	v.setState(func(*Info) {})
	var errs []error
	wait := func(d time.Duration) bool {
		select {
		case <-v.done:
			return true
		case <-time.After(d):
			return false
		case <-ctx.Done():
			return false
		}
	}
	if err := v.mon.Powerdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("powerdown: %w", err))
	}
	if wait(grace) {
		return nil
	}
	if ctx.Err() != nil {
		// The caller stopped waiting: do not escalate to quit and kill,
		// which could lose what the guest has not flushed yet.
		return fmt.Errorf("node %s: stop: %w (the VM is still shutting down; call Stop again to quit or kill it)", v.rec.Spec.Name, ctx.Err())
	}
	if err := v.mon.Quit(ctx); err != nil {
		errs = append(errs, fmt.Errorf("quit: %w", err))
	}
	if wait(5 * time.Second) {
		return nil
	}
	if err := killProcess(v.rec.PID); err != nil {
		errs = append(errs, fmt.Errorf("kill pid %d: %w", v.rec.PID, err))
	}
	if wait(5 * time.Second) {
		return nil
	}
	errs = append(errs, fmt.Errorf("QEMU pid %d did not exit", v.rec.PID))
	return fmt.Errorf("node %s: stop: %w", v.rec.Spec.Name, errors.Join(errs...))
}

// Detach lets go of the VM without stopping it: the QMP connection is
// closed and the record stays, so a later Adopt can take it over. The VM
// object is inert afterwards.
func (v *VM) Detach() {
	v.onceQ.Do(func() { close(v.quit) })
	v.mon.Disconnect()
}

func runtimeFiles(dir string, nics int) (Files, error) {
	if runtime.GOOS != "windows" {
		return UnixFiles(dir, nics), nil
	}
	// Windows: loopback TCP ports, picked free now (QEMU binds them at once).
	f := Files{Dir: dir}
	ports := make([]Endpoint, 0, nics+2)
	for i := 0; i < nics+2; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return f, fmt.Errorf("allocate a loopback port: %w", err)
		}
		ports = append(ports, Endpoint{"tcp", l.Addr().String()})
		l.Close()
	}
	f.QMP, f.Serial, f.NICs = ports[0], ports[1], ports[2:]
	return f, nil
}

func readRecord(dir string) (record, error) {
	var rec record
	b, err := os.ReadFile(filepath.Join(dir, FileState))
	if err != nil {
		return rec, fmt.Errorf("read VM record: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("parse VM record %s: %w", filepath.Join(dir, FileState), err)
	}
	return rec, nil
}

func writeRecord(dir string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, FileState), b, 0o644)
}

func removeSockets(f Files) {
	for _, e := range append([]Endpoint{f.QMP, f.Serial}, f.NICs...) {
		if e.Network == "unix" {
			os.Remove(e.Address)
		}
	}
}

// removeRuntime removes the record and sockets of a VM that has exited.
func removeRuntime(f Files) {
	removeSockets(f)
	os.Remove(filepath.Join(f.Dir, FileState))
}

// cleanupDir undoes a failed start: runtime files, and the directory when
// Start created it.
func cleanupDir(dir string, f Files, created bool) {
	removeRuntime(f)
	if created {
		os.RemoveAll(dir)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
