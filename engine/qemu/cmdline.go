package qemu

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// maxUnixPath is the longest unix socket path the kernel accepts (sun_path
// is 108 bytes on Linux, 104 on macOS; take the smaller, minus the NUL).
const maxUnixPath = 103

// Cmdline builds QEMU's argument list for spec (already Validated) using
// the runtime files in files and the accelerator accel. It does no I/O.
func Cmdline(spec Spec, files Files, accel string) (exe string, args []string, err error) {
	if len(files.NICs) != len(spec.NICs) {
		return "", nil, fmt.Errorf("node %s: %d NIC endpoints for %d NICs", spec.Name, len(files.NICs), len(spec.NICs))
	}
	if accel == "" {
		accel = "tcg"
	}
	args = []string{
		"-name", spec.Name + ",process=gridlord-" + spec.Name,
		"-nodefaults",
		"-no-user-config",
		"-accel", accel,
		"-m", strconv.Itoa(spec.MemoryMiB),
		"-smp", strconv.Itoa(spec.CPUs),
	}
	if spec.UUID != "" {
		args = append(args, "-uuid", spec.UUID)
	}
	if spec.Display {
		args = append(args, "-vga", "std")
	} else {
		args = append(args, "-display", "none")
		if spec.VGA {
			args = append(args, "-vga", "std")
		}
	}
	qmp, err := chardevAddr(files.QMP)
	if err != nil {
		return "", nil, fmt.Errorf("node %s: QMP socket: %w", spec.Name, err)
	}
	args = append(args, "-chardev", "socket,id=qmp0,"+qmp+",server=on,wait=off",
		"-mon", "chardev=qmp0,mode=control")
	ser, err := chardevAddr(files.Serial)
	if err != nil {
		return "", nil, fmt.Errorf("node %s: serial socket: %w", spec.Name, err)
	}
	args = append(args, "-chardev", "socket,id=con0,"+ser+",server=on,wait=off",
		"-serial", "chardev:con0")
	ide := 0
	for i, d := range spec.Disks {
		drive := "file=" + d.Path + ",format=" + d.Format
		if d.ReadOnly {
			drive += ",read-only=on"
		}
		switch d.Bus {
		case BusIDE:
			drive += fmt.Sprintf(",if=ide,index=%d,media=disk", ide)
			ide++
		case BusVirtio:
			drive += ",if=virtio"
		}
		args = append(args, "-drive", drive+fmt.Sprintf(",id=disk%d", i))
	}
	for i, n := range spec.NICs {
		addr, err := netdevAddr(files.NICs[i])
		if err != nil {
			return "", nil, fmt.Errorf("node %s: NIC %d socket: %w", spec.Name, i, err)
		}
		args = append(args,
			"-netdev", fmt.Sprintf("stream,id=net%d,server=on,%s", i, addr),
			"-device", fmt.Sprintf("%s,netdev=net%d,mac=%s", n.Model, i, n.MAC))
	}
	if spec.Kernel != "" {
		args = append(args, "-kernel", spec.Kernel)
		if spec.Initrd != "" {
			args = append(args, "-initrd", spec.Initrd)
		}
		if spec.Append != "" {
			args = append(args, "-append", spec.Append)
		}
	}
	return spec.BinaryName(), args, nil
}

// chardevAddr renders an endpoint as -chardev socket options.
func chardevAddr(e Endpoint) (string, error) {
	switch e.Network {
	case "unix":
		if err := checkUnixPath(e.Address); err != nil {
			return "", err
		}
		return "path=" + e.Address, nil
	case "tcp":
		host, port, err := loopbackHostPort(e.Address)
		if err != nil {
			return "", err
		}
		return "host=" + host + ",port=" + port, nil
	}
	return "", fmt.Errorf("endpoint %s: network must be unix or tcp", e)
}

// netdevAddr renders an endpoint as -netdev stream addr options.
func netdevAddr(e Endpoint) (string, error) {
	switch e.Network {
	case "unix":
		if err := checkUnixPath(e.Address); err != nil {
			return "", err
		}
		return "addr.type=unix,addr.path=" + e.Address, nil
	case "tcp":
		host, port, err := loopbackHostPort(e.Address)
		if err != nil {
			return "", err
		}
		return "addr.type=inet,addr.host=" + host + ",addr.port=" + port, nil
	}
	return "", fmt.Errorf("endpoint %s: network must be unix or tcp", e)
}

func checkUnixPath(p string) error {
	if strings.Contains(p, ",") {
		return fmt.Errorf("socket path %q contains a comma, which QEMU cannot take", p)
	}
	if len(p) > maxUnixPath {
		return fmt.Errorf("socket path %q is %d bytes, longer than the %d a unix socket allows; use a shorter state directory", p, len(p), maxUnixPath)
	}
	return nil
}

func loopbackHostPort(addr string) (string, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", "", fmt.Errorf("address %q: only loopback addresses are allowed", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return "", "", fmt.Errorf("address %q: bad port", addr)
	}
	return host, port, nil
}
