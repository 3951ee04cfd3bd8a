package venti

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// This file is the venti wire codec (venti(7), libventi fcall.c): message
// types, the Message struct, framing for protocol versions 02 and 04, and
// the version-line exchange that opens every connection.

// MsgType is the type byte of a venti protocol message.
type MsgType uint8

// Message types (venti(7)). A reply's type is its request's type plus one,
// or Rerror. Types 7 (Rgoodbye) and 8..11 (auth) were never implemented.
const (
	Rerror   MsgType = 1
	Tping    MsgType = 2
	Rping    MsgType = 3
	Thello   MsgType = 4
	Rhello   MsgType = 5
	Tgoodbye MsgType = 6
	Tread    MsgType = 12
	Rread    MsgType = 13
	Twrite   MsgType = 14
	Rwrite   MsgType = 15
	Tsync    MsgType = 16
	Rsync    MsgType = 17
)

var msgNames = map[MsgType]string{
	Rerror: "Rerror", Tping: "Tping", Rping: "Rping", Thello: "Thello", Rhello: "Rhello",
	Tgoodbye: "Tgoodbye", Tread: "Tread", Rread: "Rread", Twrite: "Twrite", Rwrite: "Rwrite",
	Tsync: "Tsync", Rsync: "Rsync",
}

// String names the message type ("Tread"), or gives its number.
func (t MsgType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("msgtype%d", uint8(t))
}

// Protocol versions. Version 02 frames messages with a 2-byte size, 04
// (plan9port only) with a 4-byte size and allows a 4-byte Tread count.
const (
	Version02 = "02"
	Version04 = "04"
)

// DefaultPort is venti's conventional TCP port (tcp!host!venti).
const DefaultPort = 17034

// MaxString is the longest string field (libventi VtMaxStringSize).
const MaxString = 1024

// MaxVersionLine is the longest version line, "\n" included.
const MaxVersionLine = 1024

// MaxMessage is the largest message (size prefix excluded) this package
// reads or writes. Version 02 frames cannot exceed 65535 bytes anyway; the
// limit matters for 04, whose 4-byte size could announce gigabytes.
const MaxMessage = 128 * 1024

// versionPrefix starts every version line.
const versionPrefix = "venti-"

// ErrBadMessage is wrapped by every decoding error of a malformed message.
var ErrBadMessage = errors.New("bad venti message")

// Message is one decoded venti message. Only the fields of its Type are
// meaningful; the others are zero.
//
//	Rerror   Error
//	Thello   Version UID Strength Crypto Codec
//	Rhello   SID RCrypto RCodec
//	Tread    Score BlockType Count
//	Rread    Data
//	Twrite   BlockType Data
//	Rwrite   Score
//
// Tping, Rping, Tgoodbye, Tsync and Rsync have no fields. BlockType is the
// raw wire byte: the codec does not judge it, so a server can answer an
// invalid type with an Rerror that names it.
type Message struct {
	Type      MsgType
	Tag       uint8
	Error     string
	Version   string
	UID       string
	Strength  uint8
	Crypto    []byte
	Codec     []byte
	SID       string
	RCrypto   uint8
	RCodec    uint8
	Score     Score
	BlockType Type
	Count     uint32
	Data      []byte
}

// frameSizeLen is the size prefix length for a version.
func frameSizeLen(version string) (int, error) {
	switch version {
	case Version02:
		return 2, nil
	case Version04:
		return 4, nil
	}
	return 0, fmt.Errorf("venti protocol version %q: want %q or %q", version, Version02, Version04)
}

// Marshal encodes m as one frame of the given protocol version: the size
// prefix followed by the message.
func (m *Message) Marshal(version string) ([]byte, error) {
	head, err := m.appendHead(nil, version)
	if err != nil {
		return nil, err
	}
	return append(head, m.Data...), nil
}

// appendHead appends the frame of m except its trailing Data (Rread and
// Twrite) to dst. The size prefix already counts the data, so the caller
// writes the data right after.
func (m *Message) appendHead(dst []byte, version string) ([]byte, error) {
	sl, err := frameSizeLen(version)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, make([]byte, sl)...)
	dst = append(dst, byte(m.Type), m.Tag)
	putString := func(what, s string) error {
		if len(s) > MaxString {
			return fmt.Errorf("encode %v: %s is %d bytes, more than the %d allowed", m.Type, what, len(s), MaxString)
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
		dst = append(dst, s...)
		return nil
	}
	data := 0
	switch m.Type {
	case Rerror:
		err = putString("error", m.Error)
	case Tping, Rping, Tgoodbye, Tsync, Rsync:
	case Thello:
		if len(m.Crypto) > 255 || len(m.Codec) > 255 {
			return dst[:start], fmt.Errorf("encode Thello: %d crypto and %d codec bytes, at most 255 each", len(m.Crypto), len(m.Codec))
		}
		if err = putString("version", m.Version); err == nil {
			err = putString("uid", m.UID)
		}
		dst = append(dst, m.Strength, byte(len(m.Crypto)))
		dst = append(dst, m.Crypto...)
		dst = append(dst, byte(len(m.Codec)))
		dst = append(dst, m.Codec...)
	case Rhello:
		err = putString("sid", m.SID)
		dst = append(dst, m.RCrypto, m.RCodec)
	case Tread:
		dst = append(dst, m.Score[:]...)
		dst = append(dst, byte(m.BlockType), 0)
		switch {
		case m.Count < 1<<16:
			dst = binary.BigEndian.AppendUint16(dst, uint16(m.Count))
		case version == Version04:
			dst = binary.BigEndian.AppendUint32(dst, m.Count)
		default:
			return dst[:start], fmt.Errorf("encode Tread: count %d needs protocol 04, connection speaks %s", m.Count, version)
		}
	case Rread:
		data = len(m.Data)
	case Twrite:
		dst = append(dst, byte(m.BlockType), 0, 0, 0)
		data = len(m.Data)
	case Rwrite:
		dst = append(dst, m.Score[:]...)
	default:
		return dst[:start], fmt.Errorf("encode message: unknown type %d", uint8(m.Type))
	}
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - sl + data
	if n > MaxMessage || (sl == 2 && n > 0xFFFF) {
		return dst[:start], fmt.Errorf("encode %v: message of %d bytes is too large for protocol %s", m.Type, n, version)
	}
	if sl == 2 {
		binary.BigEndian.PutUint16(dst[start:], uint16(n))
	} else {
		binary.BigEndian.PutUint32(dst[start:], uint32(n))
	}
	return dst, nil
}

// decoder consumes a message body, remembering the first shortfall.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: %s needs %d bytes, %d left", ErrBadMessage, what, n, len(d.b))
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) byte(what string) uint8 {
	if b := d.bytes(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) string(what string) string {
	b := d.bytes(2, what+" length")
	if b == nil {
		return ""
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > MaxString {
		d.err = fmt.Errorf("%w: %s is %d bytes, more than the %d allowed", ErrBadMessage, what, n, MaxString)
		return ""
	}
	return string(d.bytes(n, what))
}

// Unmarshal decodes one message (without its size prefix) of the given
// protocol version into m. The whole of b must be consumed, as in
// libventi. Data aliases b; the strings and Crypto/Codec do not.
func (m *Message) Unmarshal(b []byte, version string) error {
	*m = Message{}
	if _, err := frameSizeLen(version); err != nil {
		return err
	}
	if len(b) < 2 {
		return fmt.Errorf("%w: %d bytes, shorter than type and tag", ErrBadMessage, len(b))
	}
	m.Type, m.Tag = MsgType(b[0]), b[1]
	d := decoder{b: b[2:]}
	switch m.Type {
	case Rerror:
		m.Error = d.string("error")
	case Tping, Rping, Tgoodbye, Tsync, Rsync:
	case Thello:
		m.Version = d.string("version")
		m.UID = d.string("uid")
		m.Strength = d.byte("strength")
		m.Crypto = append([]byte(nil), d.bytes(int(d.byte("crypto count")), "crypto")...)
		m.Codec = append([]byte(nil), d.bytes(int(d.byte("codec count")), "codec")...)
	case Rhello:
		m.SID = d.string("sid")
		m.RCrypto = d.byte("rcrypto")
		m.RCodec = d.byte("rcodec")
	case Tread:
		copy(m.Score[:], d.bytes(ScoreSize, "score"))
		m.BlockType = Type(d.byte("type"))
		d.byte("pad")
		switch {
		case d.err != nil:
		case len(d.b) == 2:
			m.Count = uint32(binary.BigEndian.Uint16(d.bytes(2, "count")))
		case len(d.b) == 4 && version == Version04:
			m.Count = binary.BigEndian.Uint32(d.bytes(4, "count"))
		default:
			d.err = fmt.Errorf("%w: Tread count is %d bytes, want 2 (or 4 in protocol 04)", ErrBadMessage, len(d.b))
		}
	case Rread:
		m.Data = d.b
		d.b = nil
	case Twrite:
		m.BlockType = Type(d.byte("type"))
		d.bytes(3, "pad")
		if d.err == nil {
			m.Data = d.b
			d.b = nil
		}
	case Rwrite:
		copy(m.Score[:], d.bytes(ScoreSize, "score"))
	default:
		return fmt.Errorf("%w: unknown message type %d", ErrBadMessage, uint8(m.Type))
	}
	if d.err != nil {
		return fmt.Errorf("decode %v: %w", m.Type, d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("decode %v: %w: %d trailing bytes", m.Type, ErrBadMessage, len(d.b))
	}
	return nil
}

// readFrameSize reads a frame's size prefix. A clean end of stream before
// the prefix gives io.EOF; a torn prefix io.ErrUnexpectedEOF.
func readFrameSize(r io.Reader, sl int) (int, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:sl]); err != nil {
		return 0, err
	}
	return frameSizeOf(b[:sl], sl), nil
}

// frameSizeOf decodes a frame's size prefix of sl (2 or 4) bytes from b.
func frameSizeOf(b []byte, sl int) int {
	if sl == 2 {
		return int(binary.BigEndian.Uint16(b))
	}
	return int(binary.BigEndian.Uint32(b))
}

// ReadMessage reads and decodes one frame of the given protocol version.
// A clean end of stream before a frame gives io.EOF. Frames larger than
// MaxMessage are refused without reading them. The message's Data is a
// fresh slice owned by the caller.
func ReadMessage(r io.Reader, version string) (Message, error) {
	var m Message
	sl, err := frameSizeLen(version)
	if err != nil {
		return m, err
	}
	n, err := readFrameSize(r, sl)
	if err != nil {
		return m, err
	}
	if n > MaxMessage {
		return m, fmt.Errorf("read venti message: %w: frame of %d bytes exceeds the %d-byte maximum", ErrBadMessage, n, MaxMessage)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return m, fmt.Errorf("read venti message of %d bytes: %w", n, err)
	}
	err = m.Unmarshal(buf, version)
	return m, err
}

// WriteMessage encodes m as one frame of the given version and writes it.
func WriteMessage(w io.Writer, m *Message, version string) error {
	var arr [64]byte
	head, err := m.appendHead(arr[:0], version)
	if err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	if len(m.Data) > 0 && (m.Type == Rread || m.Type == Twrite) {
		_, err = w.Write(m.Data)
	}
	return err
}

// VersionLine returns the line a peer sends first: "venti-" the versions
// joined by ":", "-", the comment and "\n".
func VersionLine(versions []string, comment string) string {
	return versionPrefix + strings.Join(versions, ":") + "-" + comment + "\n"
}

// ReadVersionLine reads the peer's version line as libventi's
// vtreadversion does: it must start with "venti-", hold only bytes
// 0x20..0x7F and end with "\n" within MaxVersionLine bytes. It returns the
// line without the "\n".
func ReadVersionLine(r io.ByteReader) (string, error) {
	var line []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("read venti version line after %q: %w", line, err)
		}
		if c == '\n' {
			break
		}
		if len(line) >= MaxVersionLine-1 {
			return "", fmt.Errorf("read venti version line: longer than %d bytes", MaxVersionLine)
		}
		if c < 0x20 || c > 0x7F || (len(line) < len(versionPrefix) && c != versionPrefix[len(line)]) {
			return "", fmt.Errorf("read venti version line: bad byte %#x after %q (want %q...)", c, line, versionPrefix)
		}
		line = append(line, c)
	}
	if len(line) < len(versionPrefix) {
		return "", fmt.Errorf("read venti version line %q: does not start with %q", line, versionPrefix)
	}
	return string(line), nil
}

// ParseVersions returns the versions a version line offers, in the
// peer's order: the ":"-separated tokens after "venti-" up to the next "-".
func ParseVersions(line string) []string {
	s := strings.TrimPrefix(line, versionPrefix)
	if i := strings.IndexByte(s, '-'); i >= 0 {
		s = s[:i]
	}
	return strings.Split(s, ":")
}

// ChooseVersion applies libventi's selection rule: walk the peer's list in
// the peer's order and take the first version we support ourselves.
func ChooseVersion(peer, ours []string) (string, bool) {
	for _, p := range peer {
		for _, o := range ours {
			if p == o {
				return p, true
			}
		}
	}
	return "", false
}
