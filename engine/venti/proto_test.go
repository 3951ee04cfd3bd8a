package venti_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"gridlord/engine/venti"
	"gridlord/testing/p9pdata"
)

// sampleMessages holds one message of every type.
func sampleMessages() []venti.Message {
	s := venti.Sum([]byte("sample"))
	return []venti.Message{
		{Type: venti.Rerror, Tag: 1, Error: "no block with score x/13 exists"},
		{Type: venti.Tping, Tag: 2},
		{Type: venti.Rping, Tag: 2},
		{Type: venti.Thello, Version: "04", UID: "anonymous"},
		{Type: venti.Thello, Version: "02", UID: "glenda", Strength: 3, Crypto: []byte{1, 2}, Codec: []byte{9}},
		{Type: venti.Rhello, SID: "anonymous", RCrypto: 1, RCodec: 2},
		{Type: venti.Tgoodbye},
		{Type: venti.Tread, Tag: 3, Score: s, BlockType: venti.DataType, Count: 8192},
		{Type: venti.Rread, Tag: 3, Data: []byte("sample")},
		{Type: venti.Twrite, Tag: 4, BlockType: venti.PointerType0, Data: []byte("sample")},
		{Type: venti.Rwrite, Tag: 4, Score: s},
		{Type: venti.Tsync, Tag: 255},
		{Type: venti.Rsync, Tag: 255},
	}
}

// sameMessage compares messages treating nil and empty slices alike.
func sameMessage(a, b venti.Message) bool {
	if !bytes.Equal(a.Data, b.Data) || !bytes.Equal(a.Crypto, b.Crypto) || !bytes.Equal(a.Codec, b.Codec) {
		return false
	}
	a.Data, b.Data, a.Crypto, b.Crypto, a.Codec, b.Codec = nil, nil, nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func TestMessageRoundTrip(t *testing.T) {
	for _, v := range []string{venti.Version02, venti.Version04} {
		for _, m := range sampleMessages() {
			b, err := m.Marshal(v)
			if err != nil {
				t.Fatalf("%s %v: marshal: %v", v, m.Type, err)
			}
			sl := 2
			if v == venti.Version04 {
				sl = 4
			}
			size := 0
			for _, c := range b[:sl] {
				size = size<<8 | int(c)
			}
			if size != len(b)-sl || b[sl] != byte(m.Type) || b[sl+1] != m.Tag {
				t.Fatalf("%s %v: frame % x: bad size prefix, type or tag", v, m.Type, b)
			}
			got, err := venti.ReadMessage(bytes.NewReader(b), v)
			if err != nil || !sameMessage(got, m) {
				t.Fatalf("%s %v: read back %+v, %v; want %+v", v, m.Type, got, err, m)
			}
			var buf bytes.Buffer
			if err := venti.WriteMessage(&buf, &m, v); err != nil || !bytes.Equal(buf.Bytes(), b) {
				t.Fatalf("%s %v: WriteMessage % x, %v; Marshal % x", v, m.Type, buf.Bytes(), err, b)
			}
		}
	}
}

func TestMessageBytes(t *testing.T) {
	s := venti.Sum([]byte("x"))
	// Tread with count 65536 needs the 4-byte count of protocol 04.
	m := venti.Message{Type: venti.Tread, Tag: 9, Score: s, BlockType: venti.DataType, Count: 1 << 16}
	b, err := m.Marshal("04")
	if err != nil {
		t.Fatal(err)
	}
	if want := cat(hx("00 00 00 1c 0c 09"), s[:], hx("0d 00 00 01 00 00")); !bytes.Equal(b, want) {
		t.Fatalf("Tread 04: % x, want % x", b, want)
	}
	if _, err := m.Marshal("02"); err == nil {
		t.Fatal("Tread count 65536 marshalled in 02")
	}
	m.Count = 8192
	b, _ = m.Marshal("04")
	if want := cat(hx("00 00 00 1a 0c 09"), s[:], hx("0d 00 20 00")); !bytes.Equal(b, want) {
		t.Fatalf("Tread 04 small count: % x, want % x", b, want)
	}
	// Rread with data of MaxBlock in 02 fits a 2-byte size.
	big := venti.Message{Type: venti.Rread, Data: make([]byte, venti.MaxBlock)}
	if b, err := big.Marshal("02"); err != nil || b[0] != 0xe0 || b[1] != 0x02 {
		t.Fatalf("Rread of 57344 bytes in 02: % x %v", b[:2], err)
	}
	for name, bad := range map[string]venti.Message{
		"long string": {Type: venti.Rerror, Error: strings.Repeat("e", venti.MaxString+1)},
		"crypto":      {Type: venti.Thello, Crypto: make([]byte, 256)},
		"unknown":     {Type: 7},
		"too big 02":  {Type: venti.Rread, Data: make([]byte, 65535)},
		"too big 04":  {Type: venti.Rread, Data: make([]byte, venti.MaxMessage)},
	} {
		v := "02"
		if strings.HasSuffix(name, "04") {
			v = "04"
		}
		if _, err := bad.Marshal(v); err == nil {
			t.Errorf("%s: marshalled", name)
		}
	}
	if _, err := sampleMessages()[1].Marshal("03"); err == nil {
		t.Error("marshalled with protocol 03")
	}
	// A string of exactly MaxString bytes is fine.
	ok := venti.Message{Type: venti.Rerror, Error: strings.Repeat("e", venti.MaxString)}
	if b, err := ok.Marshal("02"); err != nil {
		t.Error(err)
	} else if got, err := venti.ReadMessage(bytes.NewReader(b), "02"); err != nil || got.Error != ok.Error {
		t.Errorf("1024-byte string: %v", err)
	}
	// A string length over MaxString is refused on decode.
	if _, err := venti.ReadMessage(bytes.NewReader(cat(hx("04 05 01 04 01"), strings.Repeat("e", 1025))), "04"); err == nil {
		t.Error("decoded a 1025-byte string")
	}
}

func TestReadMessageErrors(t *testing.T) {
	if _, err := venti.ReadMessage(bytes.NewReader(nil), "02"); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
	if _, err := venti.ReadMessage(bytes.NewReader(hx("00")), "02"); err != io.ErrUnexpectedEOF {
		t.Errorf("torn size: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := venti.ReadMessage(bytes.NewReader(hx("00 05 02 00")), "02"); err == nil {
		t.Error("torn frame decoded")
	}
	if _, err := venti.ReadMessage(bytes.NewReader(hx("ff ff ff ff")), "04"); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("huge frame: %v", err)
	}
	for _, b := range [][]byte{hx("00 01 02"), hx("00 00"), hx("00 03 02 00 00"), hx("00 02 07 00"), hx("00 05 0e 00 0d 00 00")} {
		if m, err := venti.ReadMessage(bytes.NewReader(b), "02"); err == nil {
			t.Errorf("% x decoded as %+v", b, m)
		}
	}
}

func TestVersionLine(t *testing.T) {
	if got := venti.VersionLine([]string{"04", "02"}, "gridlord"); got != "venti-04:02-gridlord\n" {
		t.Fatalf("VersionLine = %q", got)
	}
	good := map[string]string{
		"venti-04:02-libventi\n": "venti-04:02-libventi",
		"venti-02-libventi\n":    "venti-02-libventi",
		"venti-02\n":             "venti-02",
		"venti-02-x\x7f\n":       "venti-02-x\x7f",
	}
	for in, want := range good {
		got, err := venti.ReadVersionLine(bufio.NewReader(strings.NewReader(in)))
		if err != nil || got != want {
			t.Errorf("ReadVersionLine(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "venti-02", "vent\n", "Venti-02-x\n", "venti-02-\x80\n", "venti-02-\t\n",
		"venti-02-" + strings.Repeat("a", 1015) + "\n"} {
		if got, err := venti.ReadVersionLine(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("ReadVersionLine(%.20q...) = %q, want error", in, got)
		}
	}
	// 1023 bytes plus the newline is the longest line.
	long := "venti-02-" + strings.Repeat("a", 1014)
	if _, err := venti.ReadVersionLine(bufio.NewReader(strings.NewReader(long[:1023] + "\n"))); err != nil {
		t.Errorf("1024-byte line: %v", err)
	}

	ours := []string{"04", "02"}
	for _, c := range []struct {
		line, want string
	}{
		{"venti-04:02-libventi", "04"}, // plan9port
		{"venti-02-libventi", "02"},    // Plan 9, 9front, liboventi
		{"venti-02:04-koskino", "02"},
		{"venti-05:02-future", "02"},
		{"venti-05-future", ""},
	} {
		got, ok := venti.ChooseVersion(venti.ParseVersions(c.line), ours)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("choose from %q: %q %v, want %q", c.line, got, ok, c.want)
		}
	}
}

// FuzzReadMessage decodes arbitrary frames. Whatever decodes must encode
// again and decode to the same message.
func FuzzReadMessage(f *testing.F) {
	for _, v := range []string{venti.Version02, venti.Version04} {
		for _, m := range sampleMessages() {
			b, err := m.Marshal(v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, v == venti.Version04)
		}
	}
	// Real frames: the plan9port Thello and a 4-byte-count Tread.
	f.Add(cat(hx("00 00 00 14 04 00 00 02"), "04", hx("00 09"), "anonymous", hx("00 00 00")), true)
	f.Add(cat(hx("00 1c 0c 01"), make([]byte, 20), hx("0d 00 00 01 00 00")), true)
	f.Add(hx("00 00 00 1c 0c 01 da 39 a3 ee 5e 6b 4b 0d 32 55 bf ef 95 60 18 90 af d8 07 09 0d 00 00 01 00 00"), true)
	if blocks, err := p9pdata.Blocks(); err == nil {
		for _, b := range blocks[:3] {
			m := venti.Message{Type: venti.Twrite, Tag: 1, BlockType: b.Type, Data: b.Data}
			fr, _ := m.Marshal("04")
			f.Add(fr, true)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, v04 bool) {
		v := venti.Version02
		if v04 {
			v = venti.Version04
		}
		m, err := venti.ReadMessage(bytes.NewReader(data), v)
		if err != nil {
			return
		}
		b, err := m.Marshal(v)
		if err != nil {
			// Only a Tread count too wide for 02 may fail: 04 accepts it.
			t.Fatalf("decoded %+v but cannot encode it: %v", m, err)
		}
		m2, err := venti.ReadMessage(bytes.NewReader(b), v)
		if err != nil || !sameMessage(m, m2) {
			t.Fatalf("re-decoded %+v, %v; want %+v", m2, err, m)
		}
	})
}

// FuzzServerConn feeds arbitrary bytes, after a valid hello, to a server
// connection: it must neither panic nor hang, and must close the
// connection when the input ends.
func FuzzServerConn(f *testing.F) {
	for _, v := range []string{venti.Version02, venti.Version04} {
		var all []byte
		for _, m := range sampleMessages() {
			b, _ := m.Marshal(v)
			f.Add(b, v == venti.Version04)
			all = append(all, b...)
		}
		f.Add(all, v == venti.Version04)
	}
	f.Add(hx("00 00"), false)
	f.Add(hx("7f ff ff ff 0e 05"), true)
	f.Add(hx("00 02 06 00 00 02 02 01"), false)
	f.Fuzz(func(t *testing.T, data []byte, v04 bool) {
		v := venti.Version02
		if v04 {
			v = venti.Version04
		}
		hello, _ := (&venti.Message{Type: venti.Thello, Version: v, UID: "fuzz"}).Marshal(v)
		cc, sc := net.Pipe()
		srv := venti.NewServer(venti.NewMemStore(), venti.WithHandshakeTimeout(5*time.Second))
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), sc) }()
		go io.Copy(io.Discard, cc) // replies
		go func() {
			cc.Write([]byte(venti.VersionLine([]string{v}, "fuzz")))
			cc.Write(hello)
			cc.Write(data)
			cc.Close()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not return 10s after the input ended")
		}
	})
}

// FuzzClientConn feeds arbitrary server bytes, after a valid hello, to a
// Client with calls in flight: no panic, no hang, and every call returns.
func FuzzClientConn(f *testing.F) {
	s := venti.Sum([]byte("x"))
	for _, v := range []string{venti.Version02, venti.Version04} {
		for _, m := range []venti.Message{
			{Type: venti.Rread, Tag: 0, Data: []byte("x")},
			{Type: venti.Rwrite, Tag: 1, Score: s},
			{Type: venti.Rerror, Tag: 2, Error: "no block with score x/13 exists"},
			{Type: venti.Rping, Tag: 3},
			{Type: venti.Rsync, Tag: 200},
		} {
			b, _ := m.Marshal(v)
			f.Add(b, v == venti.Version04)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, v04 bool) {
		v := venti.Version02
		if v04 {
			v = venti.Version04
		}
		cc, sc := net.Pipe()
		go func() {
			defer sc.Close()
			br := bufio.NewReader(sc)
			sc.Write([]byte(venti.VersionLine([]string{v}, "fuzz")))
			if _, err := venti.ReadVersionLine(br); err != nil {
				return
			}
			if _, err := venti.ReadMessage(br, v); err != nil {
				return
			}
			rh, _ := (&venti.Message{Type: venti.Rhello, SID: "fuzz"}).Marshal(v)
			sc.Write(rh)
			go io.Copy(io.Discard, br)
			sc.Write(data)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := venti.NewClient(ctx, cc, venti.WithVersions(v))
		if err != nil {
			t.Fatalf("hello: %v", err)
		}
		defer c.Close()
		done := make(chan struct{}, 4)
		go func() { c.Read(ctx, s, venti.DataType, 100); done <- struct{}{} }()
		go func() { c.Write(ctx, venti.DataType, []byte("x")); done <- struct{}{} }()
		go func() { c.Ping(ctx); done <- struct{}{} }()
		go func() { c.Sync(ctx); done <- struct{}{} }()
		for i := 0; i < 4; i++ {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("a call did not return after the server hung up")
			}
		}
	})
}
