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
