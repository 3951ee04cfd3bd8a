package vmtest

import (
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/network"
	"gridlord/testing/standin"
)

// outsideGreeting is what the stand-in for an address beyond the grid
// sends to each connection.
const outsideGreeting = "outside-says-hello"

// serveOutside listens on one of this machine's own non-loopback IPv4
// addresses (nothing leaves the machine; the gateway never routes guests
// to 127/8 at all), standing in for an address beyond the grid: it greets
// every connection and reports where each came from. It skips the test on
// a machine without such an address.
func serveOutside(t *testing.T) (addr *net.TCPAddr, reached <-chan net.Addr) {
	t.Helper()
	var ip net.IP
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			ip = n.IP.To4()
			break
		}
	}
	if ip == nil {
		t.Skip("this machine has no non-loopback IPv4 address to stand in for an outside one")
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Addr, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c.RemoteAddr()
			fmt.Fprintf(c, "%s\n", outsideGreeting)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr), ch
}

// bootGrid starts stand-in guests for names on a switch made with cfg, the
// venti exposed at its host address, and waits until each has its fixed
// address by DHCP. Everything stops when the test ends.
func bootGrid(t *testing.T, im *standin.Image, venti hostVenti, cfg network.Config, names ...string) (*network.Switch, []network.Member, map[string]*console.Expecter) {
	t.Helper()
	members := plan(t, cfg, names...)
	sw, err := network.New(cfg, members, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	venti.expose(t, sw)
	sup := newSupervisor(t, shortTempDir(t), sw)
	t.Cleanup(func() { sup.Close() })
	cons := map[string]*console.Expecter{}
	for _, m := range members {
		n := start(t, sup, spec(im, m.Name, m.MAC))
		e := console.NewExpecter(n.Console, true)
		t.Cleanup(func() { e.Close() })
		cons[m.Name] = e
	}
	for _, m := range members {
		if ip := waitReady(t, cons[m.Name]); ip != m.IP {
			t.Fatalf("%s got address %s by DHCP, want its fixed %s", m.Name, ip, m.IP)
		}
	}
	return sw, members, cons
}

// TestOutbound: real guests on a switch with Config.Outbound off (the
// default) take their fixed addresses by DHCP, reach each other and the
// host's venti exposed at the host address, but a connection to one of
// this machine's own non-loopback addresses (a stand-in for anything
// beyond the grid) is refused and never arrives, a ping there is not
// answered while the gateway's own is, and the gateway's DNS answers a
// name beyond the grid NXDOMAIN. On a switch with Outbound on, a
// guest's connection to the same address arrives and is answered, and the
// exposed venti still works.
func TestOutbound(t *testing.T) {
	im := image(t)
	venti := embeddedVenti(t)
	out, reached := serveOutside(t)
	ncOut := fmt.Sprintf("echo hi | nc -w 5 %s %d; echo nc-exit-$?-$((3*3))", out.IP, out.Port)

	t.Run("off", func(t *testing.T) {
		sw, members, cons := bootGrid(t, im, venti, network.Config{}, "venti", "fossil")
		// The grid's own traffic: guest to guest, guest to the exposed venti.
		shell(t, cons["fossil"], listenCmd(7000, "pong-from-fossil", "/tmp/got")+"; echo listening-$((7000+1))",
			regexp.MustCompile(`listening-7001`))
		shell(t, cons["venti"], fmt.Sprintf("echo ping | nc -w 10 %s 7000", members[1].IP),
			regexp.MustCompile(`pong-from-fossil`))
		shell(t, cons["fossil"], venti.probe(sw), venti.Banner)

		// Beyond the grid: refused at once, never arrives.
		begin := time.Now()
		got := shell(t, cons["fossil"], ncOut, regexp.MustCompile(`nc-exit-([0-9]+)-9`))
		if got[1] == "0" {
			t.Errorf("outbound off: the guest's nc to %s succeeded", out)
		}
		if d := time.Since(begin); d > 4*time.Second {
			t.Errorf("outbound off: nc to %s took %v: timed out rather than refused", out, d)
		}
		select {
		case from := <-reached:
			t.Fatalf("outbound off: a guest's connection reached %s (from %v)", out, from)
		case <-time.After(time.Second):
		}
		// ICMP: the gateway answers its own pings; nothing seems to answer
		// from beyond the grid.
		shell(t, cons["fossil"], fmt.Sprintf("ping -c 1 -W 5 %s >/dev/null; echo ping-gw-$?-$((5*5))", sw.Config().GatewayIP),
			regexp.MustCompile(`ping-gw-0-25`))
		shell(t, cons["fossil"], fmt.Sprintf("ping -c 1 -W 2 %s >/dev/null; echo ping-out-$?-$((6*6))", out.IP),
			regexp.MustCompile(`ping-out-1-36`))
		shell(t, cons["fossil"], fmt.Sprintf("nslookup beyond-the-grid.example %s 2>&1; echo ns-$((4+4))", sw.Config().GatewayIP),
			regexp.MustCompile(`NXDOMAIN[^\n]*\n(?s:.*)ns-8`))
		// The exposed venti still works after the refusals.
		shell(t, cons["venti"], venti.probe(sw), venti.Banner)
	})

	t.Run("on", func(t *testing.T) {
		sw, _, cons := bootGrid(t, im, venti, network.Config{Outbound: true}, "cpu")
		e := cons["cpu"]
		shell(t, e, ncOut, regexp.MustCompile(outsideGreeting+`\s+nc-exit-0-9`))
		select {
		case from := <-reached:
			t.Logf("outbound on: the guest's connection reached %s from %v", out, from)
		case <-time.After(5 * time.Second):
			t.Fatalf("outbound on: the guest's connection never reached %s", out)
		}
		shell(t, e, venti.probe(sw), venti.Banner)
	})
}
