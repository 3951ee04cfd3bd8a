package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"gridlord/testing/testenv"
)

// ownAddr returns one of this machine's own IPv4 addresses that is not a
// loopback one (the gateway never routes guests to 127/8 at all): where
// the tests put a stand-in for "outside the grid" without sending anything
// off the machine. It skips the test on a machine that has none.
func ownAddr(t testing.TB) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && ip.IsGlobalUnicast() {
				return ip
			}
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to stand in for an outside one")
	return netip.Addr{}
}

// outside is a TCP and a UDP service on one of this machine's own
// non-loopback addresses, standing in for an address beyond the grid.
type outside struct {
	tcp, udp netip.AddrPort
	// reached counts the TCP connections and UDP datagrams that arrived.
	mu      sync.Mutex
	reached int
}

// newOutside serves "outside\n" to every TCP connection and echoes every
// UDP datagram, on ownAddr, until the test ends.
func newOutside(t testing.TB) *outside {
	t.Helper()
	ip := ownAddr(t)
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	o := &outside{tcp: ln.Addr().(*net.TCPAddr).AddrPort(), udp: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.hit()
			fmt.Fprintf(c, "outside\n")
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			o.hit()
			pc.WriteTo(buf[:n], from)
		}
	}()
	return o
}

func (o *outside) hit() { o.mu.Lock(); o.reached++; o.mu.Unlock() }

func (o *outside) count() int { o.mu.Lock(); defer o.mu.Unlock(); return o.reached }

// TestOutbound plays two guests with their own TCP/IP stacks on a switch,
// once with Config.Outbound off and once on. Either way the grid's own
// traffic works: guest to guest over TCP, a guest to the exposed host
// service at the host address, DHCP's answer with the guest's fixed
// address, and an unexposed port of the host address is refused. With
// outbound off, a guest's TCP connection and UDP datagram to one of this
// machine's own non-loopback addresses (a stand-in for anything outside
// the grid) are refused at once and never arrive, the gateway's DNS
// answers "localhost" not found without asking the host's resolver, and
// the refusal is logged with the destination; with it on, all three work.
// Either way the gateway answers pings for its own addresses and no other.
func TestOutbound(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[on], func(t *testing.T) { testOutbound(t, on) })
	}
}

func testOutbound(t *testing.T, on bool) {
	out := newOutside(t)
	var logs testenv.SyncBuffer
	ms := []Member{{Name: "a", MAC: "52:54:00:00:00:0a", IP: "192.168.127.10"}, {Name: "b", MAC: "52:54:00:00:00:0b", IP: "192.168.127.11"}}
	upstream := &fakeResolver{}
	sw, err := newSwitch(Config{Outbound: on}, ms, slog.New(slog.NewTextHandler(&logs, nil)), upstream)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	if sw.Config().Outbound != on {
		t.Fatalf("Config().Outbound = %v, want %v", sw.Config().Outbound, on)
	}
	venti := serveLine(t, "venti-04:02-gridlord\n")
	if err := sw.ExposeHost(VentiPort, venti.String()); err != nil {
		t.Fatal(err)
	}
	a, b := newNetGuest(t, sw, ms[0]), newNetGuest(t, sw, ms[1])
	hostIP := netip.MustParseAddr(sw.Config().HostIP)
	gwIP := netip.MustParseAddr(sw.Config().GatewayIP)

	// Guest to guest.
	ln := b.listen(7000)
	go func() {
		if c, err := ln.Accept(); err == nil {
			fmt.Fprintf(c, "pong-from-b\n")
			c.Close()
		}
	}()
	if line := readLine(t, a, netip.AddrPortFrom(netip.MustParseAddr(ms[1].IP), 7000)); line != "pong-from-b\n" {
		t.Errorf("a -> b: read %q", line)
	}
	// The exposed host service.
	if line := readLine(t, a, netip.AddrPortFrom(hostIP, VentiPort)); line != "venti-04:02-gridlord\n" {
		t.Errorf("a -> exposed venti: read %q", line)
	}
	// DHCP.
	if got := dhcpOffer(t, a, gwIP); got != ms[0].IP {
		t.Errorf("DHCP offered %s to a, want its fixed %s", got, ms[0].IP)
	}
	// An unexposed port of the host address is refused in either mode.
	hidden := serveLine(t, "hidden\n")
	if c, err := a.dial(netip.AddrPortFrom(hostIP, hidden.Port()), 5*time.Second); err == nil {
		c.Close()
		t.Errorf("a reached unexposed port %d of the host address", hidden.Port())
	} else if !errors.Is(err, syscall.ECONNREFUSED) && !strings.Contains(err.Error(), "refused") {
		t.Errorf("a -> unexposed host port: %v, want connection refused", err)
	}

	// Outside the grid: TCP.
	start := time.Now()
	c, err := a.dial(out.tcp, 5*time.Second)
	switch {
	case on && err != nil:
		t.Errorf("outbound on: a -> %s: %v", out.tcp, err)
	case on:
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if line != "outside\n" {
			t.Errorf("outbound on: a -> %s: read %q, %v", out.tcp, line, err)
		}
	case err == nil:
		c.Close()
		t.Errorf("outbound off: a connected to %s", out.tcp)
	case !strings.Contains(err.Error(), "refused") || time.Since(start) > 2*time.Second:
		t.Errorf("outbound off: a -> %s: %v after %v, want connection refused at once", out.tcp, err, time.Since(start))
	}

	// Outside the grid: UDP.
	u := a.udp(0, out.udp)
	if _, err := u.Write([]byte("ping-udp")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := readPolling(u, buf, 3*time.Second)
	switch {
	case on && (err != nil || string(buf[:n]) != "ping-udp"):
		t.Errorf("outbound on: UDP a -> %s: read %q, %v", out.udp, buf[:n], err)
	case !on && err == nil:
		t.Errorf("outbound off: UDP a -> %s answered %q", out.udp, buf[:n])
	case !on && !strings.Contains(err.Error(), "refused"):
		t.Errorf("outbound off: UDP a -> %s: %v, want connection refused (ICMP port unreachable)", out.udp, err)
	}

	// The gateway's DNS for a name only the upstream resolver knows.
	rcode, answers := dnsQuery(t, a, gwIP, fakeName)
	switch {
	case on && (rcode != layers.DNSResponseCodeNoErr || len(answers) != 1 || answers[0] != fakeAnswer):
		t.Errorf("outbound on: DNS %s: %v %v, want %s", fakeName, rcode, answers, fakeAnswer)
	case !on && (rcode != layers.DNSResponseCodeNXDomain || len(answers) != 0):
		t.Errorf("outbound off: DNS %s: %v %v, want NXDOMAIN", fakeName, rcode, answers)
	}
	if asked := upstream.asked(); on != (len(asked) > 0) {
		t.Errorf("outbound %v: the upstream resolver was asked %q", on, asked)
	}

	// Pings: the gateway answers for its own addresses only; ICMP is not
	// forwarded in either mode, so no answer may seem to come from beyond.
	for _, ip := range []netip.Addr{gwIP, hostIP} {
		if !a.ping(ip, 5*time.Second) {
			t.Errorf("no answer to a's ping of %s", ip)
		}
	}
	if a.ping(out.tcp.Addr(), time.Second) {
		t.Errorf("a's ping of %s beyond the grid was answered", out.tcp.Addr())
	}

	want := 0
	if on {
		want = 2
	}
	if got := out.count(); got != want {
		t.Errorf("outbound %v: %d connections and datagrams reached %s, want %d", on, got, out.tcp.Addr(), want)
	}
	refusedOutside := strings.Contains(logs.String(), "to="+out.tcp.String())
	if refusedOutside == on || !strings.Contains(logs.String(), "to="+netip.AddrPortFrom(hostIP, hidden.Port()).String()) {
		t.Errorf("outbound %v: log of refusals:\n%s", on, logs.String())
	}
}

// readPolling reads one datagram from c within d in short reads: gonet
// wakes a blocked reader only for data, while an ICMP error is reported to
// the next read.
func readPolling(c net.Conn, b []byte, d time.Duration) (int, error) {
	end := time.Now().Add(d)
	for {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Read(b)
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() || time.Now().After(end) {
			return n, err
		}
	}
}

// The name the fake upstream resolver knows, and its address.
const (
	fakeName   = "only-upstream.test"
	fakeAnswer = "127.0.0.9"
)

// fakeResolver stands in for the host's resolver (which would send the
// queries off the machine): it knows fakeName and records what it is asked.
type fakeResolver struct {
	mu    sync.Mutex
	names []string
}

func (f *fakeResolver) ask(name string) {
	f.mu.Lock()
	f.names = append(f.names, name)
	f.mu.Unlock()
}

func (f *fakeResolver) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.names...)
}

func (f *fakeResolver) notFound(name string) error {
	f.ask(name)
	return &net.DNSError{Err: "not in the fake", Name: name, IsNotFound: true}
}

func (f *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	if host != fakeName+"." {
		return nil, f.notFound(host)
	}
	f.ask(host)
	return []net.IPAddr{{IP: net.ParseIP(fakeAnswer)}}, nil
}

func (f *fakeResolver) LookupCNAME(_ context.Context, host string) (string, error) {
	return "", f.notFound(host)
}

func (f *fakeResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	return nil, f.notFound(name)
}

func (f *fakeResolver) LookupNS(_ context.Context, name string) ([]*net.NS, error) {
	return nil, f.notFound(name)
}

func (f *fakeResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	return "", nil, f.notFound(name)
}

func (f *fakeResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	return nil, f.notFound(name)
}

// serveLine serves line to every connection on the host's loopback until
// the test ends and returns its address.
func serveLine(t testing.TB, line string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, line)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// readLine connects from g to addr and returns the first line it reads.
func readLine(t testing.TB, g *netGuest, addr netip.AddrPort) string {
	t.Helper()
	c, err := g.dial(addr, 10*time.Second)
	if err != nil {
		t.Errorf("dial %s: %v", addr, err)
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Errorf("read from %s: %v", addr, err)
	}
	return line
}

// dhcpOffer sends a DHCPDISCOVER from g's port 68 to the gateway and
// returns the address offered.
func dhcpOffer(t testing.TB, g *netGuest, gw netip.Addr) string {
	t.Helper()
	var mac net.HardwareAddr
	for _, nic := range g.stack.NICInfo() {
		mac = net.HardwareAddr(nic.LinkAddress)
	}
	d := &layers.DHCPv4{Operation: layers.DHCPOpRequest, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6,
		Xid: 0x5eed, ClientHWAddr: mac,
		Options: layers.DHCPOptions{layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(layers.DHCPMsgTypeDiscover)})}}
	reply := exchangeUDP(t, g, 68, netip.AddrPortFrom(gw, 67), d)
	var got layers.DHCPv4
	if err := got.DecodeFromBytes(reply, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("DHCP reply: %v", err)
	}
	return got.YourClientIP.String()
}

// dnsQuery asks the DNS server at ip for name's A records and returns the
// answer's code and addresses.
func dnsQuery(t testing.TB, g *netGuest, ip netip.Addr, name string) (layers.DNSResponseCode, []string) {
	t.Helper()
	q := &layers.DNS{ID: 0x1d, RD: true, QDCount: 1,
		Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	reply := exchangeUDP(t, g, 0, netip.AddrPortFrom(ip, 53), q)
	var got layers.DNS
	if err := got.DecodeFromBytes(reply, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("DNS reply: %v", err)
	}
	var addrs []string
	for _, a := range got.Answers {
		if a.Type == layers.DNSTypeA {
			addrs = append(addrs, a.IP.String())
		}
	}
	return got.ResponseCode, addrs
}

// exchangeUDP sends one serialized layer from g's local port to addr and
// returns the first datagram back.
func exchangeUDP(t testing.TB, g *netGuest, local uint16, addr netip.AddrPort, l gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, l); err != nil {
		t.Fatal(err)
	}
	c := g.udp(local, addr)
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 1500)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no answer from %s: %v", addr, err)
	}
	return b[:n]
}

// TestRefusalsRateLimited: at most refusalBurst lines per refusalWindow;
// the refusals not logged are counted on the next line logged.
func TestRefusalsRateLimited(t *testing.T) {
	r := &refusals{log: slog.New(slog.DiscardHandler)}
	t0 := time.Now()
	for i := range refusalBurst {
		if ok, n := r.allow(t0.Add(time.Duration(i) * time.Millisecond)); !ok || n != 0 {
			t.Fatalf("line %d: allow = %v, %d", i, ok, n)
		}
	}
	for i := range 3 {
		if ok, _ := r.allow(t0.Add(time.Second)); ok {
			t.Fatalf("line %d past the burst allowed", refusalBurst+i)
		}
	}
	if ok, n := r.allow(t0.Add(refusalWindow)); !ok || n != 3 {
		t.Fatalf("first line of the next window: allow = %v, %d unlogged; want true, 3", ok, n)
	}
}

// TestGatewayLinkDetached: a frame the switch delivers after the gateway's
// stack is gone (Switch.Close, guests' connections still winding down) is
// dropped, where the library's endpoint alone would call a nil dispatcher.
func TestGatewayLinkDetached(t *testing.T) {
	inner, err := tap.NewLinkEndpoint(false, 1500, gatewayMAC, "192.168.127.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &gatewayLink{LinkEndpoint: inner}
	l.Attach(nil)
	if l.IsAttached() {
		t.Fatal("attached to nothing, IsAttached is true")
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(make([]byte, 40))})
	defer pkt.DecRef()
	inner.DeliverNetworkPacket(ipv4.ProtocolNumber, pkt)
}
