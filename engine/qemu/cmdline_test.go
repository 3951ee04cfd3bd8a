package qemu

import (
	"strings"
	"testing"
)

func TestCmdline(t *testing.T) {
	spec, err := Spec{
		Name: "fossil", UUID: "5f0c0b1e-0000-4000-8000-000000000001", Arch: "i386", MemoryMiB: 512,
		Disks: []Disk{{Path: "/g/fossil/disk.qcow2"}, {Path: "/g/venti.raw", Format: "raw", Bus: BusVirtio, ReadOnly: true}},
		NICs:  []NIC{{Model: NICRTL8139, MAC: "52:54:00:AA:BB:CC"}},
	}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	exe, args, err := Cmdline(spec, UnixFiles("/g/fossil", 1), "kvm")
	if err != nil {
		t.Fatal(err)
	}
	if exe != "qemu-system-i386" {
		t.Errorf("exe = %s", exe)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{
		"-nodefaults", "-accel kvm", "-m 512", "-smp 1", "-display none",
		"-uuid 5f0c0b1e-0000-4000-8000-000000000001",
		"-chardev socket,id=qmp0,path=/g/fossil/qmp.sock,server=on,wait=off -mon chardev=qmp0,mode=control",
		"-chardev socket,id=con0,path=/g/fossil/serial.sock,server=on,wait=off -serial chardev:con0",
		"-drive file=/g/fossil/disk.qcow2,format=qcow2,if=ide,index=0,media=disk,id=disk0",
		"-drive file=/g/venti.raw,format=raw,read-only=on,if=virtio,id=disk1",
		"-netdev stream,id=net0,server=on,addr.type=unix,addr.path=/g/fossil/net0.sock",
		"-device rtl8139,netdev=net0,mac=52:54:00:aa:bb:cc",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "-kernel") || strings.Contains(got, "-vga") {
		t.Errorf("unexpected kernel or vga: %s", got)
	}
}

func TestCmdlineTCPAndDisplay(t *testing.T) {
	spec, _ := Spec{Name: "cpu", Display: true, Kernel: "/k", Initrd: "/i", Append: "console=0",
		NICs: []NIC{{MAC: "52:54:00:00:00:01"}}}.Validate()
	files := Files{Dir: "C:/g/cpu", QMP: Endpoint{"tcp", "127.0.0.1:4444"}, Serial: Endpoint{"tcp", "127.0.0.1:4445"},
		NICs: []Endpoint{{"tcp", "127.0.0.1:4446"}}}
	_, args, err := Cmdline(spec, files, "")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{"-accel tcg", "-vga std", "socket,id=qmp0,host=127.0.0.1,port=4444,server=on",
		"stream,id=net0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=4446", "-device e1000,netdev=net0",
		"-kernel /k -initrd /i -append console=0"} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "-display none") {
		t.Error("window requested but -display none given")
	}
	files.QMP = Endpoint{"tcp", "0.0.0.0:4444"}
	if _, _, err := Cmdline(spec, files, ""); err == nil {
		t.Error("non-loopback QMP address accepted")
	}
}

func TestValidate(t *testing.T) {
	bad := []Spec{
		{Name: ""},
		{Name: "a b"},
		{Name: "x", Arch: "arm"},
		{Name: "x", MemoryMiB: 1},
		{Name: "x", CPUs: 100},
		{Name: "x", Disks: []Disk{{Path: ""}}},
		{Name: "x", Disks: []Disk{{Path: "/a,b"}}},
		{Name: "x", Disks: []Disk{{Path: "/a", Bus: "scsi"}}},
		{Name: "x", Disks: []Disk{{Path: "/a", Format: "vmdk"}}},
		{Name: "x", Disks: []Disk{{Path: "/1"}, {Path: "/2"}, {Path: "/3"}, {Path: "/4"}, {Path: "/5"}}},
		{Name: "x", NICs: []NIC{{MAC: "nope"}}},
		{Name: "x", NICs: []NIC{{MAC: "52:54:00:00:00:01", Model: "ne2k"}}},
		{Name: "x", Initrd: "/i"},
		{Name: "x", Accel: "xen"},
	}
	for _, s := range bad {
		if _, err := s.Validate(); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	s, err := Spec{Name: "ok"}.Validate()
	if err != nil || s.MemoryMiB != 256 || s.CPUs != 1 || s.Arch != "x86_64" {
		t.Errorf("defaults: %+v, %v", s, err)
	}
}

func TestLongSocketPath(t *testing.T) {
	spec, _ := Spec{Name: "x"}.Validate()
	if _, _, err := Cmdline(spec, UnixFiles("/"+strings.Repeat("d", 120), 0), "tcg"); err == nil || !strings.Contains(err.Error(), "shorter") {
		t.Errorf("long socket path: %v", err)
	}
}

func TestClassifyQEMUError(t *testing.T) {
	cases := map[string]error{
		`qemu-system-x86_64: -drive file=d.qcow2: Failed to get "write" lock` + "\nIs another process using the image [d.qcow2]?": ErrDiskLocked,
		"qemu-system-x86_64: -chardev socket: Failed to bind socket: Address already in use":                                      ErrAddrInUse,
		"qemu-system-x86_64: -drive file=/x: Could not open '/x': No such file or directory":                                      ErrDiskMissing,
	}
	for in, want := range cases {
		if err := classifyQEMUError(in); !errorsIs(err, want) {
			t.Errorf("classify(%q) = %v, want %v", in, err, want)
		}
	}
}
