package drawterm

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"gridlord/testing/testenv"
)

// TestLaunchRealDrawterm runs the installed drawterm (drawterm-9front from
// Debian installs as /usr/bin/drawterm) at two loopback listeners standing
// in for a cpu and an auth server. drawterm must dial both with our
// arguments (secstore goes to the auth address and names the user), fail
// the handshake and exit non-zero, which Launch must report.
func TestLaunchRealDrawterm(t *testing.T) {
	testenv.Integration(t)
	b, err := Find(context.Background(), "")
	if err != nil {
		t.Fatalf("%v (scripts/setup.sh installs drawterm-9front)", err)
	}
	t.Logf("found %s (%s)", b.Path, b.Flavor)
	got := make(chan string, 4)
	listen := func(name string) string {
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
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 256)
				n, _ := io.ReadAtLeast(c, buf, 1)
				got <- name + ":" + string(buf[:n])
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	cpu, auth := listen("cpu"), listen("auth")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Launch(ctx, b, Target{CPU: cpu, Auth: auth, User: "glenda", Password: "secret", NoGraphics: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	if err == nil || s.ExitCode() <= 0 {
		t.Fatalf("drawterm against fake servers: err %v exit %d; output %q", err, s.ExitCode(), out.String())
	}
	var seen []string
	for len(got) > 0 {
		seen = append(seen, <-got)
	}
	all := strings.Join(seen, "\n")
	if !strings.Contains(all, "cpu:") {
		t.Errorf("drawterm never dialled the cpu address; listeners saw %q", seen)
	}
	if b.Flavor == Front9 && !strings.Contains(all, "C=glenda") {
		t.Errorf("drawterm-9front's secstore request for glenda never reached the auth address; listeners saw %q", seen)
	}
	t.Logf("drawterm exited %d (%v), output %q; listeners saw %q", s.ExitCode(), err, out.String(), seen)
}
