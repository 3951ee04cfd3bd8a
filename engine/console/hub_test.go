package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// vm returns a hub attached to one end of a pipe and the other end, which
// plays the VM's serial port.
func vm(t *testing.T, opts Options) (*Hub, net.Conn, <-chan struct{}) {
	t.Helper()
	h, err := New("test", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	a, b := net.Pipe()
	done := h.Attach(a)
	return h, b, done
}

func readN(t *testing.T, r *Reader, n int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []byte
	buf := make([]byte, 64)
	for len(out) < n {
		k, err := r.ReadContext(ctx, buf)
		if err != nil {
			t.Fatalf("read after %q: %v", out, err)
		}
		out = append(out, buf[:k]...)
	}
	return string(out)
}

func TestFanOutAndScrollback(t *testing.T) {
	dir := t.TempDir()
	h, serial, _ := vm(t, Options{LogPath: filepath.Join(dir, "console.log")})
	r1 := h.Subscribe(false)
	r2 := h.Subscribe(false)
	serial.Write([]byte("boot line 1\r\nboot line 2\r\n"))
	if got := readN(t, r1, 26); got != "boot line 1\r\nboot line 2\r\n" {
		t.Errorf("r1 got %q", got)
	}
	if got := readN(t, r2, 26); got != "boot line 1\r\nboot line 2\r\n" {
		t.Errorf("r2 got %q", got)
	}
	late := h.Subscribe(true)
	if got := readN(t, late, 26); !strings.HasPrefix(got, "boot line 1") {
		t.Errorf("late reader's scrollback %q", got)
	}
	if got := h.LastLines(1); len(got) != 1 || got[0] != "boot line 2" {
		t.Errorf("LastLines = %q", got)
	}
	// Two writers reach the VM.
	go h.Write([]byte("a"))
	go h.Write([]byte("b"))
	buf := make([]byte, 2)
	io.ReadFull(serial, buf)
	if s := string(buf); s != "ab" && s != "ba" {
		t.Errorf("VM got %q", s)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
	if string(b) != "boot line 1\r\nboot line 2\r\n" {
		t.Errorf("log = %q", b)
	}
}

func TestSlowReaderDoesNotStall(t *testing.T) {
	h, serial, _ := vm(t, Options{ReaderBuffer: 100, Scrollback: 50})
	slow := h.Subscribe(false) // never reads
	fast := h.Subscribe(false)
	chunk := bytes.Repeat([]byte("x"), 40)
	for i := 0; i < 100; i++ {
		if _, err := serial.Write(chunk); err != nil {
			t.Fatal(err)
		}
		readN(t, fast, 40)
	}
	if d := slow.Dropped(); d != 4000-100 {
		t.Errorf("slow reader dropped %d bytes, want %d", d, 4000-100)
	}
	if got := readN(t, slow, 100); len(got) != 100 {
		t.Errorf("slow reader kept %d bytes", len(got))
	}
	if n := len(h.Scrollback()); n != 50 {
		t.Errorf("scrollback %d bytes, want 50", n)
	}
}

func TestDetachReattachAndClose(t *testing.T) {
	h, serial, done := vm(t, Options{})
	r := h.Subscribe(false)
	serial.Close() // QEMU went away
	<-done
	if h.Connected() {
		t.Error("still connected after EOF")
	}
	if _, err := h.Write([]byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Errorf("write while detached: %v", err)
	}
	a, b := net.Pipe()
	h.Attach(a)
	b.Write([]byte("again"))
	if got := readN(t, r, 5); got != "again" {
		t.Errorf("after reattach got %q", got)
	}
	h.Close()
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after close: %v", err)
	}
}

func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.log")
	h, serial, _ := vm(t, Options{LogPath: p, LogMaxBytes: 100, LogKeep: 2})
	r := h.Subscribe(false)
	for i := 0; i < 10; i++ {
		serial.Write(bytes.Repeat([]byte{byte('0' + i)}, 60))
		readN(t, r, 60)
	}
	for _, name := range []string{"c.log", "c.log.1", "c.log.2"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() > 100 {
			t.Errorf("%s: %v size %d", name, err, st.Size())
		}
	}
	if _, err := os.Stat(p + ".3"); err == nil {
		t.Error("more rotated logs than LogKeep")
	}
	b, _ := os.ReadFile(p)
	if !bytes.HasSuffix(b, bytes.Repeat([]byte("9"), 60)) {
		t.Errorf("current log %q lacks the newest output", b)
	}
}

func TestExpect(t *testing.T) {
	h, serial, _ := vm(t, Options{})
	e := NewExpecter(h, true)
	defer e.Close()
	go func() {
		serial.Write([]byte("login: "))
		time.Sleep(10 * time.Millisecond)
		serial.Write([]byte("\r\nREADY ip=10.0.0.2\r\n"))
	}()
	m, err := e.Expect(context.Background(), regexp.MustCompile(`READY ip=(\S+)`), 2*time.Second)
	if err != nil || m[1] != "10.0.0.2" {
		t.Fatalf("Expect = %q, %v", m, err)
	}
	go func() {
		buf := make([]byte, 64)
		n, _ := serial.Read(buf)
		serial.Write([]byte("echo: " + string(buf[:n])))
	}()
	if err := e.SendLine("uname"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Expect(context.Background(), regexp.MustCompile(`echo: uname\r`), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err = e.Expect(context.Background(), regexp.MustCompile(`never`), 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
}
