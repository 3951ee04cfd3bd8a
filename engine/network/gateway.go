package network

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containers/gvisor-tap-vsock/pkg/services/dhcp"
	"github.com/containers/gvisor-tap-vsock/pkg/services/dns"
	"github.com/containers/gvisor-tap-vsock/pkg/services/forwarder"
	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// gatewayMAC is the gateway's Ethernet address on every grid network.
const gatewayMAC = "5a:94:ef:e4:0c:dd"

// nicID is the gateway stack's one NIC, attached to the switch.
const nicID tcpip.NICID = 1

// gateway is a grid network's switch and gateway: gvisor-tap-vsock's
// learning switch and link endpoint, a gVisor stack in promiscuous mode
// behind them, its DHCP and DNS servers on the gateway address, and its TCP
// and UDP forwarders, which carry a guest's packets that no endpoint of the
// stack takes to the host's network.
//
// It is assembled here rather than by virtualnetwork.New because the
// library (v0.8.9) has no hook to filter its forwarders and keeps its stack
// to itself: here each forwarder is wrapped by admit, which hands it only
// packets for addresses outside the grid, and only when outbound traffic is
// allowed. Every other packet is left to the stack, which answers a TCP SYN
// with a reset and a UDP datagram with ICMP port unreachable, so guests see
// a refusal at once rather than a timeout.
type gateway struct {
	stack  *stack.Stack
	sw     *tap.Switch
	pool   *tap.IPPool
	subnet netip.Prefix
	// broadcast is the subnet's broadcast address.
	broadcast netip.Addr
	// outbound is Config.Outbound, fixed for the gateway's life.
	outbound bool
	refused  *refusals
	log      *slog.Logger

	dhcp     *dhcp.Server
	dnsUDP   net.PacketConn
	dnsTCP   net.Listener
	services sync.WaitGroup
	closing  atomic.Bool
}

// newGateway builds and starts the gateway for cfg (defaults filled in)
// with DHCP's static leases (address -> MAC). Its DNS asks upstream for
// names outside the grid only when cfg.Outbound is on.
func newGateway(cfg Config, leases map[string]string, upstream resolver, log *slog.Logger) (*gateway, error) {
	subnet := netip.MustParsePrefix(cfg.Subnet)
	_, ipnet, err := net.ParseCIDR(cfg.Subnet)
	if err != nil {
		return nil, fmt.Errorf("subnet %s: %w", cfg.Subnet, err)
	}
	pool := tap.NewIPPool(ipnet)
	pool.Reserve(net.ParseIP(cfg.GatewayIP), gatewayMAC)
	for ip, mac := range leases {
		pool.Reserve(net.ParseIP(ip), mac)
	}
	link, err := tap.NewLinkEndpoint(false, uint32(cfg.MTU), gatewayMAC, cfg.GatewayIP, []string{cfg.HostIP})
	if err != nil {
		return nil, fmt.Errorf("gateway link endpoint: %w", err)
	}
	sw := tap.NewSwitch(false)
	link.Connect(sw)
	sw.Connect(link)
	own := map[tcpip.Address]bool{stackAddr(netip.MustParseAddr(cfg.GatewayIP)): true, stackAddr(netip.MustParseAddr(cfg.HostIP)): true}

	bc := subnet.Addr().As4()
	for i := subnet.Bits(); i < 32; i++ {
		bc[i/8] |= 0x80 >> (i % 8)
	}
	g := &gateway{stack: newIPv4Stack(), sw: sw, pool: pool, subnet: subnet, broadcast: netip.AddrFrom4(bc), outbound: cfg.Outbound,
		refused: &refusals{log: log}, log: log}
	if !cfg.Outbound {
		upstream = noResolver{g.refused}
	}
	if err := g.setUp(cfg, &gatewayLink{LinkEndpoint: link, own: own}, upstream); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// newIPv4Stack is a gVisor stack with IPv4, ARP, TCP, UDP and ICMP.
func newIPv4Stack() *stack.Stack {
	return stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
}

// setUp gives the stack its NIC, address and route, installs the filtered
// forwarders and starts DHCP and DNS.
func (g *gateway) setUp(cfg Config, link stack.LinkEndpoint, upstream resolver) error {
	if err := g.stack.CreateNIC(nicID, link); err != nil {
		return fmt.Errorf("gateway NIC: %s", err)
	}
	gw := stackAddr(netip.MustParseAddr(cfg.GatewayIP))
	if err := g.stack.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: gw.WithPrefix(),
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("gateway address %s: %s", cfg.GatewayIP, err)
	}
	// Promiscuous and spoofing: the stack takes packets for any address
	// (the host address's exposed services, the forwarders) and answers
	// from it.
	if err := g.stack.SetSpoofing(nicID, true); err != nil {
		return fmt.Errorf("gateway spoofing: %s", err)
	}
	if err := g.stack.SetPromiscuousMode(nicID, true); err != nil {
		return fmt.Errorf("gateway promiscuous mode: %s", err)
	}
	sub, err := tcpip.NewSubnet(stackAddr(g.subnet.Addr()), tcpip.MaskFromBytes(net.CIDRMask(g.subnet.Bits(), 32)))
	if err != nil {
		return fmt.Errorf("gateway route %s: %w", g.subnet, err)
	}
	g.stack.SetRouteTable([]tcpip.Route{{Destination: sub, NIC: nicID}})

	// No NAT table: the host address is never translated to the host's
	// loopback (ExposeHost serves chosen ports of it inside the stack).
	var natLock sync.Mutex
	tcpFwd := forwarder.TCP(g.stack, nil, &natLock, false)
	g.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, g.admit("tcp", tcpFwd.HandlePacket))
	udpFwd := forwarder.UDP(g.stack, nil, &natLock, false)
	g.stack.SetTransportProtocolHandler(udp.ProtocolNumber, g.admit("udp", udpFwd.HandlePacket))

	libCfg := &types.Configuration{MTU: cfg.MTU, Subnet: cfg.Subnet, GatewayIP: cfg.GatewayIP}
	if g.dhcp, err = dhcp.New(libCfg, g.stack, g.pool); err != nil {
		return fmt.Errorf("gateway DHCP server: %w", err)
	}
	dnsAddr := tcpip.FullAddress{NIC: nicID, Addr: gw, Port: 53}
	if g.dnsUDP, err = gonet.DialUDP(g.stack, &dnsAddr, nil, ipv4.ProtocolNumber); err != nil {
		return fmt.Errorf("gateway DNS on udp %s:53: %w", cfg.GatewayIP, err)
	}
	if g.dnsTCP, err = gonet.ListenTCP(g.stack, dnsAddr, ipv4.ProtocolNumber); err != nil {
		return fmt.Errorf("gateway DNS on tcp %s:53: %w", cfg.GatewayIP, err)
	}
	srv, err := dns.NewWithUpstreamResolver(g.dnsUDP, g.dnsTCP, nil, upstream)
	if err != nil {
		return fmt.Errorf("gateway DNS server: %w", err)
	}
	for what, serve := range map[string]func() error{"dhcp": g.dhcp.Serve, "dns udp": srv.Serve, "dns tcp": srv.ServeTCP} {
		g.services.Add(1)
		go func() {
			defer g.services.Done()
			if err := serve(); err != nil && !g.closing.Load() {
				g.log.Warn("gateway service ended", "service", what, "err", err)
			}
		}()
	}
	return nil
}

// admit wraps a forwarder's packet handler: a packet for an address the
// guests may reach outside the grid goes to the forwarder; any other one is
// logged (rate-limited) and refused by returning false, so that the stack
// answers it as for a closed port.
func (g *gateway) admit(proto string, fwd func(stack.TransportEndpointID, *stack.PacketBuffer) bool) func(stack.TransportEndpointID, *stack.PacketBuffer) bool {
	return func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		dst := netip.AddrFrom4(id.LocalAddress.As4())
		why := g.refusal(dst)
		if why == "" {
			return fwd(id, pkt)
		}
		if g.worthLogging(proto, dst, pkt) {
			g.refused.note(proto, netip.AddrPortFrom(netip.AddrFrom4(id.RemoteAddress.As4()), id.RemotePort),
				netip.AddrPortFrom(dst, id.LocalPort), why)
		}
		return false
	}
}

// worthLogging reports whether a refused packet is worth a log line: a
// TCP connection attempt (SYN) or a UDP datagram, but not to a broadcast or
// multicast address, where guests' chatter goes.
func (g *gateway) worthLogging(proto string, dst netip.Addr, pkt *stack.PacketBuffer) bool {
	if dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || dst == g.broadcast {
		return false
	}
	if proto == "tcp" {
		h := header.TCP(pkt.TransportHeader().Slice())
		return len(h) >= header.TCPMinimumSize && h.Flags() == header.TCPFlagSyn
	}
	return true
}

// refusal says why a guest's packet to dst, which no endpoint of the
// gateway took, may not be forwarded to the host's network, or "" if it
// may: only addresses outside the grid's subnet that are ordinary unicast
// ones, and only with outbound traffic allowed. A grid address reached this
// way is never forwarded: from the host it would be another network's.
func (g *gateway) refusal(dst netip.Addr) string {
	switch {
	case g.subnet.Contains(dst):
		return "no such service on the grid network"
	case !dst.IsGlobalUnicast():
		return "not a unicast address"
	case !g.outbound:
		return "outbound traffic is off for this grid"
	}
	return ""
}

// stackAddr is an IPv4 address as the stack's.
func stackAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFrom4(a.As4()) }

// gatewayLink is the gateway's link endpoint as its stack sees it. It
// drops ICMP echo requests (pings) for addresses other than the gateway's
// own before the stack sees them: the stack, being promiscuous, would
// answer them itself, so that a ping to any address beyond the grid seemed
// to work although ICMP is never forwarded (the library has no ICMP
// forwarder). And it drops the switch's frames once the stack is gone
// (the library's endpoint would call a nil dispatcher) while guests'
// connections wind down.
type gatewayLink struct {
	*tap.LinkEndpoint
	own map[tcpip.Address]bool

	mu   sync.RWMutex
	next stack.NetworkDispatcher
}

// Attach sets the stack that receives the link's packets (nil: none).
func (l *gatewayLink) Attach(d stack.NetworkDispatcher) {
	l.mu.Lock()
	l.next = d
	l.mu.Unlock()
	l.LinkEndpoint.Attach(l)
}

// IsAttached reports whether a stack receives the link's packets.
func (l *gatewayLink) IsAttached() bool { return l.dispatcher() != nil }

func (l *gatewayLink) dispatcher() stack.NetworkDispatcher {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.next
}

// DeliverNetworkPacket passes pkt (an IP or ARP packet, the Ethernet
// header removed) to the stack unless it is a ping to an address not the
// gateway's.
func (l *gatewayLink) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	d := l.dispatcher()
	if d == nil {
		return
	}
	if proto == ipv4.ProtocolNumber {
		if h, ok := pkt.Data().PullUp(header.IPv4MinimumSize); ok {
			ip := header.IPv4(h)
			if ip.TransportProtocol() == header.ICMPv4ProtocolNumber && !l.own[ip.DestinationAddress()] {
				if b, ok := pkt.Data().PullUp(int(ip.HeaderLength()) + 1); ok && header.ICMPv4Type(b[len(b)-1]) == header.ICMPv4Echo {
					return
				}
			}
		}
	}
	d.DeliverNetworkPacket(proto, pkt)
}

// DeliverLinkPacket passes pkt to the stack's packet endpoints.
func (l *gatewayLink) DeliverLinkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if d := l.dispatcher(); d != nil {
		d.DeliverLinkPacket(proto, pkt)
	}
}

// AcceptQemu serves one VM NIC connection (QEMU's framing) on the switch
// until it ends or ctx is done.
func (g *gateway) AcceptQemu(ctx context.Context, conn net.Conn) error {
	return g.sw.Accept(ctx, conn, types.QemuProtocol)
}

// DialContextTCP opens a TCP connection from the gateway to addr
// ("IP:PORT") on the grid network.
func (g *gateway) DialContextTCP(ctx context.Context, addr string) (net.Conn, error) {
	fa, err := fullAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	return gonet.DialContextTCP(ctx, g.stack, fa, ipv4.ProtocolNumber)
}

// Listen listens on addr ("IP:PORT", any address of the grid network)
// inside the gateway's stack; network must be "tcp".
func (g *gateway) Listen(network, addr string) (net.Listener, error) {
	fa, err := fullAddr(network, addr)
	if err != nil {
		return nil, err
	}
	return gonet.ListenTCP(g.stack, fa, ipv4.ProtocolNumber)
}

// fullAddr parses a TCP address "IP:PORT" as one on the gateway's NIC.
func fullAddr(network, addr string) (tcpip.FullAddress, error) {
	if network != "tcp" {
		return tcpip.FullAddress{}, fmt.Errorf("address %s: network %q is not tcp", addr, network)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return tcpip.FullAddress{}, fmt.Errorf("address %q is not an IPv4 address and port", addr)
	}
	return tcpip.FullAddress{NIC: nicID, Addr: stackAddr(ap.Addr()), Port: ap.Port()}, nil
}

// close stops DHCP, DNS and the stack; frames guests still send are
// dropped (see gatewayLink).
func (g *gateway) close() {
	g.closing.Store(true)
	if g.dhcp != nil {
		g.dhcp.Underlying.Close()
	}
	if g.dnsUDP != nil {
		g.dnsUDP.Close()
	}
	if g.dnsTCP != nil {
		g.dnsTCP.Close()
	}
	g.services.Wait()
	g.stack.Close()
	g.stack.Wait()
}

// resolver is what the library's DNS server asks for names it has no zone
// for (the methods of net.Resolver it uses).
type resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupCNAME(ctx context.Context, host string) (string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupNS(ctx context.Context, name string) ([]*net.NS, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// noResolver is the gateway DNS server's upstream when outbound traffic is
// off: it asks nobody (not even the host's resolver, whose queries would
// leave the machine) and answers every name "not found", after logging it.
type noResolver struct{ refused *refusals }

func (r noResolver) notFound(name string) error {
	r.refused.noteName(name)
	return &net.DNSError{Err: "outbound traffic is off for this grid", Name: name, IsNotFound: true}
}

// LookupIPAddr refuses the lookup.
func (r noResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	return nil, r.notFound(host)
}

// LookupCNAME refuses the lookup.
func (r noResolver) LookupCNAME(_ context.Context, host string) (string, error) {
	return "", r.notFound(host)
}

// LookupMX refuses the lookup.
func (r noResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	return nil, r.notFound(name)
}

// LookupNS refuses the lookup.
func (r noResolver) LookupNS(_ context.Context, name string) ([]*net.NS, error) {
	return nil, r.notFound(name)
}

// LookupSRV refuses the lookup.
func (r noResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	return "", nil, r.notFound(name)
}

// LookupTXT refuses the lookup.
func (r noResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	return nil, r.notFound(name)
}

// Refusal logging: at most refusalBurst lines per refusalWindow; the
// refusals not logged are counted and their number given with the next line.
const (
	refusalBurst  = 5
	refusalWindow = 10 * time.Second
)

// refusals logs the gateway's refusals of guest traffic, rate-limited.
type refusals struct {
	log *slog.Logger

	mu         sync.Mutex
	start      time.Time
	logged     int
	suppressed int
}

// allow reports whether a line may be logged now and how many refusals went
// unlogged before it.
func (r *refusals) allow(now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= refusalWindow {
		r.start, r.logged = now, 0
	}
	if r.logged >= refusalBurst {
		r.suppressed++
		return false, 0
	}
	r.logged++
	n := r.suppressed
	r.suppressed = 0
	return true, n
}

// note logs a refused connection or datagram from a guest.
func (r *refusals) note(proto string, from, to netip.AddrPort, why string) {
	if ok, unlogged := r.allow(time.Now()); ok {
		r.log.Info("guest traffic refused", withUnlogged(unlogged, "proto", proto, "from", from.String(), "to", to.String(), "why", why)...)
	}
}

// noteName logs a refused DNS lookup.
func (r *refusals) noteName(name string) {
	if ok, unlogged := r.allow(time.Now()); ok {
		r.log.Info("guest DNS lookup refused", withUnlogged(unlogged, "name", name, "why", "outbound traffic is off for this grid")...)
	}
}

// withUnlogged adds to a log line's attributes the number of refusals
// left unlogged before it, if any.
func withUnlogged(unlogged int, args ...any) []any {
	if unlogged > 0 {
		args = append(args, "unlogged_before", unlogged)
	}
	return args
}
