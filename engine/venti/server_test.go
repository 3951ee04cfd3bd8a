package venti_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"gridlord/engine/venti"
	"gridlord/testing/p9pdata"
)

// raw is a test client that speaks bytes to a server.
type raw struct {
	t       *testing.T
	c       net.Conn
	br      *bufio.Reader
	version string
}

func rawDial(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, br: bufio.NewReader(c)}
}

// hx decodes hex digits; spaces are ignored.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// cat concatenates strings and byte slices.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("cat: %T", p))
		}
	}
	return b
}

func (r *raw) write(parts ...any) {
	r.t.Helper()
	if _, err := r.c.Write(cat(parts...)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// expect reads exactly len(want) bytes and compares them.
func (r *raw) expect(parts ...any) {
	r.t.Helper()
	want := cat(parts...)
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r.br, got); err != nil {
		r.t.Fatalf("read %d bytes (want % x): %v; got % x", len(want), want, err, got)
	}
	if !bytes.Equal(got, want) {
		r.t.Fatalf("got  % x\nwant % x", got, want)
	}
}

func (r *raw) send(m venti.Message) {
	r.t.Helper()
	b, err := m.Marshal(r.version)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

func (r *raw) recv() venti.Message {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := venti.ReadMessage(r.br, r.version)
	if err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	return m
}

// expectError reads an Rerror with tag and checks its text contains sub.
func (r *raw) expectError(tag uint8, sub string) {
	r.t.Helper()
	m := r.recv()
	if m.Type != venti.Rerror || m.Tag != tag || !strings.Contains(m.Error, sub) {
		r.t.Fatalf("got %v tag %d %q, want Rerror tag %d containing %q", m.Type, m.Tag, m.Error, tag, sub)
	}
}

// expectClosed reads until the server closes the connection and returns
// what came before.
func (r *raw) expectClosed() []byte {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(r.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("server did not close the connection; got % x", b)
	}
	return b
}

// ping checks the connection still answers.
func (r *raw) ping(tag uint8) {
	r.t.Helper()
	r.send(venti.Message{Type: venti.Tping, Tag: tag})
	if m := r.recv(); m.Type != venti.Rping || m.Tag != tag {
		r.t.Fatalf("ping: got %v tag %d", m.Type, m.Tag)
	}
}

// helloRaw connects and says hello as a libventi client of the version.
func helloRaw(t *testing.T, addr, version string) *raw {
	t.Helper()
	r := rawDial(t, addr)
	r.write("venti-" + version + "-libventi\n")
	r.expect("venti-04:02-gridlord\n")
	r.version = version
	r.send(venti.Message{Type: venti.Thello, Version: version, UID: "anonymous"})
	if m := r.recv(); m.Type != venti.Rhello || m.SID != "anonymous" {
		t.Fatalf("hello: got %+v", m)
	}
	return r
}

// A plan9port client's hello, byte for byte: version line, then a Thello
// framed with 4 bytes (00 00 00 14) because both sides chose 04.
func TestWireP9PHello(t *testing.T) {
	r := rawDial(t, serve(t, venti.NewMemStore()))
	r.write("venti-04:02-libventi\n")
	r.expect("venti-04:02-gridlord\n")
	r.write(hx("00 00 00 14  04 00  00 02"), "04", hx("00 09"), "anonymous", hx("00 00 00"))
	r.expect(hx("00 00 00 0f  05 00  00 09"), "anonymous", hx("00 00"))
	// Tping tag 7 -> Rping tag 7.
	r.write(hx("00 00 00 02  02 07"))
	r.expect(hx("00 00 00 02  03 07"))
	// Tread with a 4-byte count (04 only): 20000 = 00 00 4e 20.
	data := []byte("p9p block")
	s := venti.Sum(data)
	r.write(hx("00 00 00 0f  0e 01  0d 00 00 00"), data)
	r.expect(hx("00 00 00 16  0f 01"), s[:])
	r.write(hx("00 00 00 1c  0c 02"), s[:], hx("0d 00  00 00 4e 20"))
	r.expect(hx("00 00 00 0b  0d 02"), data)
	// Tgoodbye: no reply, the server closes.
	r.write(hx("00 00 00 02  06 00"))
	if b := r.expectClosed(); len(b) != 0 {
		t.Fatalf("reply to Tgoodbye: % x", b)
	}
}

// A Plan 9 / 9front client speaks only 02: 2-byte frames. The block is the
// one plan9port's venti/write stored (testing/p9pdata/README.md; its real score).
func TestWire9frontSession(t *testing.T) {
	r := rawDial(t, serve(t, venti.NewMemStore()))
	r.write("venti-02-libventi\n")
	r.expect("venti-04:02-gridlord\n")
	r.write(hx("00 14  04 00  00 02"), "02", hx("00 09"), "anonymous", hx("00 00 00"))
	r.expect(hx("00 0f  05 00  00 09"), "anonymous", hx("00 00"))

	data := "a single data block\n"
	score := hx("89b2a8ac40d7d723f1445396ee005d2eee047da4")
	// Twrite tag 1, type 13 (data), pad[3].
	r.write(hx("00 1a  0e 01  0d 00 00 00"), data)
	r.expect(hx("00 16  0f 01"), score)
	// Tread tag 2, count 8192.
	r.write(hx("00 1a  0c 02"), score, hx("0d 00  20 00"))
	r.expect(hx("00 16  0d 02"), data)
	// Count too small: p9p's words.
	msg := "read too small: asked for 5 need at least 20"
	r.write(hx("00 1a  0c 03"), score, hx("0d 00  00 05"))
	r.expect(hx("00"), []byte{byte(4 + len(msg))}, hx("01 03 00"), []byte{byte(len(msg))}, msg)
	// Same score, other type: the type is part of the key.
	r.version = venti.Version02
	r.write(hx("00 1a  0c 04"), score, hx("02 00  20 00"))
	r.expectError(4, "no block with score 89b2a8ac40d7d723f1445396ee005d2eee047da4/2 exists")
	// Tsync tag 5 -> Rsync tag 5.
	r.write(hx("00 02  10 05"))
	r.expect(hx("00 02  11 05"))
	// A 4-byte Tread count is a 04 feature: refused in 02.
	r.write(hx("00 1c  0c 06"), score, hx("0d 00  00 00 20 00"))
	r.expectError(6, "Tread count is 4 bytes")
	r.ping(7)
}

// Bell Labs liboventi clients: tag 0, one request at a time.
func TestWireSerialTag0(t *testing.T) {
	r := helloRaw(t, serve(t, venti.NewMemStore()), venti.Version02)
	for i := 0; i < 3; i++ {
		data := []byte(fmt.Sprintf("liboventi block %d", i))
		r.send(venti.Message{Type: venti.Twrite, BlockType: venti.DirType, Data: data})
		if m := r.recv(); m.Type != venti.Rwrite || m.Tag != 0 || m.Score != venti.Sum(data) {
			t.Fatalf("write %d: %+v", i, m)
		}
		r.send(venti.Message{Type: venti.Tread, Score: venti.Sum(data), BlockType: venti.DirType, Count: 8192})
		if m := r.recv(); m.Type != venti.Rread || m.Tag != 0 || !bytes.Equal(m.Data, data) {
			t.Fatalf("read %d: %+v", i, m)
		}
	}
}

func TestWireZeroAndEmpty(t *testing.T) {
	for _, v := range []string{venti.Version02, venti.Version04} {
		t.Run(v, func(t *testing.T) {
			r := helloRaw(t, serve(t, venti.NewMemStore()), v)
			r.send(venti.Message{Type: venti.Twrite, Tag: 1, BlockType: venti.DataType})
			if m := r.recv(); m.Type != venti.Rwrite || m.Score != venti.ZeroScore {
				t.Fatalf("empty write: %+v, want zero score", m)
			}
			r.send(venti.Message{Type: venti.Tread, Tag: 2, Score: venti.ZeroScore, BlockType: venti.DataType, Count: 0})
			if m := r.recv(); m.Type != venti.Rread || m.Tag != 2 || len(m.Data) != 0 {
				t.Fatalf("read zero score: %+v, want empty Rread", m)
			}
		})
	}
}

// Bad requests on a healthy stream get an Rerror naming the problem and
// the connection goes on.
func TestWireBadRequests(t *testing.T) {
	for _, v := range []string{venti.Version02, venti.Version04} {
		t.Run(v, func(t *testing.T) {
			r := helloRaw(t, serve(t, venti.NewMemStore()), v)
			sz := func(n int) []byte {
				if v == venti.Version02 {
					return binary.BigEndian.AppendUint16(nil, uint16(n))
				}
				return binary.BigEndian.AppendUint32(nil, uint32(n))
			}
			for _, bt := range []venti.Type{0, 10, 11, 12, 14, 255} {
				r.send(venti.Message{Type: venti.Twrite, Tag: 1, BlockType: bt, Data: []byte("x")})
				r.expectError(1, fmt.Sprintf("invalid type %d", bt))
				r.send(venti.Message{Type: venti.Tread, Tag: 2, BlockType: bt, Count: 10})
				r.expectError(2, fmt.Sprintf("invalid block type %d", bt))
			}
			r.send(venti.Message{Type: venti.Twrite, Tag: 3, BlockType: venti.DataType, Data: make([]byte, venti.MaxBlock+1)})
			r.expectError(3, "larger than the 57344-byte maximum")
			r.send(venti.Message{Type: venti.Thello, Tag: 4, Version: v, UID: "again"})
			r.expectError(4, "Thello after the session started")
			r.write(sz(3), hx("02 05 ff")) // Tping with a trailing byte
			r.expectError(5, "1 trailing bytes")
			r.write(sz(5), hx("0c 06 00 00 00")) // truncated Tread
			r.expectError(6, "score needs 20 bytes")
			r.write(sz(2), hx("08 07")) // Tauth0: never implemented
			r.expectError(7, "unknown message type 8")
			r.write(sz(2), hx("63 08")) // type 99
			r.expectError(8, "unknown message type 99")
			r.send(venti.Message{Type: venti.Rping, Tag: 9}) // a reply sent to the server
			r.expectError(9, "not a request")
			r.write(sz(4), hx("01 0a 04 00")) // Rerror whose string overruns
			r.expectError(10, "error needs 1024 bytes")
			r.ping(11)
		})
	}
}

// Frames that break the stream close that connection; the server goes on
// serving the others.
func TestWireBrokenFrames(t *testing.T) {
	addr := serve(t, venti.NewMemStore())
	other := helloRaw(t, addr, venti.Version04)
	cases := []struct {
		name    string
		version string
		bytes   []byte
		reply   string // substring of an Rerror before the close; "" for none
	}{
		{"empty-frame-02", "02", hx("00 00"), ""},
		{"one-byte-frame-04", "04", hx("00 00 00 01 02"), ""},
		{"oversize-04", "04", hx("7f ff ff ff 0e 05 0d 00 00 00"), "exceeds the 131072-byte maximum"},
		{"torn-frame-02", "02", hx("00 40 0e 05 0d 00 00 00 61"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := helloRaw(t, addr, c.version)
			r.write(c.bytes)
			if c.name == "torn-frame-02" {
				r.c.(*net.TCPConn).CloseWrite()
			}
			got := r.expectClosed()
			if c.reply == "" {
				if len(got) != 0 {
					t.Fatalf("unexpected reply % x", got)
				}
			} else {
				m, err := venti.ReadMessage(bytes.NewReader(got), c.version)
				if err != nil || m.Type != venti.Rerror || m.Tag != 5 || !strings.Contains(m.Error, c.reply) {
					t.Fatalf("reply %+v, %v; want Rerror tag 5 containing %q", m, err, c.reply)
				}
			}
			other.ping(1)
		})
	}
	// Handshake garbage.
	for name, b := range map[string][]byte{
		"http":         []byte("GET / HTTP/1.1\r\n\r\n"),
		"control-char": []byte("venti-02\x01-x\n"),
		"too-long":     append([]byte("venti-02-"), bytes.Repeat([]byte("x"), 2000)...),
		"no-version":   []byte("venti-99-x\n"),
	} {
		t.Run("line-"+name, func(t *testing.T) {
			r := rawDial(t, addr)
			r.expect("venti-04:02-gridlord\n")
			r.write(b)
			if got := r.expectClosed(); len(got) != 0 {
				t.Fatalf("got %q after the version line, want a close", got)
			}
			other.ping(2)
		})
	}
	// Hello problems get an Rerror, then the close.
	for name, m := range map[string]venti.Message{
		"not-hello":    {Type: venti.Tping},
		"tag":          {Type: venti.Thello, Tag: 3, Version: "02", UID: "x"},
		"version-text": {Type: venti.Thello, Version: "2", UID: "x"},
	} {
		t.Run("hello-"+name, func(t *testing.T) {
			r := rawDial(t, addr)
			r.write("venti-02-libventi\n")
			r.expect("venti-04:02-gridlord\n")
			r.version = venti.Version02
			r.send(m)
			got := r.expectClosed()
			rep, err := venti.ReadMessage(bytes.NewReader(got), venti.Version02)
			if err != nil || rep.Type != venti.Rerror {
				t.Fatalf("reply % x (%v), want Rerror", got, err)
			}
			t.Logf("Rerror %q", rep.Error)
			other.ping(3)
		})
	}
}

// Pipelined requests on one connection run concurrently and their replies
// go out as they complete: the gated read sent first is answered last.
func TestWireOutOfOrder(t *testing.T) {
	ctx := context.Background()
	st := newGateStore()
	r := helloRaw(t, serve(t, st), venti.Version04)
	slow, _ := st.MemStore.Write(ctx, venti.DataType, []byte("slow"))
	fast, _ := st.MemStore.Write(ctx, venti.DataType, []byte("fast"))
	open := st.gate(slow)
	defer open()
	// Both requests in one TCP write.
	a, _ := (&venti.Message{Type: venti.Tread, Tag: 1, Score: slow, BlockType: venti.DataType, Count: 100}).Marshal("04")
	b, _ := (&venti.Message{Type: venti.Tread, Tag: 2, Score: fast, BlockType: venti.DataType, Count: 100}).Marshal("04")
	r.write(a, b)
	if m := r.recv(); m.Tag != 2 || string(m.Data) != "fast" {
		t.Fatalf("first reply: tag %d %q, want tag 2 (the later request)", m.Tag, m.Data)
	}
	open()
	if m := r.recv(); m.Tag != 1 || string(m.Data) != "slow" {
		t.Fatalf("second reply: tag %d %q, want tag 1", m.Tag, m.Data)
	}
}

// Tsync is answered only after every write received before it is stored,
// even when those writes are still running concurrently.
func TestWireSyncWaitsForWrites(t *testing.T) {
	st := newGateStore()
	r := helloRaw(t, serve(t, st), venti.Version02)
	data := []byte("gated write")
	open := st.gate(venti.Sum(data))
	defer open()
	w, _ := (&venti.Message{Type: venti.Twrite, Tag: 1, BlockType: venti.DataType, Data: data}).Marshal("02")
	s, _ := (&venti.Message{Type: venti.Tsync, Tag: 2}).Marshal("02")
	p, _ := (&venti.Message{Type: venti.Tping, Tag: 3}).Marshal("02")
	r.write(w, s, p)
	<-st.entered
	if m := r.recv(); m.Type != venti.Rping {
		t.Fatalf("first reply %v, want Rping (write and sync are blocked)", m.Type)
	}
	open()
	if m := r.recv(); m.Type != venti.Rwrite || m.Tag != 1 {
		t.Fatalf("second reply %v tag %d, want Rwrite tag 1", m.Type, m.Tag)
	}
	if m := r.recv(); m.Type != venti.Rsync || m.Tag != 2 {
		t.Fatalf("third reply %v tag %d, want Rsync tag 2", m.Type, m.Tag)
	}
	if st.syncs.Load() != 1 || st.badSyncs.Load() != 0 {
		t.Fatalf("%d syncs, %d overlapping a write; want 1, 0", st.syncs.Load(), st.badSyncs.Load())
	}
}

// Every block plan9port's vac wrote (blocks.bin of package p9pdata,
// captured from the wire) goes through client and server and keeps its
// real score.
func TestPlan9portBlocks(t *testing.T) {
	bin, err := p9pdata.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{venti.Version02, venti.Version04} {
		t.Run(v, func(t *testing.T) {
			ctx := context.Background()
			c := dial(t, serve(t, venti.NewMemStore()), venti.WithVersions(v))
			for i, b := range bin {
				s, err := c.Write(ctx, b.Type, b.Data)
				if err != nil || s != b.Score {
					t.Fatalf("block %d: write gave %v %v, want %v", i, s, err, b.Score)
				}
			}
			for i, b := range bin {
				got, err := c.Read(ctx, b.Score, b.Type, 8192)
				if err != nil || !bytes.Equal(got, b.Data) {
					t.Fatalf("block %d: read back: %v", i, err)
				}
			}
		})
	}
}

// A client that half-closes after pipelining still gets every reply: the
// server finishes the work in hand before closing.
func TestWireHalfClose(t *testing.T) {
	r := helloRaw(t, serve(t, venti.NewMemStore()), venti.Version04)
	data := []byte("half-closed")
	w, _ := (&venti.Message{Type: venti.Twrite, Tag: 1, BlockType: venti.DataType, Data: data}).Marshal("04")
	s, _ := (&venti.Message{Type: venti.Tsync, Tag: 2}).Marshal("04")
	r.write(w, s)
	r.c.(*net.TCPConn).CloseWrite()
	got := map[venti.MsgType]venti.Message{}
	for i := 0; i < 2; i++ {
		m := r.recv()
		got[m.Type] = m
	}
	if got[venti.Rwrite].Score != venti.Sum(data) || got[venti.Rsync].Tag != 2 {
		t.Fatalf("replies %+v", got)
	}
	if b := r.expectClosed(); len(b) != 0 {
		t.Fatalf("extra bytes % x", b)
	}
}

// A second Tsync pipelined behind the first also waits for the write
// before them both: it must not reply (or call the store's Sync) while that
// write is still being stored.
func TestWireSyncChain(t *testing.T) {
	st := newGateStore()
	r := helloRaw(t, serve(t, st), venti.Version04)
	data := []byte("gated write before two syncs")
	open := st.gate(venti.Sum(data))
	defer open()
	w, _ := (&venti.Message{Type: venti.Twrite, Tag: 1, BlockType: venti.DataType, Data: data}).Marshal("04")
	s1, _ := (&venti.Message{Type: venti.Tsync, Tag: 2}).Marshal("04")
	s2, _ := (&venti.Message{Type: venti.Tsync, Tag: 3}).Marshal("04")
	p, _ := (&venti.Message{Type: venti.Tping, Tag: 4}).Marshal("04")
	r.write(w, s1, s2, p)
	<-st.entered
	if m := r.recv(); m.Type != venti.Rping {
		t.Fatalf("first reply %v tag %d, want Rping (the write and both syncs are blocked)", m.Type, m.Tag)
	}
	// Both syncs have been dispatched; give their workers a moment to
	// (wrongly) reach the store before the write is let through.
	for i := 0; i < 20 && st.syncs.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := st.syncs.Load(); n != 0 {
		t.Fatalf("the store was synced %d times while the earlier write was still being stored", n)
	}
	open()
	if m := r.recv(); m.Type != venti.Rwrite || m.Tag != 1 {
		t.Fatalf("reply %v tag %d, want Rwrite tag 1", m.Type, m.Tag)
	}
	tags := map[uint8]bool{}
	for i := 0; i < 2; i++ {
		m := r.recv()
		if m.Type != venti.Rsync {
			t.Fatalf("reply %v tag %d, want Rsync", m.Type, m.Tag)
		}
		tags[m.Tag] = true
	}
	if !tags[2] || !tags[3] || st.badSyncs.Load() != 0 {
		t.Fatalf("Rsync tags %v, %d syncs overlapping a write; want tags 2 and 3, none overlapping", tags, st.badSyncs.Load())
	}
}
