// Package qemu runs one QEMU process per grid node: it builds the command
// line from a small declarative Spec, picks an accelerator that is proven to
// work, talks QMP to the process, tracks its lifecycle (stopped -> starting
// -> running -> stopping -> stopped, or failed) and records what a restarted
// engine needs to find and re-adopt a still-running VM.
//
// Every socket the engine uses (QMP, serial console, NIC) is a server inside
// QEMU that the engine dials, so a new engine process can reconnect to all
// of them after a restart; see Supervisor.
package qemu

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
)

// Spec declares one node's virtual machine. It is plain data, saved as JSON
// in the node's directory.
type Spec struct {
	// Name identifies the node; letters, digits, '.', '_' and '-' only.
	Name string `json:"name"`
	// UUID is the node's identity, passed to QEMU as -uuid when set.
	UUID string `json:"uuid,omitempty"`
	// Arch is "x86_64" (the default) or "i386"; it picks qemu-system-ARCH.
	Arch string `json:"arch,omitempty"`
	// Binary overrides the QEMU executable (a name on PATH or a path).
	Binary string `json:"binary,omitempty"`
	// MemoryMiB is the guest RAM in MiB (default 256).
	MemoryMiB int `json:"memoryMiB,omitempty"`
	// CPUs is the number of virtual CPUs (default 1).
	CPUs int `json:"cpus,omitempty"`
	// Disks are attached in order.
	Disks []Disk `json:"disks,omitempty"`
	// Kernel, Initrd and Append boot a kernel directly (-kernel and friends).
	Kernel string `json:"kernel,omitempty"`
	Initrd string `json:"initrd,omitempty"`
	Append string `json:"append,omitempty"`
	// NICs are the network cards, each attached to a switch endpoint.
	NICs []NIC `json:"nics,omitempty"`
	// Display opens a window when true; the default is -display none.
	Display bool `json:"display,omitempty"`
	// VGA adds a standard VGA card (for screendumps) even without a window.
	VGA bool `json:"vga,omitempty"`
	// Accel forces an accelerator ("kvm", "hvf", "whpx", "tcg"); empty
	// means the probed best one (see ProbeAccel).
	Accel string `json:"accel,omitempty"`
}

// Bus is how a disk is attached.
type Bus string

// Disk buses. Plan 9 kernels want IDE; virtio is faster where supported.
const (
	BusIDE    Bus = "ide"
	BusVirtio Bus = "virtio"
)

// Disk is one disk image.
type Disk struct {
	// Path of the image file.
	Path string `json:"path"`
	// Format is "qcow2" or "raw" (default qcow2).
	Format string `json:"format,omitempty"`
	// Bus is ide (default) or virtio.
	Bus Bus `json:"bus,omitempty"`
	// ReadOnly attaches the image read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// NIC models QEMU can emulate for our guests.
const (
	NICRTL8139 = "rtl8139"
	NICE1000   = "e1000"
	NICVirtio  = "virtio-net-pci"
)

// NIC is one network card.
type NIC struct {
	// Model is rtl8139, e1000 or virtio-net-pci (default e1000).
	Model string `json:"model,omitempty"`
	// MAC is the card's fixed address, "52:54:00:xx:xx:xx".
	MAC string `json:"mac"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks the spec and fills in defaults, returning a copy.
func (s Spec) Validate() (Spec, error) {
	if !nameRE.MatchString(s.Name) {
		return s, fmt.Errorf("node name %q: use 1-63 letters, digits, '.', '_' or '-'", s.Name)
	}
	switch s.Arch {
	case "":
		s.Arch = "x86_64"
	case "x86_64", "i386":
	default:
		return s, fmt.Errorf("node %s: arch %q: want x86_64 or i386", s.Name, s.Arch)
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = 256
	}
	if s.MemoryMiB < 16 || s.MemoryMiB > 1<<20 {
		return s, fmt.Errorf("node %s: memory %d MiB out of range 16..1048576", s.Name, s.MemoryMiB)
	}
	if s.CPUs == 0 {
		s.CPUs = 1
	}
	if s.CPUs < 1 || s.CPUs > 64 {
		return s, fmt.Errorf("node %s: %d CPUs out of range 1..64", s.Name, s.CPUs)
	}
	s.Disks = append([]Disk(nil), s.Disks...)
	for i := range s.Disks {
		d := &s.Disks[i]
		if d.Path == "" {
			return s, fmt.Errorf("node %s: disk %d has no path", s.Name, i)
		}
		if strings.Contains(d.Path, ",") {
			return s, fmt.Errorf("node %s: disk path %q contains a comma, which QEMU cannot take", s.Name, d.Path)
		}
		if d.Format == "" {
			d.Format = "qcow2"
		}
		if d.Format != "qcow2" && d.Format != "raw" {
			return s, fmt.Errorf("node %s: disk %s: format %q: want qcow2 or raw", s.Name, d.Path, d.Format)
		}
		if d.Bus == "" {
			d.Bus = BusIDE
		}
		if d.Bus != BusIDE && d.Bus != BusVirtio {
			return s, fmt.Errorf("node %s: disk %s: bus %q: want ide or virtio", s.Name, d.Path, d.Bus)
		}
	}
	if n := ideCount(s.Disks); n > 4 {
		return s, fmt.Errorf("node %s: %d IDE disks; at most 4 fit on the two IDE buses", s.Name, n)
	}
	s.NICs = append([]NIC(nil), s.NICs...)
	for i := range s.NICs {
		n := &s.NICs[i]
		if n.Model == "" {
			n.Model = NICE1000
		}
		switch n.Model {
		case NICRTL8139, NICE1000, NICVirtio:
		default:
			return s, fmt.Errorf("node %s: NIC model %q: want rtl8139, e1000 or virtio-net-pci", s.Name, n.Model)
		}
		mac, err := net.ParseMAC(n.MAC)
		if err != nil || len(mac) != 6 {
			return s, fmt.Errorf("node %s: NIC %d: bad MAC %q", s.Name, i, n.MAC)
		}
		n.MAC = mac.String()
	}
	if (s.Initrd != "" || s.Append != "") && s.Kernel == "" {
		return s, fmt.Errorf("node %s: initrd or append given without a kernel", s.Name)
	}
	switch s.Accel {
	case "", "kvm", "hvf", "whpx", "tcg":
	default:
		return s, fmt.Errorf("node %s: accelerator %q: want kvm, hvf, whpx or tcg", s.Name, s.Accel)
	}
	return s, nil
}

func ideCount(ds []Disk) int {
	n := 0
	for _, d := range ds {
		if d.Bus == BusIDE {
			n++
		}
	}
	return n
}

// BinaryName is the QEMU executable for the spec.
func (s Spec) BinaryName() string {
	if s.Binary != "" {
		return s.Binary
	}
	arch := s.Arch
	if arch == "" {
		arch = "x86_64"
	}
	return "qemu-system-" + arch
}

// Endpoint is a socket address: a unix socket path or a loopback TCP port
// (Windows, or wherever unix sockets are unavailable).
type Endpoint struct {
	Network string `json:"network"` // "unix" or "tcp"
	Address string `json:"address"` // path, or "127.0.0.1:PORT"
}

// String renders the endpoint as "unix:/path" or "tcp:127.0.0.1:N".
func (e Endpoint) String() string { return e.Network + ":" + e.Address }

// Files names every file of a node's runtime directory in one place.
type Files struct {
	Dir    string   `json:"dir"`
	QMP    Endpoint `json:"qmp"`    // QMP server
	Serial Endpoint `json:"serial"` // serial console server (COM1)
	// NICs are the netdev stream servers, one per Spec.NICs entry.
	NICs []Endpoint `json:"nics"`
}

// File names inside a node directory.
const (
	FileState      = "vm.json"     // the record Adopt reads
	FileQMPSock    = "qmp.sock"    // QMP unix socket
	FileSerialSock = "serial.sock" // serial console unix socket
	FileQEMULog    = "qemu.log"    // QEMU's own stdout and stderr
	FileConsoleLog = "console.log" // serial output, written by the console hub
	fileNICSock    = "net%d.sock"  // NIC stream sockets
)

// UnixFiles lays out a node's sockets as unix sockets under dir.
func UnixFiles(dir string, nics int) Files {
	f := Files{
		Dir:    dir,
		QMP:    Endpoint{"unix", filepath.Join(dir, FileQMPSock)},
		Serial: Endpoint{"unix", filepath.Join(dir, FileSerialSock)},
	}
	for i := 0; i < nics; i++ {
		f.NICs = append(f.NICs, Endpoint{"unix", filepath.Join(dir, fmt.Sprintf(fileNICSock, i))})
	}
	return f
}
