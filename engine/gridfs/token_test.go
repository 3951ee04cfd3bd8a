package gridfs

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// The token guard used on Windows, where gridfs listens on loopback TCP:
// only a client sending the token is accepted, a wrong or silent one is
// closed without holding up the others, and Close ends Accept.
func TestTokenListener(t *testing.T) {
	token, err := newToken()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newTokenListener(raw, token)
	addr := raw.Addr().String()
	ctx := context.Background()

	// A silent connection first: it must not block the good one.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	wrong, err := dialToken(ctx, addr, strings.Repeat("0", tokenLen))
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	good, err := dialToken(ctx, addr, token)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	io.WriteString(good, "Tversion")

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	select {
	case c := <-accepted:
		b := make([]byte, 8)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "Tversion" {
			t.Errorf("accepted connection reads %q, %v: want the bytes after the token", b, err)
		}
		c.Close()
	case <-time.After(tokenWait / 2):
		t.Fatal("the client with the token was not accepted while a silent one waited")
	}
	wrong.SetReadDeadline(time.Now().Add(tokenWait))
	if _, err := wrong.Read(make([]byte, 1)); err == nil {
		t.Error("a client with a wrong token was not hung up on")
	}

	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end Accept")
	}
}
