package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// On-disk constants from QEMU's docs/interop/qcow2.txt.
const (
	magic = 0x514649fb // "QFI\xfb"

	minClusterBits = 9  // 512 B
	maxClusterBits = 21 // 2 MiB

	v2HeaderLen = 72
	v3HeaderLen = 104

	// header extension types
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extFeatureTable  = 0x6803f857
	extBitmaps       = 0x23852875
	extEncryption    = 0x0537be77
	extDataFile      = 0x44415441

	// incompatible feature bits
	incDirty        = 1 << 0
	incCorrupt      = 1 << 1
	incDataFile     = 1 << 2
	incCompressType = 1 << 3
	incExtendedL2   = 1 << 4
	incKnown        = incDirty | incCorrupt | incDataFile | incCompressType | incExtendedL2

	// compatible feature bits
	compatLazyRefcounts = 1 << 0

	// table entry bits
	offsetMask   = 0x00fffffffffffe00 // bits 9-55
	flagCopied   = 1 << 63
	flagCompress = 1 << 62
	flagZero     = 1 << 0

	// limits QEMU applies too; they keep a hostile header from making us
	// allocate gigabytes.
	maxL1Bytes       = 32 << 20
	maxRefTableBytes = 8 << 20
	maxBackingName   = 1023
	maxVirtualSize   = 1 << 55
)

// ErrUnsupported is wrapped by every error that refuses an image because it
// uses a qcow2 feature this package does not implement.
var ErrUnsupported = errors.New("unsupported qcow2 feature")

// ErrCorrupt is wrapped by every error caused by inconsistent image metadata.
var ErrCorrupt = errors.New("corrupt qcow2 image")

// header is the parsed fixed header plus the extensions we care about.
type header struct {
	version          uint32
	backingOffset    uint64
	backingSize      uint32
	clusterBits      uint32
	size             uint64
	cryptMethod      uint32
	l1Size           uint32
	l1Offset         uint64
	refTableOffset   uint64
	refTableClusters uint32
	nbSnapshots      uint32
	snapshotsOffset  uint64
	incompatible     uint64
	compatible       uint64
	autoclear        uint64
	refcountOrder    uint32
	headerLen        uint32
	compressionType  uint8

	backingFile   string // as stored in the image, "" if none
	backingFormat string // from the backing format extension, "" if absent
	extensions    []uint32
}

func (h *header) clusterSize() int64 { return 1 << h.clusterBits }

// l2Entries is the number of 8-byte entries in one L2 table.
func (h *header) l2Entries() int64 { return h.clusterSize() / 8 }

// parseHeader parses and validates the first cluster of a qcow2 image (or as
// much of it as the file has). fileSize bounds the tables it points to. It
// refuses features we do not implement with an error wrapping ErrUnsupported.
func parseHeader(b []byte, fileSize int64) (*header, error) {
	if len(b) < v2HeaderLen {
		return nil, fmt.Errorf("%w: file too short for a qcow2 header (%d bytes)", ErrCorrupt, len(b))
	}
	be := binary.BigEndian
	if be.Uint32(b[0:]) != magic {
		return nil, fmt.Errorf("%w: no qcow2 magic", ErrCorrupt)
	}
	h := &header{
		version:          be.Uint32(b[4:]),
		backingOffset:    be.Uint64(b[8:]),
		backingSize:      be.Uint32(b[16:]),
		clusterBits:      be.Uint32(b[20:]),
		size:             be.Uint64(b[24:]),
		cryptMethod:      be.Uint32(b[32:]),
		l1Size:           be.Uint32(b[36:]),
		l1Offset:         be.Uint64(b[40:]),
		refTableOffset:   be.Uint64(b[48:]),
		refTableClusters: be.Uint32(b[56:]),
		nbSnapshots:      be.Uint32(b[60:]),
		snapshotsOffset:  be.Uint64(b[64:]),
		refcountOrder:    4,
		headerLen:        v2HeaderLen,
	}
	switch h.version {
	case 2:
	case 3:
		if len(b) < v3HeaderLen {
			return nil, fmt.Errorf("%w: file too short for a qcow2 v3 header", ErrCorrupt)
		}
		h.incompatible = be.Uint64(b[72:])
		h.compatible = be.Uint64(b[80:])
		h.autoclear = be.Uint64(b[88:])
		h.refcountOrder = be.Uint32(b[96:])
		h.headerLen = be.Uint32(b[100:])
		if h.headerLen < v3HeaderLen || h.headerLen%8 != 0 || int(h.headerLen) > len(b) {
			return nil, fmt.Errorf("%w: bad v3 header length %d", ErrCorrupt, h.headerLen)
		}
		if h.headerLen > 104 {
			h.compressionType = b[104]
		}
	default:
		return nil, fmt.Errorf("%w: qcow2 version %d (only versions 2 and 3 are supported)", ErrUnsupported, h.version)
	}
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return nil, fmt.Errorf("%w: cluster_bits %d outside %d..%d", ErrCorrupt, h.clusterBits, minClusterBits, maxClusterBits)
	}
	cs := h.clusterSize()
	if int64(len(b)) > cs {
		b = b[:cs]
	}
	if int(h.headerLen) > len(b) {
		return nil, fmt.Errorf("%w: header length %d exceeds the first cluster", ErrCorrupt, h.headerLen)
	}
	if h.cryptMethod != 0 {
		return nil, fmt.Errorf("%w: image is encrypted (crypt_method %d); decrypt it with qemu-img convert first", ErrUnsupported, h.cryptMethod)
	}
	if unknown := h.incompatible &^ incKnown; unknown != 0 {
		return nil, fmt.Errorf("%w: unknown incompatible feature bits %#x", ErrUnsupported, unknown)
	}
	if h.incompatible&incDirty != 0 {
		return nil, fmt.Errorf("%w: dirty bit set (image was not closed cleanly with lazy refcounts); repair it with \"qemu-img check -r all\"", ErrUnsupported)
	}
	if h.incompatible&incDataFile != 0 {
		return nil, fmt.Errorf("%w: image uses an external data file", ErrUnsupported)
	}
	if h.incompatible&incExtendedL2 != 0 {
		return nil, fmt.Errorf("%w: image uses extended L2 entries (subclusters)", ErrUnsupported)
	}
	if h.incompatible&incCompressType != 0 || h.compressionType != 0 {
		return nil, fmt.Errorf("%w: compression type %d (only zlib is supported); recompress with qemu-img convert -c -o compression_type=zlib", ErrUnsupported, h.compressionType)
	}
	if h.refcountOrder > 6 {
		return nil, fmt.Errorf("%w: refcount_order %d > 6", ErrCorrupt, h.refcountOrder)
	}
	if h.size > maxVirtualSize {
		return nil, fmt.Errorf("%w: virtual size %d too large", ErrCorrupt, h.size)
	}
	// L1 table must cover the virtual size.
	l2Cover := uint64(cs) * uint64(h.l2Entries())
	need := (h.size + l2Cover - 1) / l2Cover
	if uint64(h.l1Size) < need {
		return nil, fmt.Errorf("%w: L1 table has %d entries, virtual size needs %d", ErrCorrupt, h.l1Size, need)
	}
	if uint64(h.l1Size)*8 > maxL1Bytes {
		return nil, fmt.Errorf("%w: L1 table of %d entries is too large", ErrCorrupt, h.l1Size)
	}
	if h.l1Size > 0 {
		if h.l1Offset%uint64(cs) != 0 || h.l1Offset == 0 {
			return nil, fmt.Errorf("%w: L1 table offset %#x not cluster aligned", ErrCorrupt, h.l1Offset)
		}
		if h.l1Offset+uint64(h.l1Size)*8 > uint64(fileSize) {
			return nil, fmt.Errorf("%w: L1 table at %#x lies past the end of the file", ErrCorrupt, h.l1Offset)
		}
	}
	if h.refTableOffset%uint64(cs) != 0 || h.refTableOffset == 0 {
		return nil, fmt.Errorf("%w: refcount table offset %#x not cluster aligned", ErrCorrupt, h.refTableOffset)
	}
	if h.refTableClusters == 0 || uint64(h.refTableClusters)*uint64(cs) > maxRefTableBytes {
		return nil, fmt.Errorf("%w: refcount table of %d clusters", ErrCorrupt, h.refTableClusters)
	}
	// Extensions run from the end of the header to the backing file name
	// (or the end of the first cluster).
	extEndOff := int64(len(b))
	if h.backingOffset != 0 {
		if h.backingSize == 0 || h.backingSize > maxBackingName {
			return nil, fmt.Errorf("%w: backing file name length %d", ErrCorrupt, h.backingSize)
		}
		end := h.backingOffset + uint64(h.backingSize)
		if h.backingOffset < uint64(h.headerLen) || end > uint64(len(b)) {
			return nil, fmt.Errorf("%w: backing file name at %d..%d outside the first cluster", ErrCorrupt, h.backingOffset, end)
		}
		h.backingFile = string(b[h.backingOffset:end])
		extEndOff = int64(h.backingOffset)
	}
	if err := h.parseExtensions(b[h.headerLen:extEndOff]); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *header) parseExtensions(b []byte) error {
	be := binary.BigEndian
	for len(b) >= 8 {
		typ, n := be.Uint32(b), be.Uint32(b[4:])
		b = b[8:]
		if typ == extEnd {
			return nil
		}
		if uint64(n) > uint64(len(b)) {
			return fmt.Errorf("%w: header extension %#x of %d bytes overruns the header", ErrCorrupt, typ, n)
		}
		data := b[:n]
		h.extensions = append(h.extensions, typ)
		switch typ {
		case extBackingFormat:
			h.backingFormat = string(bytes.TrimRight(data, "\x00"))
		case extDataFile:
			return fmt.Errorf("%w: image uses an external data file", ErrUnsupported)
		case extEncryption:
			return fmt.Errorf("%w: image has an encryption header", ErrUnsupported)
		}
		padded := (uint64(n) + 7) &^ 7
		if padded > uint64(len(b)) {
			return nil // last extension without padding; tolerate
		}
		b = b[padded:]
	}
	return nil
}

// compat returns the qemu-img name of the image's compatibility level.
func (h *header) compat() string {
	if h.version == 2 {
		return "0.10"
	}
	return "1.1"
}

// encodeV3 writes a version 3 header (112 bytes, compression type zlib)
// followed by the extensions and the backing file name into a cluster-sized
// buffer.
func (h *header) encodeV3() ([]byte, error) {
	cs := h.clusterSize()
	b := make([]byte, cs)
	be := binary.BigEndian
	const hlen = 112
	be.PutUint32(b[0:], magic)
	be.PutUint32(b[4:], 3)
	be.PutUint32(b[20:], h.clusterBits)
	be.PutUint64(b[24:], h.size)
	be.PutUint32(b[36:], h.l1Size)
	be.PutUint64(b[40:], h.l1Offset)
	be.PutUint64(b[48:], h.refTableOffset)
	be.PutUint32(b[56:], h.refTableClusters)
	be.PutUint64(b[72:], h.incompatible)
	be.PutUint64(b[80:], h.compatible)
	be.PutUint64(b[88:], h.autoclear)
	be.PutUint32(b[96:], h.refcountOrder)
	be.PutUint32(b[100:], hlen)
	p := hlen
	putExt := func(typ uint32, data []byte) error {
		n := 8 + (len(data)+7)&^7
		if p+n+8 > len(b) {
			return fmt.Errorf("header extensions do not fit in a %d-byte cluster", cs)
		}
		be.PutUint32(b[p:], typ)
		be.PutUint32(b[p+4:], uint32(len(data)))
		copy(b[p+8:], data)
		p += n
		return nil
	}
	if h.backingFormat != "" {
		if err := putExt(extBackingFormat, []byte(h.backingFormat)); err != nil {
			return nil, err
		}
	}
	// The feature name table is optional; small clusters leave it out.
	if ft := featureTable(); p+8+len(ft)+8+len(h.backingFile) <= len(b) {
		if err := putExt(extFeatureTable, ft); err != nil {
			return nil, err
		}
	}
	p += 8 // end-of-extensions marker (zeros)
	if h.backingFile != "" {
		if len(h.backingFile) > maxBackingName || p+len(h.backingFile) > len(b) {
			return nil, fmt.Errorf("backing file name %q is too long (max %d bytes)", h.backingFile, maxBackingName)
		}
		be.PutUint64(b[8:], uint64(p))
		be.PutUint32(b[16:], uint32(len(h.backingFile)))
		copy(b[p:], h.backingFile)
	}
	return b, nil
}

// featureTable is the feature name table extension QEMU writes, so tools
// can name the bits.
func featureTable() []byte {
	type feat struct {
		typ  byte
		bit  byte
		name string
	}
	feats := []feat{
		{0, 0, "dirty bit"}, {0, 1, "corrupt bit"}, {0, 2, "external data file"},
		{0, 3, "compression type"}, {0, 4, "extended L2 entries"},
		{1, 0, "lazy refcounts"}, {2, 0, "bitmaps"}, {2, 1, "raw external data"},
	}
	b := make([]byte, 48*len(feats))
	for i, f := range feats {
		b[i*48] = f.typ
		b[i*48+1] = f.bit
		copy(b[i*48+2:i*48+48], f.name)
	}
	return b
}
