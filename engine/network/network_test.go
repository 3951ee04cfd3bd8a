package network

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestDefaults(t *testing.T) {
	c, err := Config{}.Defaults()
	if err != nil || c.Subnet != "192.168.127.0/24" || c.GatewayIP != "192.168.127.1" || c.HostIP != "192.168.127.254" || c.MTU != 1500 {
		t.Fatalf("defaults %+v, %v", c, err)
	}
	c, err = Config{Subnet: "10.9.0.7/16"}.Defaults()
	if err != nil || c.Subnet != "10.9.0.0/16" || c.GatewayIP != "10.9.0.1" || c.HostIP != "10.9.0.254" {
		t.Fatalf("10.9/16: %+v, %v", c, err)
	}
	for _, bad := range []Config{{Subnet: "nonsense"}, {Subnet: "fd00::/64"}, {Subnet: "10.0.0.0/30"},
		{HostIP: "10.0.0.1"}, {MTU: 100}} {
		if _, err := bad.Defaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestPlanAndMAC(t *testing.T) {
	u := map[string]string{"venti": "5f0c0b1e-0000-4000-8000-000000000001", "cpu": "5f0c0b1e-0000-4000-8000-000000000002"}
	ms, err := Plan(Config{}, []string{"venti", "cpu"}, u)
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].IP != "192.168.127.10" || ms[1].IP != "192.168.127.11" {
		t.Errorf("addresses %+v", ms)
	}
	again, _ := MACFromUUID(u["venti"])
	if ms[0].MAC != again || !strings.HasPrefix(again, "52:54:00:") || ms[0].MAC == ms[1].MAC {
		t.Errorf("MACs %s %s (again %s)", ms[0].MAC, ms[1].MAC, again)
	}
	if _, err := Plan(Config{}, []string{"x"}, nil); err == nil {
		t.Error("node without UUID planned")
	}
	// Skips the host address and runs out at the end of the subnet.
	names := make([]string, 250)
	uu := map[string]string{}
	for i := range names {
		names[i] = "n" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		uu[names[i]] = "5f0c0b1e-0000-4000-8000-0000000000" + string(rune('a'+i%6)) + string(rune('a'+i/50))
	}
	if _, err := Plan(Config{}, names, uu); err == nil || !strings.Contains(err.Error(), "no address left") {
		t.Errorf("overfull subnet: %v", err)
	}
}

func TestNewRejectsClashes(t *testing.T) {
	a := Member{Name: "a", MAC: "52:54:00:00:00:01", IP: "192.168.127.10"}
	for _, ms := range [][]Member{
		{a, {Name: "b", MAC: "52:54:00:00:00:02", IP: "192.168.127.10"}},
		{a, {Name: "b", MAC: "52:54:00:00:00:01", IP: "192.168.127.11"}},
		{a, {Name: "a", MAC: "52:54:00:00:00:02", IP: "192.168.127.11"}},
		{{Name: "b", MAC: "52:54:00:00:00:02", IP: "192.168.127.254"}},
		{{Name: "b", MAC: "52:54:00:00:00:02", IP: "10.0.0.1"}},
		{{Name: "b", MAC: "zz", IP: "192.168.127.11"}},
	} {
		if _, err := New(Config{}, ms, nil); err == nil {
			t.Errorf("%+v accepted", ms)
		}
	}
}

// TestSetMember: a member added or readdressed on a running switch gets
// its lease at once (the old one released); a clash changes nothing.
func TestSetMember(t *testing.T) {
	sw, err := New(Config{}, []Member{{Name: "a", MAC: "52:54:00:00:00:01", IP: "192.168.127.10"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	if err := sw.SetMember(Member{Name: "b", MAC: "52:54:00:00:00:02", IP: "192.168.127.11"}); err != nil {
		t.Fatal(err)
	}
	if l, _ := sw.Leases(); l["192.168.127.11"] != "52:54:00:00:00:02" || l["192.168.127.10"] != "52:54:00:00:00:01" {
		t.Errorf("leases after adding b: %v", l)
	}
	if m, ok := sw.Member("b"); !ok || m.IP != "192.168.127.11" {
		t.Errorf("member b: %+v %v", m, ok)
	}
	for _, m := range []Member{
		{Name: "c", MAC: "52:54:00:00:00:03", IP: "192.168.127.10"}, // a's address
		{Name: "c", MAC: "52:54:00:00:00:01", IP: "192.168.127.12"}, // a's MAC
		{Name: "c", MAC: "52:54:00:00:00:03", IP: "192.168.127.254"},
		{Name: "c", MAC: "52:54:00:00:00:03", IP: "10.1.1.1"},
	} {
		if err := sw.SetMember(m); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
	if _, ok := sw.Member("c"); ok {
		t.Error("a refused member was added")
	}
	// b readdressed: its old lease goes.
	if err := sw.SetMember(Member{Name: "b", MAC: "52:54:00:00:00:02", IP: "192.168.127.20"}); err != nil {
		t.Fatal(err)
	}
	l, _ := sw.Leases()
	if _, old := l["192.168.127.11"]; old || l["192.168.127.20"] != "52:54:00:00:00:02" {
		t.Errorf("leases after readdressing b: %v", l)
	}
}

// TestFrameExchange plays a VM over net.Pipe with QEMU's framing (4-byte
// big-endian length, then the Ethernet frame): an ARP request for the
// gateway must get the gateway's reply, and a second VM must see the
// first one's broadcast.
func TestFrameExchange(t *testing.T) {
	ms := []Member{{Name: "a", MAC: "52:54:00:00:00:0a", IP: "192.168.127.10"}, {Name: "b", MAC: "52:54:00:00:00:0b", IP: "192.168.127.11"}}
	sw, err := New(Config{}, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vmA, swA := net.Pipe()
	vmB, swB := net.Pipe()
	go sw.AcceptQEMU(ctx, swA)
	go sw.AcceptQEMU(ctx, swB)

	// B sends a frame to nobody first: once net.Pipe's Write returns, the
	// switch has read it, so B is registered before A broadcasts.
	macB, _ := net.ParseMAC(ms[1].MAC)
	nobody := append(append([]byte{0x02, 0, 0, 0, 0, 0x99}, macB...), 0x08, 0x00)
	nobody = append(nobody, make([]byte, 46)...)
	vmB.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := vmB.Write(append([]byte{0, 0, 0, byte(len(nobody))}, nobody...)); err != nil {
		t.Fatal(err)
	}
	macA, _ := net.ParseMAC(ms[0].MAC)
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: macA, SourceProtAddress: net.ParseIP(ms[0].IP).To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP("192.168.127.1").To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		t.Fatal(err)
	}
	frame := buf.Bytes()
	// B reads in the background so the switch's broadcast to B cannot block.
	gotB := make(chan []byte, 1)
	go func() {
		f, err := readFrame(vmB)
		if err == nil {
			gotB <- f
		}
	}()
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, uint32(len(frame)))
	vmA.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := vmA.Write(append(hdr, frame...)); err != nil {
		t.Fatal(err)
	}
	reply, err := readFrame(vmA)
	if err != nil {
		t.Fatal(err)
	}
	p := gopacket.NewPacket(reply, layers.LayerTypeEthernet, gopacket.Default)
	a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok || a.Operation != layers.ARPReply || net.IP(a.SourceProtAddress).String() != "192.168.127.1" {
		t.Fatalf("gateway's answer: %v", p)
	}
	select {
	case f := <-gotB:
		if string(f) != string(frame) {
			t.Errorf("B got a different frame")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("B never saw A's broadcast")
	}
}

func readFrame(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return nil, err
	}
	f := make([]byte, binary.BigEndian.Uint32(hdr))
	_, err := io.ReadFull(c, f)
	return f, err
}

// TestExposeHost checks ExposeHost's bookkeeping: bad ports and host
// addresses are refused, a port is exposed once, and Close withdraws
// every exposure. (A guest's connection through an exposure, and the
// refusal of unexposed host ports, are proved with real guests in
// testing/vmtest TestNetwork.)
func TestExposeHost(t *testing.T) {
	sw, err := New(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		port int
		addr string
	}{{0, "127.0.0.1:1"}, {70000, "127.0.0.1:1"}, {VentiPort, "no-port"}} {
		if err := sw.ExposeHost(bad.port, bad.addr); err == nil {
			t.Errorf("ExposeHost(%d, %q) accepted", bad.port, bad.addr)
		}
	}
	if err := sw.ExposeHost(VentiPort, "127.0.0.1:40001"); err != nil {
		t.Fatal(err)
	}
	if err := sw.ExposeHost(VentiPort, "127.0.0.1:40002"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:40001") {
		t.Errorf("second exposure of port %d: %v", VentiPort, err)
	}
	if got := sw.Exposed(); len(got) != 1 || got[VentiPort] != "127.0.0.1:40001" {
		t.Errorf("Exposed() = %v", got)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sw.Exposed(); len(got) != 0 {
		t.Errorf("after Close, Exposed() = %v", got)
	}
	if err := sw.ExposeHost(564, "127.0.0.1:40003"); err == nil {
		t.Error("ExposeHost on a closed switch accepted")
	}
}

// TestNoHostLoopbackEscape plays a guest that sends raw TCP SYNs (QEMU
// framing over net.Pipe) to a port on which the host listens on 127.0.0.1
// but which the switch does not expose: at the host address, at 127.0.0.1
// itself and at 0.0.0.0 (which the host's kernel would take for itself).
// None may reach the host's listener.
func TestNoHostLoopbackEscape(t *testing.T) {
	ms := []Member{{Name: "a", MAC: "52:54:00:00:00:0a", IP: "192.168.127.10"}}
	sw, err := New(Config{}, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	hidden, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hidden.Close()
	reached := make(chan net.Addr, 4)
	go func() {
		for {
			c, err := hidden.Accept()
			if err != nil {
				return
			}
			reached <- c.RemoteAddr()
			c.Close()
		}
	}()
	port := hidden.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vm, swEnd := net.Pipe()
	defer vm.Close()
	go sw.AcceptQEMU(ctx, swEnd)
	go func() { // drain the switch's answers so it never blocks
		buf := make([]byte, 65536)
		for {
			if _, err := vm.Read(buf); err != nil {
				return
			}
		}
	}()
	mac, _ := net.ParseMAC(ms[0].MAC)
	gw, _ := net.ParseMAC("5a:94:ef:e4:0c:dd")
	for i, dst := range []string{sw.Config().HostIP, "127.0.0.1", "0.0.0.0"} {
		eth := &layers.Ethernet{SrcMAC: mac, DstMAC: gw, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
			SrcIP: net.ParseIP(ms[0].IP).To4(), DstIP: net.ParseIP(dst).To4()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(40000 + i), DstPort: layers.TCPPort(port), Seq: 1000, SYN: true, Window: 65535}
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
			t.Fatal(err)
		}
		frame := buf.Bytes()
		hdr := make([]byte, 4)
		binary.BigEndian.PutUint32(hdr, uint32(len(frame)))
		vm.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := vm.Write(append(hdr, frame...)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case from := <-reached:
		t.Fatalf("a guest's SYN reached the host's unexposed 127.0.0.1:%d (from %v)", port, from)
	case <-time.After(2 * time.Second):
	}
}
