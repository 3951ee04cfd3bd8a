package gridfs

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// tokenLen is the length of the hex token a client of a token-guarded
// listener sends before 9P starts.
const tokenLen = 64

// tokenWait bounds how long a new connection may take to send the token.
const tokenWait = 5 * time.Second

// newToken returns a fresh random token.
func newToken() (string, error) {
	b := make([]byte, tokenLen/2)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("gridfs: token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// tokenListener passes on only the connections that first send its token.
// It guards a loopback TCP port, which any local user can connect to,
// unlike a unix socket in an owner-only directory: only whoever can read
// the owner-only address file holding the token gets in. Connections are
// checked concurrently, so a silent one holds up no other.
type tokenListener struct {
	net.Listener
	token []byte

	conns     chan net.Conn
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	acceptErr error         // why the accept loop stopped; set before stopped is closed
	stopped   chan struct{} // closed when the accept loop stops
}

func newTokenListener(ln net.Listener, token string) *tokenListener {
	l := &tokenListener{Listener: ln, token: []byte(token), conns: make(chan net.Conn),
		done: make(chan struct{}), stopped: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *tokenListener) acceptLoop() {
	defer close(l.stopped)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.acceptErr = err
			return
		}
		go l.check(c)
	}
}

// check hands c to Accept if it sends the token in time, else closes it.
func (l *tokenListener) check(c net.Conn) {
	got := make([]byte, tokenLen)
	c.SetReadDeadline(time.Now().Add(tokenWait))
	_, err := io.ReadFull(c, got)
	c.SetReadDeadline(time.Time{})
	if err != nil || subtle.ConstantTimeCompare(got, l.token) != 1 {
		c.Close()
		return
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// Accept implements net.Listener.
func (l *tokenListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.stopped:
		return nil, l.acceptErr
	}
}

// Close implements net.Listener.
func (l *tokenListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// dialToken connects to a token-guarded listener at addr.
func dialToken(ctx context.Context, addr, token string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, token); err != nil {
		c.Close()
		return nil, fmt.Errorf("send token: %w", err)
	}
	return c, nil
}
