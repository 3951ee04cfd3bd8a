//go:build windows

package gridfs

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"gridlord/engine/atomicfile"
)

// Listen listens on a loopback TCP port and writes its address into the
// file sockPath (atomically) for Dial to find. If a live server answers at
// the address in an existing sockPath, Listen refuses with ErrInUse.
func Listen(sockPath string) (net.Listener, error) {
	if b, err := os.ReadFile(sockPath); err == nil {
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.Dial("tcp", strings.TrimSpace(string(b))); err == nil {
			c.Close()
			return nil, fmt.Errorf("gridfs: %w: a server is answering at %s named in %s (is another engine running on this grid?)", ErrInUse, strings.TrimSpace(string(b)), sockPath)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gridfs: listen on loopback: %w", err)
	}
	err = atomicfile.Write(sockPath, []byte(ln.Addr().String()+"\n"), 0o600)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("gridfs: write address file %s: %w", sockPath, err)
	}
	return ln, nil
}

func dialAddr(ctx context.Context, sockPath string) (net.Conn, error) {
	b, err := os.ReadFile(sockPath)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", strings.TrimSpace(string(b)))
}
