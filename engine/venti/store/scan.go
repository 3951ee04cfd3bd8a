package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// recStatus classifies a record found by scanArena.
type recStatus int

const (
	recOK      recStatus = iota // header and payload match their checksums
	recCorrupt                  // header is good, payload bytes are damaged, later records exist
)

// scanRec is one record found by scanArena.
type scanRec struct {
	off    int64 // offset of the record header in the arena file
	h      recHeader
	status recStatus
	// data is the payload (recOK only: it matches the data checksum and, if
	// compressed, is well formed; see decodePayload); it is valid only
	// during the callback.
	data []byte
}

// scanResult describes where the log in one arena file ends.
type scanResult struct {
	// end is the offset just past the last record that belongs to the log:
	// the next append goes there. Bytes from end to the file size are a
	// torn tail (an append cut short by a crash) or damage.
	end int64
	// sealed reports that the arena ends with an end marker (it is full).
	sealed bool
	// torn lists records with a good header but damaged block bytes after
	// which no good record follows: an append cut short by a crash. They
	// lie between end and the stop offset and were not passed to fn.
	torn []scanRec
	// stop is where the scan stopped: the file size, the offset just past
	// the end marker, or the offset of a header that does not decode.
	stop int64
	// stopErr says why the scan stopped before the file size (nil when it
	// reached the file size, an end marker or padding).
	stopErr error
	// padding is the number of zero bytes at the end of the file, after the
	// log and any torn records, that pad the last direct write to a whole
	// block (see flush.write): fewer than dioAlign, up to a size that is a
	// multiple of it. When there are some, stop is the file size.
	padding int64
}

// window reads an io.ReaderAt sequentially through one reusable buffer.
type window struct {
	r    io.ReaderAt
	size int64 // bytes available from r
	base int64 // file offset of buf[0]
	buf  []byte
	mem  []byte
}

const scanChunk = 1 << 20

// get returns n bytes at off; they stay valid until the next call.
func (w *window) get(off int64, n int) ([]byte, error) {
	if off < 0 || off+int64(n) > w.size {
		return nil, io.ErrUnexpectedEOF
	}
	if off >= w.base && off+int64(n) <= w.base+int64(len(w.buf)) {
		i := off - w.base
		return w.buf[i : i+int64(n)], nil
	}
	want := max(n, scanChunk)
	if rest := w.size - off; int64(want) > rest {
		want = int(rest)
	}
	if cap(w.mem) < want {
		w.mem = make([]byte, want)
	}
	m, err := w.r.ReadAt(w.mem[:want], off)
	w.base, w.buf = off, w.mem[:m]
	if m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return w.buf[:n], nil
}

// errScanRead marks a read error (as opposed to bad bytes) during a scan.
var errScanRead = errors.New("read error")

// scanArena walks the records of one arena file (size bytes readable from
// r, record magic magic) starting at offset from, calling fn for every
// record that belongs to the log, good or corrupt. It decides where the log
// ends: at an end marker, at the first header that does not decode, or at
// the end of the file; records with good headers but damaged blocks that
// come after the last good record are a torn tail and are not passed to fn.
// The bytes come from disk and are treated as untrusted: nothing in them
// can make scanArena panic or allocate more than MaxBlock-sized buffers.
func scanArena(r io.ReaderAt, size int64, magic uint32, from int64, fn func(scanRec) error) (scanResult, error) {
	w := &window{r: r, size: size, base: -1}
	var res scanResult
	var pending []scanRec // damaged records not yet known to be followed by a good one
	flush := func() error {
		for _, p := range pending {
			if err := fn(p); err != nil {
				return err
			}
		}
		pending = pending[:0]
		return nil
	}
	off := from
	for {
		if off >= size {
			break
		}
		hb, err := w.get(off, recHeaderSize)
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				return res, fmt.Errorf("%w at offset %d: %w", errScanRead, off, err)
			}
			res.stopErr = fmt.Errorf("%d stray bytes at the end of the file", size-off)
			res.padding = padding(w, off)
			break
		}
		h, err := decodeRecHeader(hb, magic)
		if err != nil {
			res.stopErr = err
			res.padding = padding(w, off)
			break
		}
		if h.end() {
			if err := flush(); err != nil {
				return res, err
			}
			off += recHeaderSize
			res.sealed = true
			break
		}
		rb, err := w.get(off, recHeaderSize+h.size)
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				return res, fmt.Errorf("%w at offset %d: %w", errScanRead, off, err)
			}
			res.stopErr = fmt.Errorf("record of %d bytes runs past the end of the file", h.size)
			break
		}
		rec := scanRec{off: off, h: h}
		if dataOK(rb) && payloadOK(h, rb[recHeaderSize:]) {
			if err := flush(); err != nil {
				return res, err
			}
			rec.data = rb[recHeaderSize:]
			if err := fn(rec); err != nil {
				return res, err
			}
		} else {
			rec.status = recCorrupt
			pending = append(pending, rec)
		}
		off += int64(len(rb))
	}
	res.stop = off
	res.end = off
	if res.padding > 0 {
		res.stop, res.stopErr = w.size, nil
	}
	if len(pending) > 0 {
		res.end = pending[0].off
		res.torn = pending
	}
	return res, nil
}

// padding returns the number of bytes from off to the end of w if they
// are the zeros that pad a direct write (fewer than dioAlign, to a size
// that is a multiple of it), else 0.
func padding(w *window, off int64) int64 {
	n := w.size - off
	if n <= 0 || n >= dioAlign || w.size%dioAlign != 0 {
		return 0
	}
	b, err := w.get(off, int(n))
	if err != nil {
		return 0
	}
	for _, c := range b {
		if c != 0 {
			return 0
		}
	}
	return n
}

// damage is a stretch of an arena file that holds no decodable record but
// is followed by good records.
type damage struct {
	off, end int64
	why      string
}

// logScan describes one arena's log as found by scanLog.
type logScan struct {
	scanResult
	// damaged lists stretches of unreadable bytes followed by good records.
	damaged []damage
}

// scanLog is scanArena that does not give up at an undecodable header:
// it searches on for the next good record and, if there is one, reports
// the bytes in between as damage, passes the damaged-looking records
// before them to fn (as recCorrupt) and goes on from there. So damage in
// the middle of the log never hides the records after it, and end is
// where the log really ends.
func scanLog(r io.ReaderAt, size int64, magic uint32, from int64, fn func(scanRec) error) (logScan, error) {
	var ls logScan
	off := from
	for {
		res, err := scanArena(r, size, magic, off, fn)
		if err != nil {
			return ls, err
		}
		ls.scanResult = res
		if res.sealed || res.stop >= size {
			return ls, nil
		}
		next, ok, err := findRecord(r, size, magic, res.stop+1)
		if err != nil || !ok {
			return ls, err
		}
		for _, p := range res.torn {
			if err := fn(p); err != nil {
				return ls, err
			}
		}
		ls.damaged = append(ls.damaged, damage{off: res.stop, end: next, why: res.stopErr.Error()})
		off = next
	}
}

// findRecord searches r from offset from for the next record (or end
// marker) whose header and block match their checksums.
func findRecord(r io.ReaderAt, size int64, magic uint32, from int64) (int64, bool, error) {
	var mb [4]byte
	binary.BigEndian.PutUint32(mb[:], magic)
	w := &window{r: r, size: size, base: -1}
	buf := make([]byte, min(scanChunk, max(size-from, 0)))
	for off := from; off+recHeaderSize <= size; {
		n := min(int64(len(buf)), size-off)
		m, err := r.ReadAt(buf[:n], off)
		if int64(m) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, false, fmt.Errorf("%w at offset %d: %w", errScanRead, off, err)
		}
		chunk := buf[:m]
		for i := 0; ; {
			j := bytes.Index(chunk[i:], mb[:])
			if j < 0 {
				break
			}
			pos := off + int64(i+j)
			if hb, err := w.get(pos, recHeaderSize); err == nil {
				if h, err := decodeRecHeader(hb, magic); err == nil {
					if h.end() {
						return pos, true, nil
					}
					if rb, err := w.get(pos, recHeaderSize+h.size); err == nil && dataOK(rb) {
						return pos, true, nil
					}
				}
			}
			i += j + 1
		}
		if off+n >= size {
			break
		}
		off += n - 3 // a magic may straddle chunks
	}
	return 0, false, nil
}
