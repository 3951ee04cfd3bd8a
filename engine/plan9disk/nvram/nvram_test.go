package nvram

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// Key derivation vectors. None of them comes from this package's code:
//
//   - The DES column was computed with an independent reference: a Python
//     transcription of 9front sys/src/libauthsrv/passtokey.c (passtodeskey)
//     whose encrypt() step calls "openssl enc -des-ecb -provider legacy" with
//     the key expanded by plan9port src/libsec/port/des.c des56to64 (Plan 9's
//     block_cipher is standard DES: triple_block_cipher, used for TLS 3DES,
//     runs the same rounds); the script is testdata/passtokey_ref.py. "", "password", "12345678" (no DES step) also
//     match the vectors published with the Rust p9sk1 port in the search
//     corpus ("Nawin.Auth" vectors); that port's long-password vector differs
//     because its loop re-reads the buffer from the wrong offset, unlike the C.
//   - The AES (dp9ik) column is Python hashlib.pbkdf2_hmac("sha1", password,
//     b"Plan 9 key derivation", 9001, 16), the parameters of 9front
//     passtoaeskey (libauthsrv/passtokey.c). (Not the user name as salt.)
var keyVectors = []struct {
	password, des, aes string
}{
	{"", "00100804028140", "127c5d44df23346fca036283e8c6dba0"},
	{"x", "78000804028140", "4b23cada158e9593f1d3cee6f87cc59c"},
	{"p", "70000804028140", "1ec7c3f363484d5f4ce55db4648541a2"},
	{"glenda", "6776d94d0e0340", "18e43cf879e0e1f4a1f68092f4b7f837"},
	{"password", "f0f07c7e7fcbc9", "15d13256344211e56c52f50c539de223"},
	{"12345678", "31d98c56b3dd70", "e066beadafb19c1abe4e8978cb196a88"},
	{"glenda123", "106d0326ce7fad", "e5a73889bbe84a285d89cabe0a0f6e82"},
	{"123456789abcdef0", "61795ed873531d", "b7a686c83060fd2373585d88fc9e66c2"},
	{"this is a long password", "be30f34d778dd4", "22249576aed84d0bff8fca238d976150"},
	{"a much longer password here", "c5a52710c5cba5", "1311780226058d800ba29497003d3c68"},
	// Longer than 27 bytes: passtokey uses only the first 27.
	{"this password is longer than twenty-seven bytes", "ff4cb1eb78e8b0", "f8b76569be785371e4ac7fbf741c0962"},
}

func TestPassToKeyVectors(t *testing.T) {
	for _, v := range keyVectors {
		d := PassToDESKey(v.password)
		if got := hex.EncodeToString(d[:]); got != v.des {
			t.Errorf("PassToDESKey(%q) = %s, want %s", v.password, got, v.des)
		}
		a, err := PassToAESKey(v.password)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(a[:]); got != v.aes {
			t.Errorf("PassToAESKey(%q) = %s, want %s", v.password, got, v.aes)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, l := range []Layout{Labs, NineFront} {
		r := &Record{Layout: l, AuthID: "bootes", AuthDom: "grid"}
		if err := r.SetPassword("password"); err != nil {
			t.Fatal(err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		want := map[Layout]int{Labs: 109, NineFront: 126}[l]
		if len(b) != want {
			t.Fatalf("%v: %d bytes, want %d", l, len(b), want)
		}
		// Hand-checked layout: machkey at 0, machsum at 7, authid at 31,
		// authidsum at 59, authdom at 60, authdomsum at 108.
		if b[7] != Checksum(b[0:7]) || string(b[31:37]) != "bootes" || b[59] != Checksum(b[31:59]) ||
			string(b[60:64]) != "grid" || b[108] != Checksum(b[60:108]) {
			t.Fatalf("%v: layout wrong: % x", l, b)
		}
		if b[30] != 9 { // configsum of 14 zero bytes
			t.Fatalf("configsum %d", b[30])
		}
		sector := make([]byte, 512)
		copy(sector, b)
		got, err := Decode(sector)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *r {
			t.Fatalf("%v: decoded %+v, want %+v", l, got, r)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	if _, err := Decode(make([]byte, 512)); !errors.Is(err, ErrBlank) {
		t.Errorf("blank: %v", err)
	}
	if _, err := Decode(make([]byte, 10)); err == nil {
		t.Error("short record accepted")
	}
	r := &Record{AuthID: "bootes", AuthDom: "grid"}
	b, _ := r.Encode()
	b[32] ^= 1
	if _, err := Decode(b); err == nil || !bytes.Contains([]byte(err.Error()), []byte("authid")) {
		t.Errorf("corrupt authid: %v", err)
	}
	for _, bad := range []Record{{AuthID: "", AuthDom: "x"}, {AuthID: "x"}, {AuthID: string(make([]byte, 28)), AuthDom: "d"}} {
		if _, err := bad.Encode(); err == nil {
			t.Errorf("%+v encoded", bad)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to
// bytes that decode to the same record.
func FuzzDecode(f *testing.F) {
	r := &Record{Layout: NineFront, AuthID: "bootes", AuthDom: "grid"}
	r.SetPassword("password")
	b, _ := r.Encode()
	f.Add(b)
	f.Add(b[:LabsSize])
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := r.Encode()
		if err != nil {
			return // e.g. authid with bytes after a NUL cannot be re-encoded as read
		}
		r2, err := Decode(enc)
		if err != nil || *r2 != *r {
			t.Fatalf("re-decode %+v -> %+v, %v", r, r2, err)
		}
	})
}
