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

// Listen listens on a loopback TCP port and writes its address and a fresh
// token into the file sockPath (atomically; it inherits the grid
// directory's per-user ACL) for Dial to find. Only connections that send
// the token are served: any local user can reach a loopback port. If a
// live server answers at the address in an existing sockPath, Listen
// refuses with ErrInUse.
func Listen(sockPath string) (net.Listener, error) {
	if addr, _, err := readAddrFile(sockPath); err == nil {
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.Dial("tcp", addr); err == nil {
			c.Close()
			return nil, fmt.Errorf("gridfs: %w: a server is answering at %s named in %s (is another engine running on this grid?)", ErrInUse, addr, sockPath)
		}
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gridfs: listen on loopback: %w", err)
	}
	err = atomicfile.Write(sockPath, []byte(ln.Addr().String()+" "+token+"\n"), 0o600)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("gridfs: write address file %s: %w", sockPath, err)
	}
	return newTokenListener(ln, token), nil
}

// readAddrFile reads "ADDR TOKEN" from the address file.
func readAddrFile(sockPath string) (addr, token string, err error) {
	b, err := os.ReadFile(sockPath)
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", "", fmt.Errorf("gridfs: address file %s: want ADDRESS TOKEN", sockPath)
	}
	return f[0], f[1], nil
}

func dialAddr(ctx context.Context, sockPath string) (net.Conn, error) {
	addr, token, err := readAddrFile(sockPath)
	if err != nil {
		return nil, err
	}
	return dialToken(ctx, addr, token)
}
