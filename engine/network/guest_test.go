package network

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// netGuest is a guest's own TCP/IP stack (a second gVisor stack) plugged
// into a switch like a VM's NIC: its Ethernet frames go over a net.Pipe in
// QEMU's framing to Switch.AcceptQEMU. Its address is the member's, set
// statically, with the default route through the gateway, as DHCP gives it.
type netGuest struct {
	t     testing.TB
	stack *stack.Stack
}

// newNetGuest plugs m into sw until the test ends.
func newNetGuest(t testing.TB, sw *Switch, m Member) *netGuest {
	t.Helper()
	hw, err := net.ParseMAC(m.MAC)
	if err != nil {
		t.Fatal(err)
	}
	ch := channel.New(256, uint32(sw.Config().MTU), tcpip.LinkAddress(hw))
	s := newIPv4Stack()
	if err := s.CreateNIC(1, ethernet.New(ch)); err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix(sw.Config().Subnet)
	if err := s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: stackAddr(netip.MustParseAddr(m.IP)), PrefixLen: p.Bits()}},
		stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	sub, err := tcpip.NewSubnet(stackAddr(p.Addr()), tcpip.MaskFromBytes(net.CIDRMask(p.Bits(), 32)))
	if err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: sub, NIC: 1},
		{Destination: header4Any(), Gateway: stackAddr(netip.MustParseAddr(sw.Config().GatewayIP)), NIC: 1},
	})

	ctx, cancel := context.WithCancel(context.Background())
	vm, swEnd := net.Pipe()
	done := make(chan struct{}, 3)
	go func() { sw.AcceptQEMU(ctx, swEnd); done <- struct{}{} }()
	go func() { // guest -> switch
		defer func() { done <- struct{}{} }()
		for {
			pkt := ch.ReadContext(ctx)
			if pkt == nil {
				return
			}
			frame := pkt.ToView().AsSlice()
			buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(frame)), uint32(len(frame)))
			_, err := vm.Write(append(buf, frame...))
			pkt.DecRef()
			if err != nil {
				return
			}
		}
	}()
	go func() { // switch -> guest
		defer func() { done <- struct{}{} }()
		hdr := make([]byte, 4)
		for {
			if _, err := readFull(vm, hdr); err != nil {
				return
			}
			frame := make([]byte, binary.BigEndian.Uint32(hdr))
			if _, err := readFull(vm, frame); err != nil {
				return
			}
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
			ch.InjectInbound(0, pkt)
			pkt.DecRef()
		}
	}()
	t.Cleanup(func() {
		cancel()
		vm.Close()
		for range 3 {
			<-done
		}
		s.Close()
		s.Wait()
		ch.Close()
	})
	return &netGuest{t: t, stack: s}
}

// readFull reads exactly len(b) bytes from c.
func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// header4Any is the IPv4 default route's destination, 0.0.0.0/0.
func header4Any() tcpip.Subnet {
	s, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes(make([]byte, 4)))
	return s
}

// dial opens a TCP connection from the guest to addr, within d.
func (g *netGuest) dial(addr netip.AddrPort, d time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return gonet.DialContextTCP(ctx, g.stack, tcpip.FullAddress{NIC: 1, Addr: stackAddr(addr.Addr()), Port: addr.Port()}, ipv4.ProtocolNumber)
}

// listen listens on the guest's port (TCP).
func (g *netGuest) listen(port uint16) net.Listener {
	g.t.Helper()
	ln, err := gonet.ListenTCP(g.stack, tcpip.FullAddress{NIC: 1, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { ln.Close() })
	return ln
}

// ping sends an ICMP echo request from the guest to addr and reports
// whether an echo reply came within d.
func (g *netGuest) ping(addr netip.Addr, d time.Duration) bool {
	g.t.Helper()
	var wq waiter.Queue
	ep, err := g.stack.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
	if err != nil {
		g.t.Fatal(err)
	}
	defer ep.Close()
	req := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize+8))
	req.SetType(header.ICMPv4Echo)
	req.SetSequence(1)
	if _, err := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{To: &tcpip.FullAddress{NIC: 1, Addr: stackAddr(addr)}}); err != nil {
		g.t.Fatalf("ping %s: %v", addr, err)
	}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var b bytes.Buffer
		if _, err := ep.Read(&b, tcpip.ReadOptions{}); err == nil {
			return len(b.Bytes()) >= header.ICMPv4MinimumSize && header.ICMPv4(b.Bytes()).Type() == header.ICMPv4EchoReply
		}
	}
	return false
}

// udp opens a UDP socket from the guest to addr (local port chosen by the
// stack, or local if non-zero; broadcast allowed).
func (g *netGuest) udp(local uint16, addr netip.AddrPort) *gonet.UDPConn {
	g.t.Helper()
	var laddr *tcpip.FullAddress
	if local != 0 {
		laddr = &tcpip.FullAddress{NIC: 1, Port: local}
	}
	c, err := gonet.DialUDP(g.stack, laddr, &tcpip.FullAddress{NIC: 1, Addr: stackAddr(addr.Addr()), Port: addr.Port()}, ipv4.ProtocolNumber)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { c.Close() })
	return c
}
