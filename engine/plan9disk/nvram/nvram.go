// Package nvram encodes and decodes the Plan 9 nvram record (struct
// Nvrsafe in authsrv.h) that holds a cpu or auth server's host owner
// (authid), authentication domain and machine key, and derives machine keys
// from passwords as libauthsrv's passtokey does.
//
// Two layouts exist. Bell Labs 4e and 9legacy use 109 bytes:
//
//	machkey[7] machsum authkey[7] authsum config[14] configsum
//	authid[28] authidsum authdom[48] authdomsum
//
// 9front appends aesmachkey[16] aesmachsum (126 bytes), the dp9ik key. Every
// checksum is nvcsum: 9 plus the byte sum, mod 256. A 9front record is read
// correctly by 4e (which reads only the first 109 bytes), so writing the
// 9front layout is safe on both systems.
package nvram

import (
	"bytes"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"errors"
	"fmt"
)

// Field sizes from authsrv.h.
const (
	DESKeyLen = 7
	AESKeyLen = 16
	ConfigLen = 14
	ANameLen  = 28
	DomLen    = 48

	// LabsSize is the size of the Bell Labs / 9legacy record.
	LabsSize = DESKeyLen + 1 + DESKeyLen + 1 + ConfigLen + 1 + ANameLen + 1 + DomLen + 1
	// NineFrontSize is the size of the 9front record.
	NineFrontSize = LabsSize + AESKeyLen + 1
)

// Offsets of the fields in the record.
const (
	offMachKey = 0
	offAuthKey = offMachKey + DESKeyLen + 1
	offConfig  = offAuthKey + DESKeyLen + 1
	offAuthID  = offConfig + ConfigLen + 1
	offAuthDom = offAuthID + ANameLen + 1
	offAESKey  = offAuthDom + DomLen + 1
)

// Layout selects the record format.
type Layout int

// Record layouts.
const (
	Labs      Layout = iota // Bell Labs 4e / 9legacy, 109 bytes
	NineFront               // 9front, 126 bytes with the AES (dp9ik) key
)

// String names the layout.
func (l Layout) String() string {
	if l == NineFront {
		return "9front"
	}
	return "labs"
}

// ErrBlank reports an nvram that was never written (all zero bytes), as on
// a fresh terminal install.
var ErrBlank = errors.New("nvram is blank (never written)")

// Record is a decoded nvram record.
type Record struct {
	Layout     Layout
	MachKey    [DESKeyLen]byte // DES key of the host owner, from passtokey
	AuthKey    [DESKeyLen]byte // unused by current systems; kept as read
	Config     [ConfigLen]byte // secstore key on non-file-servers
	AuthID     string          // host owner, e.g. "bootes"
	AuthDom    string          // authentication domain, e.g. "grid"
	AESMachKey [AESKeyLen]byte // 9front dp9ik key (zero in the Labs layout)
}

// Checksum is libauthsrv's nvcsum: 9 plus the sum of the bytes, mod 256.
func Checksum(b []byte) byte {
	sum := byte(9)
	for _, c := range b {
		sum += c
	}
	return sum
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Decode parses a record from b (at least LabsSize bytes; a whole 512-byte
// sector is fine). It checks the checksums readnvram checks (machkey, authid,
// authdom) and refuses an empty authid or authdom, as readnvram does. The
// layout is NineFront when b holds the AES key with a valid checksum and a
// non-zero key, else Labs.
func Decode(b []byte) (*Record, error) {
	if len(b) < LabsSize {
		return nil, fmt.Errorf("nvram: record is %d bytes, want at least %d", len(b), LabsSize)
	}
	if allZero(b[:LabsSize]) {
		return nil, ErrBlank
	}
	r := &Record{}
	copy(r.MachKey[:], b[offMachKey:])
	copy(r.AuthKey[:], b[offAuthKey:])
	copy(r.Config[:], b[offConfig:])
	check := []struct {
		name     string
		off, len int
	}{
		{"machine key (machsum)", offMachKey, DESKeyLen},
		{"authid (authidsum)", offAuthID, ANameLen},
		{"authdom (authdomsum)", offAuthDom, DomLen},
	}
	for _, c := range check {
		if got, want := b[c.off+c.len], Checksum(b[c.off:c.off+c.len]); got != want {
			return nil, fmt.Errorf("nvram: bad checksum on %s: stored %#02x, computed %#02x; rewrite it with \"gridlord disk nvram\"", c.name, got, want)
		}
	}
	r.AuthID = cstring(b[offAuthID : offAuthID+ANameLen])
	r.AuthDom = cstring(b[offAuthDom : offAuthDom+DomLen])
	if r.AuthID == "" || r.AuthDom == "" {
		return nil, fmt.Errorf("nvram: empty authid or authdom")
	}
	if len(b) >= NineFrontSize {
		k := b[offAESKey : offAESKey+AESKeyLen]
		if !allZero(k) && b[offAESKey+AESKeyLen] == Checksum(k) {
			r.Layout = NineFront
			copy(r.AESMachKey[:], k)
		}
	}
	return r, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Encode returns the record in its layout (LabsSize or NineFrontSize
// bytes), with every checksum set as readnvram's writer sets them.
func (r *Record) Encode() ([]byte, error) {
	if r.AuthID == "" || len(r.AuthID) >= ANameLen {
		return nil, fmt.Errorf("nvram: authid %q must be 1 to %d bytes", r.AuthID, ANameLen-1)
	}
	if r.AuthDom == "" || len(r.AuthDom) >= DomLen {
		return nil, fmt.Errorf("nvram: authdom %q must be 1 to %d bytes", r.AuthDom, DomLen-1)
	}
	if bytes.IndexByte([]byte(r.AuthID+r.AuthDom), 0) >= 0 {
		return nil, fmt.Errorf("nvram: authid and authdom may not contain NUL")
	}
	size := LabsSize
	if r.Layout == NineFront {
		size = NineFrontSize
	}
	b := make([]byte, size)
	put := func(off, n int, v []byte) {
		copy(b[off:off+n], v)
		b[off+n] = Checksum(b[off : off+n])
	}
	put(offMachKey, DESKeyLen, r.MachKey[:])
	put(offAuthKey, DESKeyLen, r.AuthKey[:])
	put(offConfig, ConfigLen, r.Config[:])
	put(offAuthID, ANameLen, []byte(r.AuthID))
	put(offAuthDom, DomLen, []byte(r.AuthDom))
	if r.Layout == NineFront {
		put(offAESKey, AESKeyLen, r.AESMachKey[:])
	}
	return b, nil
}

// SetPassword derives the machine keys from password: the DES key always,
// the AES (dp9ik) key too for the NineFront layout.
func (r *Record) SetPassword(password string) error {
	r.MachKey = PassToDESKey(password)
	r.AESMachKey = [AESKeyLen]byte{}
	if r.Layout == NineFront {
		k, err := PassToAESKey(password)
		if err != nil {
			return err
		}
		r.AESMachKey = k
	}
	return nil
}

// PassToDESKey is libauthsrv's passtokey (passtodeskey in 9front): the
// password (at most 27 bytes) after 8 spaces' worth of padding is folded
// into 7 bytes, 8 bytes at a time, each further chunk DES-encrypted with the
// key so far (libc encrypt(): one DES block, the 7-byte key expanded with
// des56to64).
func PassToDESKey(password string) [DESKeyLen]byte {
	var buf [ANameLen]byte
	n := min(len(password), ANameLen-1)
	copy(buf[:8], "        ")
	copy(buf[:], password[:n])
	buf[n] = 0
	var key [DESKeyLen]byte
	t := 0
	for {
		for i := range DESKeyLen {
			key[i] = buf[t+i]>>uint(i) + buf[t+i+1]<<uint(8-(i+1))
		}
		if n <= 8 {
			return key
		}
		n -= 8
		t += 8
		if n < 8 {
			t -= 8 - n
			n = 8
		}
		c, err := des.NewCipher(des56to64(key[:]))
		if err != nil {
			panic(err) // cannot happen: the key is 8 bytes
		}
		c.Encrypt(buf[t:t+8], buf[t:t+8])
	}
}

// des56to64 spreads a 7-byte key over 8 bytes, 7 bits each with odd parity
// in the low bit (libsec des56to64).
func des56to64(k []byte) []byte {
	var v uint64
	for _, c := range k[:7] {
		v = v<<8 | uint64(c)
	}
	out := make([]byte, 8)
	for i := range 8 {
		b := byte(v>>(49-7*uint(i))) & 0x7F << 1
		p := byte(1)
		for x := b; x != 0; x >>= 1 {
			p ^= x & 1
		}
		out[i] = b | p
	}
	return out
}

// PassToAESKey is 9front's passtoaeskey: PBKDF2-HMAC-SHA1 of the password
// with the salt "Plan 9 key derivation", 9001 iterations, 16 bytes.
// It fails only where the Go runtime forbids SHA-1 (FIPS 140-only mode).
func PassToAESKey(password string) ([AESKeyLen]byte, error) {
	var out [AESKeyLen]byte
	k, err := pbkdf2.Key(sha1.New, password, []byte("Plan 9 key derivation"), 9001, AESKeyLen)
	if err != nil {
		return out, fmt.Errorf("nvram: derive dp9ik key: %w", err)
	}
	copy(out[:], k)
	return out, nil
}
