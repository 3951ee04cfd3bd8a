package seedbuild

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"gridlord/engine/console"
	"gridlord/engine/network"
	"gridlord/engine/ninep"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/qemu"
)

// InstallerOptions configures StartInstaller.
type InstallerOptions struct {
	// Dir is a scratch directory for the disks and the VM's sockets; it
	// must exist and its path must be short (unix socket paths are
	// limited to about 100 bytes).
	Dir string
	// TargetSize is the target disk's size in bytes (default 1 GiB).
	TargetSize int64
	// Sysname is the installer's name and shell prompt (default
	// "installer").
	Sysname string
	// BootTimeout bounds the boot to the shell prompt (default 5
	// minutes, for TCG on a loaded machine).
	BootTimeout time.Duration
	// Accel forces QEMU's accelerator ("tcg", …); empty means probe.
	Accel string
	// Log receives the engine's messages; nil discards them.
	Log *slog.Logger
	// Trace, if set, receives the 9P server's debug records (every
	// request and reply).
	Trace slog.Handler
	// Target is the target disk's path (default Dir/target.qcow2).
	Target string
	// Extra are files served on top of the distribution (ninep.Overlay):
	// what the recipe writes for the installer, such as a filtered
	// replica log.
	Extra map[string]ninep.Extra
}

// Installer is a running installer VM: the distribution's cpu kernel,
// booted from a boot disk (sdC0) made from the distribution, with the
// distribution's tree served over 9P2000 as its root and an empty target
// disk (sdC1, laid out by WriteTargetDisk) to install onto. It runs on a
// private switch of its own, where the tree is served at the host address
// on port 564 with no authentication.
type Installer struct {
	// Console is the installer's serial console.
	Console *console.Hub
	// Target is the path of the target disk (qcow2).
	Target string
	// Prompt matches the installer's shell prompt at the end of output.
	Prompt *regexp.Regexp

	name   string
	boot   string
	sup    *qemu.Supervisor
	sw     *network.Switch
	cancel context.CancelFunc
	served chan error
}

// StartInstaller boots an installer for d and waits for its shell prompt.
// On failure everything it started is stopped and its disks are removed;
// the error of a boot that went wrong ends with the console's last lines.
func StartInstaller(ctx context.Context, d *Distribution, opts InstallerOptions) (_ *Installer, err error) {
	if opts.Dir == "" {
		return nil, errors.New("installer: no scratch directory")
	}
	if opts.TargetSize == 0 {
		opts.TargetSize = 1 << 30
	}
	if opts.Sysname == "" {
		opts.Sysname = "installer"
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 5 * time.Minute
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	trace := slog.New(slog.DiscardHandler)
	if opts.Trace != nil {
		trace = slog.New(opts.Trace)
	}
	if opts.Target == "" {
		opts.Target = filepath.Join(opts.Dir, "target.qcow2")
	}
	root, err := ninep.Overlay(ninep.FromFS(d.FS, ninep.FSOptions{Meta: d.Meta}), opts.Extra)
	if err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	boot := filepath.Join(opts.Dir, "boot.img")
	return startVM(ctx, vmOptions{
		dir: opts.Dir, sysname: opts.Sysname, bootTimeout: opts.BootTimeout, accel: opts.Accel, log: log, trace: trace,
		root: root, boot: boot, target: opts.Target, removeTarget: true,
		prepare: func(host string) error {
			rec, err := installerNvram()
			if err != nil {
				return err
			}
			ini := InstallerIni(d.Kernel, opts.Sysname, host, host)
			if err := d.WriteBootDisk(boot, BootDisk{Ini: ini, Nvram: rec}); err != nil {
				return err
			}
			return d.WriteTargetDisk(opts.Target, opts.TargetSize)
		},
		what: d.Kernel,
	})
}

// vmOptions describes a VM startVM boots: its disks (a boot disk, removed
// when it stops, and a target), a tree served over 9P2000 at the host
// address, if any, and how to recognise its prompt.
type vmOptions struct {
	dir, sysname string
	bootTimeout  time.Duration
	accel        string
	log, trace   *slog.Logger
	// root, if set, is served on port 564 of the host address.
	root ninep.FS
	// boot, if set, is the first disk (raw); target the next (qcow2).
	boot, target string
	// removeTarget removes the target when the start fails.
	removeTarget bool
	// prepare writes the disks once the host address is known.
	prepare func(host string) error
	// what names the kernel in messages.
	what string
}

// startVM boots a VM on a switch of its own and waits for its shell
// prompt; on failure everything it started is stopped and its boot disk
// (and target, with removeTarget) removed.
func startVM(ctx context.Context, o vmOptions) (_ *Installer, err error) {
	in := &Installer{
		name:   "installer",
		boot:   o.boot,
		Target: o.target,
		Prompt: regexp.MustCompile(regexp.QuoteMeta(o.sysname) + `# $`),
		served: make(chan error, 1),
	}
	defer func() {
		if err != nil {
			in.stop()
			if o.removeTarget {
				os.Remove(in.Target)
			}
		}
	}()
	id := uuid.NewString()
	members, err := network.Plan(network.Config{}, []string{in.name}, map[string]string{in.name: id})
	if err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	if in.sw, err = network.New(network.Config{}, members, o.log); err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	host := in.sw.Config().HostIP
	if o.root != nil {
		// The tree over 9P2000 on the host's loopback, at the host
		// address on 564.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("installer: serve the distribution: %w", err)
		}
		srvCtx, cancel := context.WithCancel(context.Background())
		in.cancel = cancel
		srv := ninep.NewServer(o.root, ninep.Options{Logger: o.trace})
		go func() { in.served <- srv.Serve(srvCtx, ln) }()
		if err := in.sw.ExposeHost(564, ln.Addr().String()); err != nil {
			return nil, fmt.Errorf("installer: %w", err)
		}
	}
	if o.prepare != nil {
		if err := o.prepare(host); err != nil {
			return nil, fmt.Errorf("installer: %w", err)
		}
	}
	var disks []qemu.Disk
	if o.boot != "" {
		disks = append(disks, qemu.Disk{Path: o.boot, Format: "raw", Bus: qemu.BusIDE})
	}
	disks = append(disks, qemu.Disk{Path: o.target, Format: "qcow2", Bus: qemu.BusIDE})
	if in.sup, err = qemu.NewSupervisor(filepath.Join(o.dir, "vm"), in.sw, qemu.SupervisorOptions{Accel: o.accel, Log: o.log}); err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	n, err := in.sup.Start(ctx, qemu.Spec{
		Name: in.name, UUID: id, Arch: "i386", MemoryMiB: 512,
		Disks: disks,
		NICs:  []qemu.NIC{{Model: qemu.NICRTL8139, MAC: members[0].MAC}},
	})
	if err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	in.Console = n.Console
	e := console.NewExpecter(n.Console, true)
	defer e.Close()
	o.log.Info("booting", "kernel", o.what, "fs", host, "sysname", o.sysname)
	bootCtx, cancelBoot := context.WithTimeout(ctx, o.bootTimeout)
	defer cancelBoot()
	var m []string
	for {
		if m, err = e.Expect(bootCtx, bootEnd(o.sysname), 0); err != nil {
			return nil, fmt.Errorf("installer: no shell prompt: %w\nconsole:\n%s", err, lastLines(n.Console, 30))
		}
		if !harmlessBootLine(m[3]) {
			break
		}
	}
	switch {
	case m[2] != "":
		return nil, fmt.Errorf("installer: 9load could not load %s from the boot disk and asks where to boot from\nconsole:\n%s", o.what, lastLines(n.Console, 30))
	case m[3] != "":
		return nil, fmt.Errorf("installer: the kernel stopped: %s\nconsole:\n%s", m[3], lastLines(n.Console, 30))
	}
	return in, nil
}

// bootEnd matches how a boot ends: the shell prompt (group 1), 9load's
// prompt after it found no kernel it could load (2), or a line of a
// kernel panic or of the boot program's failure, such as "boot: settime
// mount: '/tmp' file does not exist" (3).
func bootEnd(sysname string) *regexp.Regexp {
	return regexp.MustCompile(`(` + regexp.QuoteMeta(sysname) + `# $)|(Boot from: $)|(?:^|\n)((?:panic|boot): [^\r\n]*)\r?\n`)
}

// harmlessBootLine reports whether a "boot:" line is one a kernel booting
// from its own disk prints on the way to a shell: with no USB hubs there is
// no /srv/usb ("boot: can't open /srv/usb: '/srv/usb' file does not
// exist"), and boot goes on.
func harmlessBootLine(line string) bool {
	return strings.HasPrefix(line, "boot: can't open /srv/usb")
}

// installerNvram is the installer's identity: host owner bootes, a
// throwaway password (nothing authenticates to the installer).
func installerNvram() (*nvram.Record, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	rec := &nvram.Record{AuthID: "bootes", AuthDom: "gridlord-install"}
	return rec, rec.SetPassword(hex.EncodeToString(b))
}

func lastLines(h *console.Hub, n int) string {
	var out string
	for _, l := range h.LastLines(n) {
		out += l + "\n"
	}
	return out
}

// stop ends the VM, the switch and the server and removes the boot disk.
func (in *Installer) stop() error {
	var errs []error
	if in.sup != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if in.Console != nil {
			if err := in.sup.Stop(ctx, in.name, 2*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		cancel()
		errs = append(errs, in.sup.Close())
	}
	if in.sw != nil {
		errs = append(errs, in.sw.Close())
	}
	if in.cancel != nil {
		in.cancel()
		errs = append(errs, <-in.served)
	}
	if in.boot != "" {
		if err := os.Remove(in.boot); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the installer and removes its boot disk; the target disk
// stays (remove it, or use it, as the build goes on).
func (in *Installer) Close() error {
	if err := in.stop(); err != nil {
		return fmt.Errorf("installer: stop: %w", err)
	}
	return nil
}
