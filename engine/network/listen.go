package network

import (
	"fmt"
	"net"
	"strconv"
)

// ListenHost listens at the host address (Config.HostIP) on port inside the
// virtual network and returns the listener: a service of the engine itself
// that only guests reach, with no socket on the host at all (unlike
// ExposeHost, which carries connections to a host address). The port
// counts as exposed; the listener closes with the switch.
func (s *Switch) ListenHost(port int) (net.Listener, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("listen on the host address: bad port %d", port)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("listen on the host address port %d: the switch is closed", port)
	}
	if e, dup := s.exposed[port]; dup {
		return nil, fmt.Errorf("listen on the host address: port %d already carries %s", port, e.hostAddr)
	}
	addr := net.JoinHostPort(s.cfg.HostIP, strconv.Itoa(port))
	ln, err := s.vn.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen at %s in the grid network: %w", addr, err)
	}
	s.exposed[port] = &exposure{hostAddr: "(engine, in the grid network only)", ln: ln}
	return ln, nil
}
