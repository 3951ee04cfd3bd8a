// Package network embeds a virtual Ethernet switch and gateway (the
// gvisor-tap-vsock library, not the gvproxy binary) that gives a grid's VMs
// a private network without root: many QEMUs on one switch, each with a
// fixed MAC derived from its node's UUID and a fixed IP served by DHCP,
// host services (the embedded venti first) reachable from guests at a fixed
// host address, and host-to-guest port forwards on loopback for drawterm and
// 9fs.
//
// Only the host services exposed with Switch.ExposeHost answer at the host
// address; nothing else of the host's loopback is reachable from guests.
// Guests reach addresses outside the grid (the host's LAN, the internet)
// through the gateway's forwarders only when Config.Outbound allows it; by
// default their connections there are refused, and the gateway's DNS asks
// no outside resolver.
//
// QEMU attaches with -netdev stream,server=on: each NIC is a socket server
// inside QEMU, and the engine dials it and hands the connection to
// Switch.AcceptQEMU. So a restarted engine can dial the NICs again (see
// qemu.Supervisor).
package network

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"

	"github.com/google/uuid"
)

// Config is a switch's saved configuration.
type Config struct {
	// Subnet of the grid network (default 192.168.127.0/24).
	Subnet string `json:"subnet,omitempty"`
	// GatewayIP answers DHCP and DNS (default: host 1 of the subnet).
	GatewayIP string `json:"gatewayIP,omitempty"`
	// HostIP is the address at which guests reach the host services the
	// switch exposes (see Switch.ExposeHost), such as the embedded venti
	// (default: host 254).
	HostIP string `json:"hostIP,omitempty"`
	// MTU of the virtual links (default 1500).
	MTU int `json:"mtu,omitempty"`
	// FirstNodeHost is the host number of the first node's address when
	// Plan assigns them (default 10: 192.168.127.10, .11, ...).
	FirstNodeHost int `json:"firstNodeHost,omitempty"`
	// Outbound lets guests reach addresses outside the grid's subnet
	// through the gateway: TCP and UDP to them are carried from the host,
	// and the gateway's DNS asks the host's resolver. Off (the default),
	// guests reach only each other, the gateway's DHCP and DNS and the
	// exposed host services; anything else is refused (TCP reset, ICMP
	// port unreachable) and DNS answers every name "not found". It is
	// fixed for a switch's life: a changed setting takes effect with a new
	// Switch.
	Outbound bool `json:"outbound,omitempty"`
}

// Member is one node's place on the switch.
type Member struct {
	Name string `json:"name"`
	MAC  string `json:"mac"`
	IP   string `json:"ip"`
}

// Defaults returns c with empty fields filled in, or an error naming the
// bad field.
func (c Config) Defaults() (Config, error) {
	if c.Subnet == "" {
		c.Subnet = "192.168.127.0/24"
	}
	p, err := netip.ParsePrefix(c.Subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 24 || p.Bits() < 8 {
		return c, fmt.Errorf("network subnet %q: want an IPv4 CIDR between /8 and /24, such as 192.168.127.0/24", c.Subnet)
	}
	p = p.Masked()
	c.Subnet = p.String()
	host := func(n int) string {
		a := p.Addr().As4()
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		v += uint32(n)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
	}
	if c.GatewayIP == "" {
		c.GatewayIP = host(1)
	}
	if c.HostIP == "" {
		c.HostIP = host(254)
	}
	for _, f := range []struct{ name, v string }{{"gatewayIP", c.GatewayIP}, {"hostIP", c.HostIP}} {
		a, err := netip.ParseAddr(f.v)
		if err != nil || !p.Contains(a) {
			return c, fmt.Errorf("network %s %q is not an address in %s", f.name, f.v, c.Subnet)
		}
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return c, fmt.Errorf("network MTU %d out of range 576..65535", c.MTU)
	}
	if c.FirstNodeHost == 0 {
		c.FirstNodeHost = 10
	}
	return c, nil
}

// MACFromUUID derives a node's fixed MAC from its UUID: QEMU's locally
// administered prefix 52:54:00 and three bytes of the UUID's SHA-256.
func MACFromUUID(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("node UUID %q: %w", id, err)
	}
	h := sha256.Sum256(u[:])
	return net.HardwareAddr{0x52, 0x54, 0x00, h[0], h[1], h[2]}.String(), nil
}

// Plan gives the nodes (name -> UUID, in the order of names) their MACs and
// consecutive addresses from Config.FirstNodeHost, skipping the gateway
// and host addresses. The result is stable for a stable order.
func Plan(cfg Config, names []string, uuids map[string]string) ([]Member, error) {
	cfg, err := cfg.Defaults()
	if err != nil {
		return nil, err
	}
	p := netip.MustParsePrefix(cfg.Subnet)
	a := p.Addr()
	for i := 0; i < cfg.FirstNodeHost; i++ {
		a = a.Next()
	}
	var out []Member
	for _, n := range names {
		for a.String() == cfg.GatewayIP || a.String() == cfg.HostIP {
			a = a.Next()
		}
		if !p.Contains(a) {
			return nil, fmt.Errorf("network %s has no address left for node %s", cfg.Subnet, n)
		}
		mac, err := MACFromUUID(uuids[n])
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n, err)
		}
		out = append(out, Member{Name: n, MAC: mac, IP: a.String()})
		a = a.Next()
	}
	return out, nil
}

// Forward is one host-to-guest port forward.
type Forward struct {
	Node      string `json:"node"`
	GuestPort int    `json:"guestPort"`
	// Host is the loopback address on the host, "127.0.0.1:PORT".
	Host string `json:"host"`
}

// StandardPorts returns the ports forwarded for every cpu/auth/file server: 17010 (old
// cpu), 17019 (rcpu), 567 (auth ticket), 564 (9fs) and 5356 (secstore, which
// drawterm asks before it logs in).
func StandardPorts() []int { return []int{17010, 17019, 567, 564, 5356} }

// VentiPort is the port at which guests find the embedded venti on the
// host address, whatever port it listens on in the host.
const VentiPort = 17034

// Switch is a running virtual network. Its methods are safe for concurrent
// use. There is one Switch per grid; its members are given at New, and
// SetMember adds or readdresses one while the others run.
type Switch struct {
	cfg Config
	vn  *gateway
	log *slog.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu       sync.Mutex
	members  map[string]Member
	forwards map[string][]*forward
	exposed  map[int]*exposure
}

// exposure is one host service exposed on the host address.
type exposure struct {
	hostAddr string
	ln       net.Listener
}

type forward struct {
	Forward
	ln net.Listener
}

// New starts a switch for members (see Plan). It fails on duplicate MACs
// or IPs, or addresses outside the subnet.
func New(cfg Config, members []Member, log *slog.Logger) (*Switch, error) {
	return newSwitch(cfg, members, log, net.DefaultResolver)
}

// newSwitch is New with the resolver the gateway's DNS asks for names
// outside the grid when cfg.Outbound is on.
func newSwitch(cfg Config, members []Member, log *slog.Logger, upstream resolver) (*Switch, error) {
	cfg, err := cfg.Defaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	leases := make(map[string]string)
	byName := make(map[string]Member)
	for _, m := range members {
		if _, dup := byName[m.Name]; dup {
			return nil, fmt.Errorf("node %s listed twice", m.Name)
		}
		m, err := checkMember(cfg, m, byName)
		if err != nil {
			return nil, err
		}
		leases[m.IP] = m.MAC
		byName[m.Name] = m
	}
	// HostIP answers ARP, and ExposeHost listens on chosen ports of it
	// inside the gateway's stack; there is no NAT from it to the host's
	// loopback, which would open every loopback port of the host to guests.
	vn, err := newGateway(cfg, leases, upstream, log)
	if err != nil {
		return nil, fmt.Errorf("start virtual network %s: %w", cfg.Subnet, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Switch{cfg: cfg, vn: vn, log: log, members: byName, ctx: ctx, cancel: cancel,
		forwards: make(map[string][]*forward), exposed: make(map[int]*exposure)}, nil
}

// Config is the switch's configuration with defaults filled in.
func (s *Switch) Config() Config { return s.cfg }

// checkMember checks that m's address is a free one of cfg's subnet and
// that neither it nor m's MAC belongs to another of members (by name),
// and returns m with its MAC in canonical form.
func checkMember(cfg Config, m Member, members map[string]Member) (Member, error) {
	a, err := netip.ParseAddr(m.IP)
	if err != nil || !netip.MustParsePrefix(cfg.Subnet).Contains(a) || m.IP == cfg.GatewayIP || m.IP == cfg.HostIP {
		return m, fmt.Errorf("node %s: address %q is not a free address in %s", m.Name, m.IP, cfg.Subnet)
	}
	hw, err := net.ParseMAC(m.MAC)
	if err != nil {
		return m, fmt.Errorf("node %s: MAC %q: %w", m.Name, m.MAC, err)
	}
	m.MAC = hw.String()
	for _, o := range members {
		switch {
		case o.Name == m.Name:
		case o.IP == m.IP:
			return m, fmt.Errorf("node %s: address %s already belongs to %s", m.Name, m.IP, o.Name)
		case o.MAC == m.MAC:
			return m, fmt.Errorf("node %s: MAC %s already belongs to node %s", m.Name, m.MAC, o.Name)
		}
	}
	return m, nil
}

// Member returns a node's MAC and address.
func (s *Switch) Member(name string) (Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[name]
	return m, ok
}

// SetMember adds member m, or gives the member of that name m's address
// and MAC, while the others run: its DHCP lease is reserved at once (the
// old one released). It fails, changing nothing, when the address or MAC
// belongs to another member. Forwards to a readdressed member keep its old
// address until they are made again.
func (s *Switch) SetMember(m Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := checkMember(s.cfg, m, s.members)
	if err != nil {
		return err
	}
	if old, ok := s.members[m.Name]; ok {
		if old == m {
			return nil
		}
		s.vn.pool.Release(old.MAC)
	}
	s.vn.pool.Reserve(net.ParseIP(m.IP), m.MAC)
	s.members[m.Name] = m
	return nil
}

// AcceptQEMU serves one VM NIC connection (QEMU's length-prefixed frames)
// until it ends, ctx is done or the switch is closed. Call it once per
// connection; any number may run at once.
func (s *Switch) AcceptQEMU(ctx context.Context, conn net.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.ctx.Done():
			conn.Close()
		case <-ctx.Done():
		}
	}()
	return s.vn.AcceptQemu(ctx, conn)
}

// Leases returns the DHCP leases, address -> MAC.
func (s *Switch) Leases() (map[string]string, error) {
	return s.vn.pool.Leases(), nil
}

// DialGuest opens a TCP connection from the gateway to addr ("IP:PORT") on
// the virtual network.
func (s *Switch) DialGuest(ctx context.Context, addr string) (net.Conn, error) {
	c, err := s.vn.DialContextTCP(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s on the virtual network: %w", addr, err)
	}
	return c, nil
}

// Forward listens on the host's loopback and carries each connection to
// guestPort on the node. hostPort 0, or a hostPort already in use, gets a
// free port from the OS; the result says which port was taken.
func (s *Switch) Forward(node string, guestPort, hostPort int) (Forward, error) {
	m, ok := s.Member(node)
	if !ok {
		return Forward{}, fmt.Errorf("forward to node %s: not on this network", node)
	}
	if guestPort <= 0 || guestPort > 65535 || hostPort < 0 || hostPort > 65535 {
		return Forward{}, fmt.Errorf("forward to node %s: bad port %d -> %d", node, hostPort, guestPort)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hostPort)))
	if err != nil && hostPort != 0 {
		s.log.Info("preferred forward port taken; using another", "node", node, "port", hostPort, "err", err)
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return Forward{}, fmt.Errorf("forward to node %s port %d: %w", node, guestPort, err)
	}
	f := &forward{Forward: Forward{Node: node, GuestPort: guestPort, Host: ln.Addr().String()}, ln: ln}
	s.mu.Lock()
	s.forwards[node] = append(s.forwards[node], f)
	s.mu.Unlock()
	target := net.JoinHostPort(m.IP, strconv.Itoa(guestPort))
	s.spliceAccepted(ln, "forward to "+node, func(ctx context.Context) (net.Conn, error) { return s.DialGuest(ctx, target) })
	return f.Forward, nil
}

// spliceAccepted carries every connection ln accepts to one dial makes,
// until ln is closed (what names the listener in logs).
func (s *Switch) spliceAccepted(ln net.Listener, what string, dial func(context.Context) (net.Conn, error)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Debug("accept", "listener", what, "err", err)
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.splice(c, dial)
			}()
		}
	}()
}

// ExposeHost makes a host service reachable from guests at the host address
// (Config.HostIP) on port: the switch listens on HostIP:port inside the
// virtual network and carries each connection to hostAddr ("IP:PORT", on
// the host's loopback as a rule). Only TCP is carried. Exposing a port
// twice is an error.
func (s *Switch) ExposeHost(port int, hostAddr string) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("expose host service %s: bad guest port %d", hostAddr, port)
	}
	if _, _, err := net.SplitHostPort(hostAddr); err != nil {
		return fmt.Errorf("expose host service on port %d: host address %q: %w", port, hostAddr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return fmt.Errorf("expose host service %s: the switch is closed", hostAddr)
	}
	if e, dup := s.exposed[port]; dup {
		return fmt.Errorf("expose host service %s: port %d of the host address already carries %s", hostAddr, port, e.hostAddr)
	}
	addr := net.JoinHostPort(s.cfg.HostIP, strconv.Itoa(port))
	ln, err := s.vn.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("expose host service %s at %s: %w", hostAddr, addr, err)
	}
	s.exposed[port] = &exposure{hostAddr: hostAddr, ln: ln}
	s.spliceAccepted(ln, "host service at "+addr, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", hostAddr)
	})
	s.log.Debug("host service exposed", "guests", addr, "host", hostAddr)
	return nil
}

// Exposed returns the exposed host services, guest port -> host address.
func (s *Switch) Exposed() map[int]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]string, len(s.exposed))
	for p, e := range s.exposed {
		out[p] = e.hostAddr
	}
	return out
}

// splice copies between an accepted connection and a new one made by dial
// until both directions end.
func (s *Switch) splice(host net.Conn, dial func(context.Context) (net.Conn, error)) {
	defer host.Close()
	guest, err := dial(s.ctx)
	if err != nil {
		s.log.Debug("forward", "err", err)
		return
	}
	defer guest.Close()
	stop := context.AfterFunc(s.ctx, func() { host.Close(); guest.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go cp(guest, host)
	go cp(host, guest)
	wg.Wait()
}

// ForwardStandard forwards StandardPorts to node, preferring the same port
// numbers on the host plus offset (0 to let the OS choose every port).
func (s *Switch) ForwardStandard(node string, offset int) ([]Forward, error) {
	var out []Forward
	for _, p := range StandardPorts() {
		hp := 0
		if offset > 0 {
			hp = p + offset
		}
		f, err := s.Forward(node, p, hp)
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Forwards lists the forwards of a node ("" for all), by guest port.
func (s *Switch) Forwards(node string) []Forward {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Forward
	for n, fs := range s.forwards {
		if node != "" && n != node {
			continue
		}
		for _, f := range fs {
			out = append(out, f.Forward)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].GuestPort < out[j].GuestPort
	})
	return out
}

// Close stops the forwards and exposed host services, ends every
// AcceptQEMU and stops the gateway (DHCP, DNS, forwarders, its stack).
func (s *Switch) Close() error {
	s.cancel()
	s.mu.Lock()
	for _, fs := range s.forwards {
		for _, f := range fs {
			f.ln.Close()
		}
	}
	s.forwards = map[string][]*forward{}
	for _, e := range s.exposed {
		e.ln.Close()
	}
	s.exposed = map[int]*exposure{}
	s.mu.Unlock()
	s.wg.Wait()
	s.closeOnce.Do(s.vn.close)
	return nil
}
