// Package venti holds the types shared by everything that stores or moves
// venti blocks: scores, block types, the block-store interfaces, libventi's
// zero truncation and extension, and the wire protocol (client and server).
//
// A venti block is addressed by its score, the SHA-1 of its bytes, together
// with its type. Types here are the wire/disk numbering (data 13, dir 2,
// pointer levels 3..9, root 1); libventi's internal numbering appears only
// in InternalType and TypeFromInternal.
//
// The wire protocol (venti(7), as libventi speaks it, versions 02 and 04):
// Server serves a Store to any venti client (plan9port, Plan 9 and 9front
// libventi, Bell Labs liboventi as in old fossil); Client is a Store backed
// by any venti server, multiplexing concurrent calls over one connection;
// Message, ReadMessage, WriteMessage and the version-line helpers are the
// codec, exported for tests, fuzzing and tools.
package venti

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
)

// ScoreSize is the size of a score in bytes.
const ScoreSize = sha1.Size

// MaxBlock is the largest block a venti accepts (venti/srv's VtMaxLumpSize).
const MaxBlock = 56 * 1024

// Score is the SHA-1 of a block's bytes. Scores are comparable with ==.
type Score [ScoreSize]byte

// ZeroScore is the score of the empty block, da39a3ee…. Blocks with this
// score are never stored: they read back as empty.
var ZeroScore = Score{0xda, 0x39, 0xa3, 0xee, 0x5e, 0x6b, 0x4b, 0x0d, 0x32, 0x55,
	0xbf, 0xef, 0x95, 0x60, 0x18, 0x90, 0xaf, 0xd8, 0x07, 0x09}

// Sum returns the score of data.
func Sum(data []byte) Score { return Score(sha1.Sum(data)) }

// String returns the score as 40 lowercase hex digits.
func (s Score) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is the score of the empty block.
func (s Score) IsZero() bool { return s == ZeroScore }

// ParseScore parses 40 hex digits (either case) into a Score.
func ParseScore(s string) (Score, error) {
	var sc Score
	if len(s) != 2*ScoreSize {
		return sc, fmt.Errorf("parse score %q: want %d hex digits, have %d", s, 2*ScoreSize, len(s))
	}
	if _, err := hex.Decode(sc[:], []byte(s)); err != nil {
		return sc, fmt.Errorf("parse score %q: %w", s, err)
	}
	return sc, nil
}

// MarshalText implements encoding.TextMarshaler (40 hex digits).
func (s Score) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Score) UnmarshalText(b []byte) error {
	sc, err := ParseScore(string(b))
	if err != nil {
		return err
	}
	*s = sc
	return nil
}

// Type is a block type in the wire/disk numbering.
type Type uint8

// Block types (wire/disk numbering, venti(7)).
const (
	RootType     Type = 1  // a VtRoot block (300 bytes)
	DirType      Type = 2  // a block of VtEntry records
	PointerType0 Type = 3  // pointer block one level above data or dir blocks
	PointerType6 Type = 9  // pointer block seven levels above data or dir blocks
	DataType     Type = 13 // a data block
)

// PointerType returns the type of a pointer block depth levels (1..7) above
// the leaves.
func PointerType(depth int) Type { return PointerType0 + Type(depth-1) }

// Valid reports whether t is a block type a venti stores.
func (t Type) Valid() bool {
	return t == RootType || t == DirType || t == DataType || (t >= PointerType0 && t <= PointerType6)
}

// IsPointer reports whether t is a pointer block type.
func (t Type) IsPointer() bool { return t >= PointerType0 && t <= PointerType6 }

// Depth is the pointer level of t (0 for leaves and roots).
func (t Type) Depth() int {
	if t.IsPointer() {
		return int(t-PointerType0) + 1
	}
	return 0
}

// String names the type as venti(7) does.
func (t Type) String() string {
	switch {
	case t == RootType:
		return "root"
	case t == DirType:
		return "dir"
	case t == DataType:
		return "data"
	case t.IsPointer():
		return fmt.Sprintf("pointer%d", t-PointerType0)
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// InternalType converts t to libventi's internal numbering (data 0, data
// pointers 1..7, dir 8, root 16). Wire pointer types do not say whether they
// point at data or dir blocks; like libventi's vtfromdisktype they map to the
// dir pointer types 9..15.
func (t Type) InternalType() int {
	switch {
	case t == RootType:
		return 16
	case t == DirType:
		return 8
	case t == DataType:
		return 0
	case t.IsPointer():
		return 8 + t.Depth()
	}
	return -1
}

// TypeFromInternal converts a libventi internal type number (0..16) to the
// wire numbering, as libventi's vttodisktype does.
func TypeFromInternal(n int) (Type, error) {
	switch {
	case n == 16:
		return RootType, nil
	case n == 0:
		return DataType, nil
	case n == 8:
		return DirType, nil
	case n >= 1 && n <= 7:
		return PointerType(n), nil
	case n >= 9 && n <= 15:
		return PointerType(n - 8), nil
	}
	return 0, fmt.Errorf("venti type %d: not a libventi type (0..16)", n)
}

// ErrNotFound is returned (wrapped) by Reader.Read when no block with the
// asked score and type exists.
var ErrNotFound = errors.New("no such block")

// ErrCorrupt is returned (wrapped) when stored bytes do not hash to their
// score; the error text names the score.
var ErrCorrupt = errors.New("stored block is corrupt")

// Reader reads blocks.
type Reader interface {
	// Read returns the stored (zero-truncated) bytes of the block with score
	// s and type t. It fails if the block is larger than max bytes. A missing
	// block gives an error wrapping ErrNotFound. Reading ZeroScore returns an
	// empty slice without a lookup. The returned bytes always hash to s.
	// Read is safe for concurrent use.
	Read(ctx context.Context, s Score, t Type, max int) ([]byte, error)
}

// ReaderInto is implemented by readers that can read a block into a
// buffer the caller supplies, sparing an allocation per read (the server
// reads with it into buffers it reuses). A type that embeds a ReaderInto
// and overrides Read must override ReadInto as well, or the server will
// bypass its Read.
type ReaderInto interface {
	// ReadInto is Read, except that the block may be read into buf; the
	// result may then alias buf. A buf of MaxBlock+64 bytes is always
	// large enough.
	ReadInto(ctx context.Context, s Score, t Type, max int, buf []byte) ([]byte, error)
}

// ReaderRef is implemented by stores that can hand out a block where it
// already lies in their memory (a mapping of their files) instead of
// copying it; the server sends Rread data from there.
type ReaderRef interface {
	// ReadRef is ReadInto, except that data may alias the store's own
	// memory: release is then non-nil, data must not be written, and
	// release must be called exactly once when data is no longer
	// needed. With a nil release, data is as ReadInto returns it.
	ReadRef(ctx context.Context, s Score, t Type, max int, buf []byte) (data []byte, release func(), err error)
}

// ReaderNoWait is implemented by stores that can tell, without waiting
// for a disk, whether they hold a block in memory; the server answers
// such a Tread on the connection's reader goroutine instead of handing it
// to a worker.
type ReaderNoWait interface {
	// ReadRefNoWait is ReadRef for a block that is in memory and needs
	// no more than cheap checks: ok is false, with nothing to release,
	// when the read might wait for a disk or do costly work, or when
	// the block is not found so (ReadRef then tells what is wrong).
	ReadRefNoWait(s Score, t Type, max int) (data []byte, release func(), ok bool)
}

// Writer writes blocks.
type Writer interface {
	// Write stores data as a block of type t and returns its score. Empty
	// data returns ZeroScore and stores nothing; writing an existing block is
	// a successful no-op. The block is durable only after a later Sync.
	// Write is safe for concurrent use; data may be reused after it returns.
	Write(ctx context.Context, t Type, data []byte) (Score, error)
}

// Syncer makes writes durable.
type Syncer interface {
	// Sync returns once every block whose Write returned before Sync was
	// called is on stable storage.
	Sync(ctx context.Context) error
}

// Store is a complete block store: the embedded venti, an in-memory store
// or a client of a remote venti.
type Store interface {
	Reader
	Writer
	Syncer
}

// CheckWrite validates a write before any store sees it: the type must be
// a stored type and the data at most MaxBlock bytes.
func CheckWrite(t Type, data []byte) error {
	if !t.Valid() {
		return fmt.Errorf("write block: invalid type %d", uint8(t))
	}
	if len(data) > MaxBlock {
		return fmt.Errorf("write block: %d bytes is larger than the %d-byte maximum", len(data), MaxBlock)
	}
	return nil
}

// CheckRead verifies that data read for score s hashes to s.
func CheckRead(s Score, t Type, data []byte) error {
	if Sum(data) != s {
		return fmt.Errorf("block %v/%v: %w: data hashes to %v", s, t, ErrCorrupt, Sum(data))
	}
	return nil
}
