package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gridlord/engine/console"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/mirror"
	"gridlord/engine/procstat"
	"gridlord/engine/qemu"
)

// serveGridfs serves e's file tree on a unix socket (loopback TCP on
// Windows) until ctx ends.
func serveGridfs(ctx context.Context, e *Engine, sock string, log *slog.Logger) error {
	ln, err := gridfs.Listen(sock)
	if err != nil {
		return err
	}
	return gridfs.Serve(ctx, ln, e, log)
}

// run runs op on the engine's context, so that it completes even when the
// caller (a gridfs client that died, a cancelled CLI) stops waiting; the
// caller's ctx only bounds the wait.
// Close waits for every operation started here before it detaches.
func (e *Engine) run(ctx context.Context, op func(context.Context) error) error {
	e.mu.Lock()
	if e.ctx.Err() != nil {
		e.mu.Unlock()
		return errors.New("the engine is shutting down; run the command again once it has restarted")
	}
	e.ops.Add(1)
	e.mu.Unlock()
	opCtx, cancel := e.ctx, context.CancelFunc(func() {})
	if gridfs.IsCancellable(ctx) {
		// The client can cancel it (gridfs.AttachedWord): it ends with
		// ctx, as well as with the engine.
		opCtx, cancel = context.WithCancel(e.ctx)
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
	}
	done := make(chan error, 1)
	go func() {
		defer e.ops.Done()
		defer cancel()
		done <- op(opCtx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if gridfs.IsCancellable(ctx) {
			return fmt.Errorf("%w (the engine cancels the command)", ctx.Err())
		}
		return fmt.Errorf("%w (the command keeps running in the engine)", ctx.Err())
	}
}

// GridJSON returns the current grid.json bytes.
func (e *Engine) GridJSON() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.g.Marshal()
}

// Grid returns a copy of the model.
func (e *Engine) Grid() (*grid.Grid, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.g.Copy()
}

// Nodes returns node names in grid order.
func (e *Engine) Nodes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.namesLocked()
}

// Ctl runs one grid command (see gridfs.Engine), checked against
// gridfs.GridVerbs: the model edits through grid.Apply (e.edit), the
// commands with side effects here.
func (e *Engine) Ctl(ctx context.Context, words []string) error {
	if err := gridfs.CheckCtl(words); err != nil {
		return err
	}
	args := words[1:]
	switch words[0] {
	case "up":
		return e.run(ctx, func(c context.Context) error { return e.Start(c) })
	case "down":
		return e.run(ctx, func(c context.Context) error { return e.Stop(c, false) })
	case "remove":
		return e.remove(args[0])
	case "clone":
		return e.run(ctx, func(c context.Context) error { _, err := e.Clone(c, args[0], args[1]); return err })
	case "outbound":
		if err := e.edit(func(g *grid.Grid) error { return grid.Apply(g, words) }); err != nil {
			return err
		}
		if e.anyVMRunning() {
			e.log.Info("outbound traffic setting changed; it applies when the grid restarts (gridlord down, then up)", "outbound", args[0])
		}
		return nil
	case "mirror":
		switch args[0] {
		case "add":
			_, err := e.mirrors.Add(args[1])
			return err
		case "rm":
			return e.mirrors.Remove(args[1])
		case "verify":
			return e.run(ctx, func(c context.Context) error {
				rep, err := e.mirrors.Verify(c, args[1])
				if err != nil {
					return err
				}
				if !rep.OK() {
					return fmt.Errorf("mirror %s does not hold every block of the grid's venti: %d missing, %d wrong (of %d); %s", rep.Addr, rep.Missing, rep.Wrong, rep.Blocks, strings.Join(rep.Problems, "; "))
				}
				return nil
			})
		}
		return fmt.Errorf("mirror %q: want add, rm or verify", args[0])
	case "failover":
		if err := e.edit(func(g *grid.Grid) error { return grid.Apply(g, words) }); err != nil {
			return err
		}
		if err := e.exposeFailover(); err != nil {
			return err
		}
		if args[0] != "off" {
			e.log.Info("fossils archiving to the embedded venti use the failover venti from their next boot", "mirror", args[0])
		}
		return nil
	case "venti":
		switch args[0] {
		case "start":
			return e.SetVenti(true)
		case "stop":
			return e.SetVenti(false)
		}
		return fmt.Errorf("venti %q: want venti start or venti stop", args[0])
	case "save":
		return e.run(ctx, func(c context.Context) error { _, err := e.Save(c, args[0], args[1]); return err })
	case "spawn":
		name := ""
		switch {
		case len(args) == 3 && args[1] == "as":
			name = args[2]
		case len(args) != 1:
			return fmt.Errorf("spawn %s: want spawn SNAPSHOT [as NEWNODE]", strings.Join(args, " "))
		}
		return e.run(ctx, func(c context.Context) error { _, err := e.Spawn(c, args[0], name); return err })
	case "boom":
		return e.run(ctx, func(c context.Context) error { return e.Boom(c, args[0]) })
	case "seed":
		if args[0] != "import" {
			return fmt.Errorf("seed %q: want seed import NAME PATH [key=value ...]", args[0])
		}
		opts, err := parseImportOptions(args[3:])
		if err != nil {
			return err
		}
		return e.run(ctx, func(c context.Context) error { _, err := e.ImportSeed(c, args[1], args[2], opts); return err })
	}
	return e.edit(func(g *grid.Grid) error { return grid.Apply(g, words) })
}

// parseImportOptions reads seed import's key=value options.
func parseImportOptions(kvs []string) (ImportOptions, error) {
	var o ImportOptions
	var b DirectBoot
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return o, fmt.Errorf("seed import: option %q is not key=value", kv)
		}
		switch k {
		case "like":
			o.Like = v
		case "kernel":
			b.Kernel = v
		case "initrd":
			b.Initrd = v
		case "append":
			b.Append = v
		case "ready":
			b.Ready = v
		case "nic":
			b.NIC = v
		case "arch":
			b.Arch = v
		case "setup":
			kind, line, ok := strings.Cut(v, ":")
			if !ok || !grid.Kind(kind).Valid() {
				return o, fmt.Errorf("seed import: setup=%q must be KIND:LINE with a node kind", v)
			}
			if b.Setup == nil {
				b.Setup = map[string][]string{}
			}
			b.Setup[kind] = append(b.Setup[kind], line)
		default:
			return o, fmt.Errorf("seed import: unknown option %q (like, kernel, initrd, append, ready, setup, nic, arch)", k)
		}
	}
	if b.Kernel != "" || b.Initrd != "" || b.Append != "" || b.Ready != "" || b.Setup != nil {
		o.Boot = &b
	}
	return o, nil
}

// edit changes the model, saves it and writes the new configuration to the
// disks of affected nodes that are stopped; running ones stay pending until
// their next start.
func (e *Engine) edit(change func(*grid.Grid) error) error {
	e.mu.Lock()
	if err := change(e.g); err != nil {
		e.mu.Unlock()
		return err
	}
	if err := e.saveLocked(); err != nil {
		e.mu.Unlock()
		return err
	}
	e.mu.Unlock()
	e.refreshSwitch()
	e.mu.Lock()
	var pending []nodeRef
	for _, n := range e.g.Pending() {
		if n.HasVM() {
			pending = append(pending, refOf(n))
		}
	}
	e.mu.Unlock()
	var errs []error
	for _, r := range pending {
		disk, err := e.diskPath(r.id)
		if err != nil {
			continue
		}
		if _, err := os.Stat(disk); err != nil {
			continue // configured when its disk is made
		}
		_, st, err := e.ref(r.name)
		if err != nil {
			continue
		}
		if !st.op.TryLock() {
			continue // busy: its start or reset configures it
		}
		if e.vmNode(r.id) == nil {
			errs = append(errs, e.applyConfig(r.id, disk))
		}
		st.op.Unlock()
	}
	return errors.Join(errs...)
}

// remove deletes a stopped node and its directory.
func (e *Engine) remove(name string) error {
	r, st, err := e.ref(name)
	if err != nil {
		return err
	}
	st.op.Lock()
	defer st.op.Unlock()
	if r.hasVM && e.vmNode(r.id) != nil {
		return fmt.Errorf("node %s is running: stop it before removing it", name)
	}
	e.mu.Lock()
	n := e.g.Node(name)
	dir := ""
	if n != nil {
		dir = e.g.NodeDir(n)
	}
	err = e.g.RemoveNode(name)
	if err == nil {
		delete(e.states, r.id)
		err = e.saveLocked()
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s's directory: %w", name, err)
		}
	}
	return nil
}

// NodeCtl runs one node command (see gridfs.Engine), checked against
// gridfs.NodeVerbs; wire, unwire, rewire and clone are the grid's commands
// with the node first.
func (e *Engine) NodeCtl(ctx context.Context, node string, words []string) error {
	if _, _, err := e.ref(node); err != nil {
		return err
	}
	if err := gridfs.CheckNodeCtl(words); err != nil {
		return err
	}
	switch words[0] {
	case "start":
		return e.run(ctx, func(c context.Context) error { return e.Start(c, node) })
	case "stop":
		return e.run(ctx, func(c context.Context) error { return e.Stop(c, false, node) })
	case "poweroff":
		return e.run(ctx, func(c context.Context) error { return e.Stop(c, true, node) })
	case "reset":
		return e.run(ctx, func(c context.Context) error { return e.Reset(c, node) })
	}
	return e.Ctl(ctx, []string{words[0], node, words[1]})
}

// NodeStatus is the node's one-line state (gridfs.NodeStatus.Format).
func (e *Engine) NodeStatus(node string) (string, error) {
	st, err := e.Status(node)
	if err != nil {
		return "", err
	}
	return st.Format(), nil
}

// Status is the node's state, its VM's pid and forwards, and whether its
// configuration or password is pending or still the seed's.
func (e *Engine) Status(node string) (gridfs.NodeStatus, error) {
	r, _, err := e.ref(node)
	if err != nil {
		return gridfs.NodeStatus{}, err
	}
	e.mu.Lock()
	n := e.g.Node(node)
	st := e.stateLocked(r.id)
	s := gridfs.NodeStatus{State: st.state, Err: st.err, Kind: string(r.kind), IP: r.ip, Pending: n.Pending(), DefaultPassword: e.defaultPasswordLocked(n)}
	e.mu.Unlock()
	if !r.hasVM {
		state := StateRunning
		if !e.VentiRunning() {
			state = StateStopped
		}
		return gridfs.NodeStatus{State: state, Kind: string(grid.KindVenti), Embedded: true, IP: r.ip, Addr: e.VentiAddr()}, nil
	}
	if vm := e.vms.VM(r.id.String()); vm != nil {
		info := vm.Info()
		if live(vm) {
			s.PID = info.PID
			if s.State == StateStopped || s.State == StateFailed {
				s.State = StateRunning
			}
			e.measure(vm, &s)
		} else if s.State == StateRunning {
			s.State = StateStopped
		}
	}
	if sw := e.sw.get(); sw != nil && s.PID != 0 {
		for _, f := range sw.Forwards(r.id.String()) {
			s.Forwards = append(s.Forwards, gridfs.Forward{GuestPort: f.GuestPort, Host: f.Host})
		}
	}
	return s, nil
}

// measure fills in the live figures of a running VM's process, when they
// can be measured (see procstat).
func (e *Engine) measure(vm VM, s *gridfs.NodeStatus) {
	var f procstat.Figures
	var err error
	if m, ok := vm.(Measurer); ok {
		f, err = m.Figures()
	} else if s.PID > 0 {
		f, err = e.meter.Measure(s.PID)
	} else {
		return
	}
	if err == nil {
		s.Measured, s.Uptime, s.CPU, s.RSS = true, f.Uptime, f.CPU, f.RSS
	}
}

// NodeIni returns the plan9.ini on the node's disk, or, before the disk
// exists, the owned keys it will get.
func (e *Engine) NodeIni(node string) ([]byte, error) {
	r, _, err := e.ref(node)
	if err != nil {
		return nil, err
	}
	if !r.hasVM {
		return nil, fmt.Errorf("%s is the embedded venti: it has no plan9.ini", node)
	}
	disk, err := e.DiskPath(node)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(disk); err == nil {
		return ReadDiskIni(disk)
	}
	e.mu.Lock()
	cfg, err := e.g.Config(node)
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, kv := range cfg.Ini {
		fmt.Fprintf(&b, "%s=%s\n", kv.Key, kv.Value)
	}
	return []byte(b.String()), nil
}

// Console returns the console hub of a node whose VM this engine runs.
func (e *Engine) Console(node string) (*console.Hub, error) {
	r, _, err := e.ref(node)
	if err != nil {
		return nil, err
	}
	if !r.hasVM {
		return nil, fmt.Errorf("%s is the embedded venti: it has no console", node)
	}
	vm := e.vms.VM(r.id.String())
	if vm == nil {
		return nil, fmt.Errorf("node %s has not been started by this engine: no console", node)
	}
	return vm.Console(), nil
}

// NodeLog returns the node's console log on disk.
func (e *Engine) NodeLog(node string) ([]byte, error) {
	e.mu.Lock()
	n := e.g.Node(node)
	var dir string
	if n != nil {
		dir = e.g.NodeDir(n)
	}
	e.mu.Unlock()
	if n == nil {
		return nil, fmt.Errorf("no node %s in the grid", node)
	}
	b, err := os.ReadFile(filepath.Join(dir, qemu.FileConsoleLog))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// VentiMirrors returns the table of the venti's mirrors (empty: none).
func (e *Engine) VentiMirrors() ([]byte, error) {
	sts := e.mirrors.Status()
	if len(sts) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	err := mirror.WriteStatus(&b, sts, nil)
	return b.Bytes(), err
}

// VentiStats returns the embedded venti's statistics as "key value" lines.
func (e *Engine) VentiStats() ([]byte, error) {
	s := e.store.Stats()
	var b strings.Builder
	fmt.Fprintf(&b, "addr %s\n", e.VentiAddr())
	fmt.Fprintf(&b, "dir %s\n", e.store.Dir())
	fmt.Fprintf(&b, "blocks %d\n", s.Blocks)
	fmt.Fprintf(&b, "storedbytes %d\n", s.StoredBytes)
	fmt.Fprintf(&b, "logbytes %d\n", s.LogBytes)
	fmt.Fprintf(&b, "arenas %d\n", s.Arenas)
	fmt.Fprintf(&b, "clientwrites %d\n", s.ClientWrites)
	fmt.Fprintf(&b, "clientbytes %d\n", s.ClientBytes)
	fmt.Fprintf(&b, "dedupratio %.3f\n", s.DedupRatio)
	fmt.Fprintf(&b, "indexentries %d\n", s.IndexEntries)
	return []byte(b.String()), nil
}
