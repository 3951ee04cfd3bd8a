package venti_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"gridlord/engine/venti"
	"gridlord/engine/venti/storetest"
)

// The conformance suite against a Client talking to a Server backed by a
// MemStore, in every protocol mode.
func TestClientStore(t *testing.T) {
	modes := []struct {
		name string
		opts []venti.ClientOption
		want string
	}{
		{"v04", nil, venti.Version04},
		{"v02", []venti.ClientOption{venti.WithVersions(venti.Version02)}, venti.Version02},
		{"serial-tag0", []venti.ClientOption{venti.WithVersions(venti.Version02), venti.WithSerialTag0()}, venti.Version02},
	}
	for _, m := range modes {
		t.Run("loopback-"+m.name, func(t *testing.T) {
			storetest.Test(t, func(t *testing.T) venti.Store {
				c := dial(t, serve(t, venti.NewMemStore()), m.opts...)
				if c.Version() != m.want {
					t.Fatalf("negotiated %q, want %q", c.Version(), m.want)
				}
				return c
			})
		})
	}
	t.Run("pipe", func(t *testing.T) {
		storetest.Test(t, func(t *testing.T) venti.Store {
			c, _ := pipeClient(t, venti.NewMemStore())
			return c
		})
	})
}

func TestClientPingSyncClose(t *testing.T) {
	ctx := context.Background()
	c, res := pipeClient(t, venti.NewMemStore())
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Tgoodbye ends the connection cleanly: ServeConn returns nil.
	if err := res.wait(t); err != nil {
		t.Fatalf("ServeConn after goodbye: %v", err)
	}
	if err := c.Ping(ctx); !errors.Is(err, venti.ErrClientClosed) {
		t.Fatalf("ping after close: %v, want ErrClientClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// Versions offered in the opposite order: by libventi's rule the server
// picks 02 and the client 04. The server follows the client's framing
// instead of refusing the hello.
func TestClientVersionOrder(t *testing.T) {
	addr := serve(t, venti.NewMemStore())
	c := dial(t, addr, venti.WithVersions(venti.Version02, venti.Version04))
	if c.Version() != venti.Version04 {
		t.Fatalf("offering 02:04 negotiated %q, want 04 (first of the server's list)", c.Version())
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := venti.Dial(context.Background(), addr, venti.WithVersions("05")); err == nil {
		t.Fatal("dial offering version 05 succeeded")
	}
}

// Replies come back out of order: a read whose block is gated is answered
// after a later read, through the multiplexing client.
func TestClientOutOfOrder(t *testing.T) {
	ctx := context.Background()
	st := newGateStore()
	c := dial(t, serve(t, st))
	slow, _ := st.MemStore.Write(ctx, venti.DataType, []byte("slow block"))
	fast, _ := st.MemStore.Write(ctx, venti.DataType, []byte("fast block"))
	open := st.gate(slow)
	defer open()

	slowDone := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, slow, venti.DataType, 100)
		slowDone <- err
	}()
	<-st.entered // the slow read is at the store, holding its tag
	if got, err := c.Read(ctx, fast, venti.DataType, 100); err != nil || string(got) != "fast block" {
		t.Fatalf("fast read: %q %v", got, err)
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow read finished (%v) before its gate opened", err)
	default:
	}
	open()
	if err := <-slowDone; err != nil {
		t.Fatalf("slow read: %v", err)
	}
}

// Cancelling one call returns ctx.Err() to that caller only; the
// connection stays usable and the late reply is discarded.
func TestClientCancel(t *testing.T) {
	ctx := context.Background()
	st := newGateStore()
	c := dial(t, serve(t, st))
	abandoned, open := cancelGatedRead(t, st, c)
	defer open()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after cancel: %v", err)
	}
	open()
	// Cycle through every tag: the abandoned one must come back free and
	// its late reply must not be delivered to anybody else.
	for i := 0; i < 300; i++ {
		data := []byte(fmt.Sprintf("block %d", i))
		s, err := c.Write(ctx, venti.DataType, data)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got, err := c.Read(ctx, s, venti.DataType, 100)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d: %q %v", i, got, err)
		}
	}
	// The late reply went nowhere: not into the abandoned caller's buffer.
	checkUntouched(t, abandoned)
}

// cancelGatedRead starts a ReadInto of a block the store holds back,
// cancels it once the server has the request and checks that it returns
// context.Canceled. It returns the caller's buffer, which the late reply
// must never reach (see checkUntouched), and the gate's opener.
func cancelGatedRead(t *testing.T, st *gateStore, c *venti.Client) (abandoned []byte, open func()) {
	t.Helper()
	ctx := context.Background()
	slow, _ := st.MemStore.Write(ctx, venti.DataType, []byte("slow block"))
	open = st.gate(slow)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	abandoned = bytes.Repeat([]byte{0xEE}, 100)
	go func() {
		_, err := c.ReadInto(cctx, slow, venti.DataType, 100, abandoned)
		done <- err
	}()
	<-st.entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		open()
		t.Fatalf("cancelled read: %v, want context.Canceled", err)
	}
	return abandoned, open
}

// checkUntouched fails if a buffer from cancelGatedRead was written.
func checkUntouched(t *testing.T, abandoned []byte) {
	t.Helper()
	if !bytes.Equal(abandoned, bytes.Repeat([]byte{0xEE}, len(abandoned))) {
		t.Fatalf("a cancelled ReadInto's buffer was written after it returned: %q", abandoned[:16])
	}
}

func TestClientReadInto(t *testing.T) {
	ctx := context.Background()
	c := dial(t, serve(t, venti.NewMemStore()))
	data := bytes.Repeat([]byte("venti"), 300)
	s, err := c.Write(ctx, venti.DataType, data)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	got, err := c.ReadInto(ctx, s, venti.DataType, venti.MaxBlock, buf)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadInto: %d bytes, %v", len(got), err)
	}
	if &got[0] != &buf[:1][0] {
		t.Error("ReadInto with room in buf did not read into it")
	}
	small := make([]byte, 10)
	got, err = c.ReadInto(ctx, s, venti.DataType, venti.MaxBlock, small)
	if err != nil || !bytes.Equal(got, data) || !bytes.Equal(small, make([]byte, 10)) {
		t.Fatalf("ReadInto with a small buf: %d bytes, %v; buf %q", len(got), err, small)
	}
	var _ venti.ReaderInto = c
}

// In tag-0 mode a cancelled call keeps the only tag busy until its reply
// arrives: the next call waits for it.
func TestClientCancelSerial(t *testing.T) {
	ctx := context.Background()
	st := newGateStore()
	c := dial(t, serve(t, st), venti.WithSerialTag0(), venti.WithVersions(venti.Version02))
	abandoned, open := cancelGatedRead(t, st, c)
	defer open()
	tctx, tcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer tcancel()
	if err := c.Ping(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping while tag 0 is busy: %v, want DeadlineExceeded", err)
	}
	open()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after the late reply: %v", err)
	}
	// The late reply has been read (tag 0 was free for the ping), and went
	// nowhere: not into the cancelled caller's buffer.
	checkUntouched(t, abandoned)
}

// 256 requests may be in flight; the 257th waits for a free tag.
func TestClientTagLimit(t *testing.T) {
	ctx := context.Background()
	st := newGateStore()
	c := dial(t, serve(t, st))
	slow, _ := st.MemStore.Write(ctx, venti.DataType, []byte("slow block"))
	open := st.gate(slow)
	defer open()
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for i := 0; i < 256; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Read(ctx, slow, venti.DataType, 100); err != nil {
				errs <- err
			}
		}()
	}
	for i := 0; i < 256; i++ {
		<-st.entered // all 256 are at the store at once: the server runs them concurrently
	}
	tctx, tcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer tcancel()
	if err := c.Ping(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("257th request: %v, want DeadlineExceeded", err)
	}
	open()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// After the connection fails every call, pending or new, returns an error.
func TestClientConnectionFailure(t *testing.T) {
	ctx := context.Background()
	st := newGateStore()
	cc, sc := net.Pipe()
	sctx, scancel := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- venti.NewServer(st).ServeConn(sctx, sc) }()
	c, err := venti.NewClient(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	slow, _ := st.MemStore.Write(ctx, venti.DataType, []byte("slow block"))
	open := st.gate(slow)
	defer open()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, slow, venti.DataType, 100)
		done <- err
	}()
	<-st.entered
	sc.Close() // the connection breaks under the server
	err = <-done
	var se *venti.ServerError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("pending read: %v, want a connection error", err)
	}
	t.Logf("pending read: %v", err)
	if err := c.Ping(ctx); err == nil {
		t.Fatal("ping succeeded after the connection died")
	}
	scancel()
	<-srvDone
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:1234":     "127.0.0.1:1234",
		"localhost":          "localhost:17034",
		"tcp!10.0.2.2!17034": "10.0.2.2:17034",
		"tcp!host!venti":     "host:17034",
		"net!host!99":        "host:99",
		"tcp!host":           "host:17034",
		"host!5":             "host:5",
		"[::1]:7":            "[::1]:7",
		"::1":                "[::1]:17034",
		"[::1]":              "[::1]:17034",
	} {
		got, err := venti.ParseAddr(in)
		if err != nil || got != want {
			t.Errorf("ParseAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "udp!h!1", "h:0", "h:x", "a!b!c!d", "tcp!*!1", "h:70000"} {
		if got, err := venti.ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) = %q, want error", bad, got)
		}
	}
}

// fakeServer accepts one connection, speaks a libventi server's version
// line, checks the client's version line and Thello bytes, answers Rhello
// and then answers each request with reply(request) (nil: hang up).
func fakeServer(t *testing.T, version, line, wantLine string, wantHello []byte, reply func(venti.Message) *venti.Message) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if _, err := c.Write([]byte(line)); err != nil {
			t.Errorf("fake server: %v", err)
			return
		}
		got := make([]byte, len(wantLine)+len(wantHello))
		if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, cat(wantLine, wantHello)) {
			t.Errorf("fake server: client sent\n% x (%v), want\n% x", got, err, cat(wantLine, wantHello))
			return
		}
		rh, _ := (&venti.Message{Type: venti.Rhello, SID: "anonymous"}).Marshal(version)
		c.Write(rh)
		for {
			m, err := venti.ReadMessage(br, version)
			if err != nil {
				return
			}
			r := reply(m)
			if r == nil {
				return
			}
			if err := venti.WriteMessage(c, r, version); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// The client's handshake bytes against a plan9port server (04) and a
// 9front server (02), and its checks of what a server sends back.
func TestClientAgainstLibventiServers(t *testing.T) {
	ctx := context.Background()
	t.Run("p9p", func(t *testing.T) {
		lie := venti.Sum([]byte("other"))
		addr := fakeServer(t, "04", "venti-04:02-libventi\n", "venti-04:02-gridlord\n",
			cat(hx("00 00 00 14 04 00 00 02"), "04", hx("00 09"), "anonymous", hx("00 00 00")),
			func(m venti.Message) *venti.Message {
				switch {
				case m.Type == venti.Twrite:
					return &venti.Message{Type: venti.Rwrite, Tag: m.Tag, Score: lie}
				case m.Type == venti.Tread && m.Score == lie:
					return &venti.Message{Type: venti.Rread, Tag: m.Tag, Data: []byte("not other")}
				case m.Type == venti.Tread:
					return &venti.Message{Type: venti.Rerror, Tag: m.Tag, Error: fmt.Sprintf("no block with score %v/13 exists", m.Score)}
				case m.Type == venti.Tping:
					return &venti.Message{Type: venti.Rping, Tag: m.Tag + 1} // a tag nobody asked with
				}
				return nil
			})
		c := dial(t, addr)
		if c.Version() != "04" {
			t.Fatalf("version %q, want 04", c.Version())
		}
		if _, err := c.Write(ctx, venti.DataType, []byte("honest")); err == nil || !strings.Contains(err.Error(), "server returned score") {
			t.Fatalf("write answered with a wrong score: %v", err)
		}
		if _, err := c.Read(ctx, lie, venti.DataType, 100); !errors.Is(err, venti.ErrCorrupt) {
			t.Fatalf("read answered with wrong data: %v, want ErrCorrupt", err)
		}
		if _, err := c.Read(ctx, venti.Sum([]byte("x")), venti.DataType, 100); !errors.Is(err, venti.ErrNotFound) {
			t.Fatalf("read of a missing block: %v, want ErrNotFound", err)
		}
		if err := c.Ping(ctx); err == nil {
			t.Fatal("ping answered on a wrong tag succeeded")
		}
		if err := c.Ping(ctx); err == nil || !strings.Contains(err.Error(), "no request in flight") {
			t.Fatalf("call after a protocol error: %v", err)
		}
	})
	t.Run("9front", func(t *testing.T) {
		addr := fakeServer(t, "02", "venti-02-libventi\n", "venti-04:02-gridlord\n",
			cat(hx("00 14 04 00 00 02"), "02", hx("00 09"), "anonymous", hx("00 00 00")),
			func(m venti.Message) *venti.Message {
				if m.Type == venti.Tping {
					return &venti.Message{Type: venti.Rping, Tag: m.Tag}
				}
				return nil
			})
		c := dial(t, addr, venti.WithDialTimeout(5*time.Second))
		if c.Version() != "02" {
			t.Fatalf("version %q, want 02", c.Version())
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("liboventi-serial", func(t *testing.T) {
		addr := fakeServer(t, "02", "venti-02-libventi\n", "venti-02-gridlord\n",
			cat(hx("00 14 04 00 00 02"), "02", hx("00 09"), "anonymous", hx("00 00 00")),
			func(m venti.Message) *venti.Message {
				if m.Tag != 0 {
					return &venti.Message{Type: venti.Rerror, Tag: m.Tag, Error: "tag not 0"}
				}
				return &venti.Message{Type: venti.Rping}
			})
		c := dial(t, addr, venti.WithVersions("02"), venti.WithSerialTag0())
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.Ping(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	})
}

// Serve stops on cancel, closing live connections, and reports a failed
// listener.
func TestServeShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- venti.NewServer(venti.NewMemStore()).Serve(ctx, ln) }()
	c := dial(t, ln.Addr().String())
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := c.Ping(context.Background()); err == nil {
		t.Fatal("ping succeeded after the server stopped")
	}

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- venti.NewServer(venti.NewMemStore()).Serve(context.Background(), ln2) }()
	time.Sleep(10 * time.Millisecond)
	ln2.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve on a closed listener returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its listener closed")
	}
}

// failStore fails every operation.
type failStore struct{}

func (failStore) Read(context.Context, venti.Score, venti.Type, int) ([]byte, error) {
	return nil, errors.New("disk on fire")
}
func (failStore) Write(context.Context, venti.Type, []byte) (venti.Score, error) {
	return venti.Score{}, errors.New("disk on fire")
}
func (failStore) Sync(context.Context) error { return errors.New("disk on fire") }

// Store errors reach the client as the server's text.
func TestClientStoreErrors(t *testing.T) {
	ctx := context.Background()
	c, _ := pipeClient(t, failStore{})
	var se *venti.ServerError
	if _, err := c.Write(ctx, venti.DataType, []byte("x")); !errors.As(err, &se) || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("write: %v", err)
	}
	if _, err := c.Read(ctx, venti.Sum([]byte("x")), venti.DataType, 10); !errors.As(err, &se) || errors.Is(err, venti.ErrNotFound) {
		t.Errorf("read: %v", err)
	}
	if err := c.Sync(ctx); !errors.As(err, &se) {
		t.Errorf("sync: %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("ping after errors: %v", err)
	}
}

// Read counts of 64 KiB and more travel as 4-byte counts in 04 and are
// clamped to what a 02 frame can carry in 02.
func TestClientLargeCount(t *testing.T) {
	ctx := context.Background()
	for _, v := range []string{venti.Version02, venti.Version04} {
		c := dial(t, serve(t, venti.NewMemStore()), venti.WithVersions(v))
		data := bytes.Repeat([]byte{1}, venti.MaxBlock)
		s, err := c.Write(ctx, venti.DataType, data)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Read(ctx, s, venti.DataType, 100000); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read with count 100000: %v", v, err)
		}
	}
}
