package daemon

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gridlord/engine/console"
)

// A running fossil's archiver, as its super block on the disk shows it
// (fossil's disk.c: headerUnpack, superUnpack). fossil/last prints only the
// last archive; archiveFossil also needs to know whether an archive is
// still queued or being written, because a fossil booted on a later day
// than its last archive makes a catch-up archive of its own at boot
// (snap.c: "if we miss an archive ... we do it as soon as possible"),
// which can end after "snap -a" was typed and before that one's.

const (
	// fossilHeaderOffset is where a fossil partition's header starts.
	fossilHeaderOffset = 128 << 10
	fossilHeaderMagic  = 0x3776ae89
	fossilSuperMagic   = 0x2340a3b1
	// fossilNilBlock is fossil's "no block" address.
	fossilNilBlock = 0xffffffff
)

// fossilSuper is what archiveFossil reads of a fossil's super block.
type fossilSuper struct {
	// epochHigh grows with every snapshot taken.
	epochHigh uint32
	// next is the archival snapshot waiting for the archiver, current
	// the one it is writing (fossilNilBlock: none).
	next, current uint32
	// last is the last archive written, as "vac:" and its score.
	last string
}

// archiving reports whether an archive is queued or being written.
func (s fossilSuper) archiving() bool {
	return s.next != fossilNilBlock || s.current != fossilNilBlock
}

// xdLine is a line of "xd -1x" output: an address, then hex bytes.
var xdLine = regexp.MustCompile(`^([0-9a-f]{7,8})((?: +[0-9a-f]{2}){0,16})$`)

// parseXD decodes the output of Plan 9's "xd -1x" (lines of a hex address
// and up to 16 hex bytes; a "*" line stands for repeats of the line
// before) into the bytes it shows from address 0, stopping at the first
// "*": callers ask for a prefix short enough to have none. Other lines
// (messages the kernel or fossil print on the same console) are skipped;
// the addresses must follow on from each other.
func parseXD(out string) ([]byte, error) {
	var b []byte
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "*" {
			break
		}
		m := xdLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		addr, err := strconv.ParseUint(m[1], 16, 32)
		if err != nil || addr != uint64(len(b)) {
			return nil, fmt.Errorf("xd line %q: address, want %#x", line, len(b))
		}
		for _, h := range strings.Fields(m[2]) {
			v, _ := strconv.ParseUint(h, 16, 8) // the pattern allows only two hex digits
			b = append(b, byte(v))
		}
	}
	return b, nil
}

// decodeFossilHeader returns the byte offset of the super block in the
// fossil partition whose header is h.
func decodeFossilHeader(h []byte) (int64, error) {
	if len(h) < 12 {
		return 0, fmt.Errorf("fossil header: %d bytes, want 12", len(h))
	}
	if m := binary.BigEndian.Uint32(h); m != fossilHeaderMagic {
		return 0, fmt.Errorf("fossil header: magic %#x, want %#x (is this a fossil partition?)", m, fossilHeaderMagic)
	}
	bsize, super := int64(binary.BigEndian.Uint16(h[6:])), int64(binary.BigEndian.Uint32(h[8:]))
	if bsize == 0 || bsize%512 != 0 || super == 0 {
		return 0, fmt.Errorf("fossil header: block size %d, super block %d", bsize, super)
	}
	return super * bsize, nil
}

// decodeFossilSuper decodes the start of a fossil super block.
func decodeFossilSuper(b []byte) (fossilSuper, error) {
	if len(b) < 54 {
		return fossilSuper{}, fmt.Errorf("fossil super block: %d bytes, want 54", len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != fossilSuperMagic {
		return fossilSuper{}, fmt.Errorf("fossil super block: magic %#x, want %#x", m, fossilSuperMagic)
	}
	return fossilSuper{
		epochHigh: binary.BigEndian.Uint32(b[10:]),
		next:      binary.BigEndian.Uint32(b[26:]),
		current:   binary.BigEndian.Uint32(b[30:]),
		last:      "vac:" + hex.EncodeToString(b[34:54]),
	}, nil
}

// fossilSuperReader reads a running fossil's super block from its
// partition dev through rc, with dd and xd (as fossil/last reads it: what
// fossil has flushed to the disk).
type fossilSuperReader struct {
	rc    *console.RC
	dev   string
	super int64 // the super block's offset; 0 until the header is read
}

// read returns the super block now on the disk.
func (r *fossilSuperReader) read(ctx context.Context) (fossilSuper, error) {
	if r.super == 0 {
		h, err := r.bytes(ctx, fossilHeaderOffset, 2)
		if err != nil {
			return fossilSuper{}, err
		}
		if r.super, err = decodeFossilHeader(h); err != nil {
			return fossilSuper{}, fmt.Errorf("%s: %w", r.dev, err)
		}
	}
	b, err := r.bytes(ctx, r.super, 4)
	if err != nil {
		return fossilSuper{}, err
	}
	s, err := decodeFossilSuper(b)
	if err != nil {
		return fossilSuper{}, fmt.Errorf("%s: %w", r.dev, err)
	}
	return s, nil
}

// bytes returns lines×16 bytes of the partition from off (a multiple of
// 512).
func (r *fossilSuperReader) bytes(ctx context.Context, off int64, lines int) ([]byte, error) {
	cmd := fmt.Sprintf("dd -if %s -bs 512 -iseek %d -count 1 >[2]/dev/null | xd -1x | sed %dq", r.dev, off/512, lines)
	res, err := r.rc.Run(ctx, cmd, time.Minute)
	if err != nil {
		return nil, err
	}
	if !res.OK() {
		return nil, fmt.Errorf("read %s at %d: %s: %s", r.dev, off, res.Status, strings.TrimSpace(res.Output))
	}
	b, err := parseXD(res.Output)
	if err == nil && len(b) < lines*16 {
		err = errors.New("short output")
	}
	if err != nil {
		return nil, fmt.Errorf("read %s at %d: %w: %q", r.dev, off, err, res.Output)
	}
	return b, nil
}
