package qcow2

// Writing.
//
// Writes go into the top image only. A write to a cluster the top image
// already holds as plain data goes to that cluster in place. Any other
// cluster (unallocated, zero, compressed, or only in a backing file) is
// copied on write: its current contents are read through the chain, merged
// with the new bytes and written to a freshly allocated cluster at the end of
// the file.
//
// Metadata reaches the disk in this order, with fsync at each "barrier", so
// that no table on disk ever points at a cluster whose contents or refcount
// are not yet durable:
//
//  1. new data clusters, new L2 tables (already holding their entries) and
//     refcount increments for every new cluster; new refcount blocks are
//     written and synced before the refcount-table entries that point at
//     them; a grown refcount table is written whole, synced, and only then
//     does the header switch to it (one 12-byte write), synced again, after
//     which the old table's clusters are released;
//  2. barrier;
//  3. entries in existing L2 tables, then L1 entries for new L2 tables;
//  4. only if clusters were replaced (compressed or preallocated-zero
//     clusters overwritten): barrier, then their refcounts are decremented.
//
// Before the first write to an image, autoclear feature bits (such as
// persistent bitmaps, which we do not update) are cleared and synced.
//
// A crash at any point therefore leaves at worst leaked clusters (refcount
// above the number of references), which "qemu-img check -r leaks" repairs,
// and never a reference to an unallocated cluster. We never use lazy
// refcounts and never set the dirty bit.

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// allocator holds the refcount structures of a writable image.
type allocator struct {
	order    uint32
	perBlock int64    // refcount entries per refcount block
	table    []uint64 // refcount table (in memory)
	tableOff int64
	tableCl  int64 // clusters in the table on disk

	blocks      map[int64][]byte // refcount blocks by host offset
	dirty       map[int64]bool   // blocks to write
	newBlocks   bool             // a block was created since the last commit
	dirtyEntry  map[int]bool     // table entries to write
	relocated   bool             // table moved; header must switch
	pendingFree []int64          // clusters to release after the header switch

	end int64 // next free host offset (cluster aligned)
}

// loadAllocator reads and checks the refcount table of an image opened for
// writing. It does not modify the file.
func (im *Image) loadAllocator() error {
	h := im.h
	a := &allocator{
		order:      h.refcountOrder,
		perBlock:   im.cs * 8 >> h.refcountOrder,
		tableOff:   int64(h.refTableOffset),
		tableCl:    int64(h.refTableClusters),
		blocks:     make(map[int64][]byte),
		dirty:      make(map[int64]bool),
		dirtyEntry: make(map[int]bool),
		end:        (im.fileSize + im.cs - 1) &^ (im.cs - 1),
	}
	if a.tableOff+a.tableCl*im.cs > im.fileSize {
		return fmt.Errorf("%w: refcount table at %#x lies past the end of the file", ErrCorrupt, a.tableOff)
	}
	raw := make([]byte, a.tableCl*im.cs)
	if _, err := im.f.ReadAt(raw, a.tableOff); err != nil {
		return fmt.Errorf("read refcount table: %w", err)
	}
	a.table = make([]uint64, len(raw)/8)
	for i := range a.table {
		a.table[i] = binary.BigEndian.Uint64(raw[i*8:])
		if off := int64(a.table[i] & offsetMask); off != 0 {
			if off&(im.cs-1) != 0 {
				return fmt.Errorf("%w: refcount block offset %#x not cluster aligned", ErrCorrupt, off)
			}
			if off >= a.end {
				return fmt.Errorf("%w: refcount block at %#x lies past the end of the file", ErrCorrupt, off)
			}
		}
	}
	im.alloc = a
	return nil
}

// prepareWrite clears, before the first write, autoclear feature bits we do
// not maintain (as the spec requires of a writer that does not understand
// them).
func (im *Image) prepareWrite() error {
	if im.h.autoclear == 0 {
		return nil
	}
	var z [8]byte
	if err := im.write(z[:], 88); err != nil {
		return fmt.Errorf("clear autoclear features: %w", err)
	}
	if err := im.sync(); err != nil {
		return fmt.Errorf("clear autoclear features: %w", err)
	}
	im.h.autoclear = 0
	return nil
}

// block returns the refcount block for cluster index idx, creating it (and
// growing the table) if create is set; nil if absent and !create.
func (im *Image) block(idx int64, create bool) ([]byte, error) {
	a := im.alloc
	ti := idx / a.perBlock
	if ti >= int64(len(a.table)) {
		if !create {
			return nil, nil
		}
		if err := im.growTable(ti); err != nil {
			return nil, err
		}
	}
	off := int64(a.table[ti] & offsetMask)
	if off == 0 {
		if !create {
			return nil, nil
		}
		off = a.end
		a.end += im.cs
		b := make([]byte, im.cs)
		a.blocks[off] = b
		a.dirty[off] = true
		a.newBlocks = true
		a.table[ti] = uint64(off)
		a.dirtyEntry[int(ti)] = true
		// The new block needs a refcount itself.
		if err := im.addRef(off/im.cs, 1); err != nil {
			return nil, err
		}
		return b, nil
	}
	if b, ok := a.blocks[off]; ok {
		return b, nil
	}
	b := make([]byte, im.cs)
	if err := im.readFile(b, off); err != nil {
		return nil, fmt.Errorf("read refcount block at %#x: %w", off, err)
	}
	a.blocks[off] = b
	return b, nil
}

// getRef returns the refcount of cluster index idx.
func (im *Image) getRef(idx int64) (uint64, error) {
	b, err := im.block(idx, false)
	if err != nil || b == nil {
		return 0, err
	}
	return refGet(b, im.alloc.order, idx%im.alloc.perBlock), nil
}

// addRef adds delta to the refcount of cluster index idx (in memory; commit
// writes it).
func (im *Image) addRef(idx int64, delta int64) error {
	b, err := im.block(idx, delta > 0)
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("%w: cluster %d is in use but has no refcount block", ErrCorrupt, idx)
	}
	a := im.alloc
	i := idx % a.perBlock
	v := refGet(b, a.order, i)
	nv := int64(v) + delta
	maxv := uint64(1)<<(1<<a.order) - 1
	if a.order == 6 {
		maxv = ^uint64(0)
	}
	if nv < 0 {
		return fmt.Errorf("%w: refcount of cluster %d would drop below zero", ErrCorrupt, idx)
	}
	if uint64(nv) > maxv {
		return fmt.Errorf("%w: refcount of cluster %d overflows %d bits", ErrCorrupt, idx, 1<<a.order)
	}
	refSet(b, a.order, i, uint64(nv))
	// Find the block's offset to mark it dirty.
	a.dirty[int64(a.table[idx/a.perBlock]&offsetMask)] = true
	return nil
}

// refGet and refSet access entry i of a refcount block of 2^order-bit
// entries (big endian; sub-byte entries start at the least significant bit).
func refGet(b []byte, order uint32, i int64) uint64 {
	switch order {
	case 0, 1, 2:
		bits := int64(1) << order
		per := 8 / bits
		shift := (i % per) * bits
		return uint64(b[i/per]>>shift) & (1<<bits - 1)
	case 3:
		return uint64(b[i])
	case 4:
		return uint64(binary.BigEndian.Uint16(b[i*2:]))
	case 5:
		return uint64(binary.BigEndian.Uint32(b[i*4:]))
	default:
		return binary.BigEndian.Uint64(b[i*8:])
	}
}

func refSet(b []byte, order uint32, i int64, v uint64) {
	switch order {
	case 0, 1, 2:
		bits := int64(1) << order
		per := 8 / bits
		shift := (i % per) * bits
		mask := byte(1<<bits-1) << shift
		b[i/per] = b[i/per]&^mask | byte(v)<<shift
	case 3:
		b[i] = byte(v)
	case 4:
		binary.BigEndian.PutUint16(b[i*2:], uint16(v))
	case 5:
		binary.BigEndian.PutUint32(b[i*4:], uint32(v))
	default:
		binary.BigEndian.PutUint64(b[i*8:], v)
	}
}

// allocCluster reserves one cluster at the end of the file with refcount 1.
func (im *Image) allocCluster() (int64, error) {
	a := im.alloc
	off := a.end
	a.end += im.cs
	if err := im.addRef(off/im.cs, 1); err != nil {
		return 0, err
	}
	return off, nil
}

// growTable moves the refcount table to a bigger one at the end of the file
// that has an entry for table index ti (in memory; commit writes it).
func (im *Image) growTable(ti int64) error {
	a := im.alloc
	perCluster := im.cs / 8
	// Enough entries for ti, for everything up to the new end of the file
	// (table, and blocks for it) with room to spare, and at least double.
	need := max(ti+1, 2*int64(len(a.table)))
	for {
		clusters := (need + perCluster - 1) / perCluster
		endIdx := (a.end+clusters*im.cs)/im.cs + clusters + 4
		if endIdx/a.perBlock+1 <= need {
			break
		}
		need = endIdx/a.perBlock + 1
	}
	clusters := (need + perCluster - 1) / perCluster
	if clusters*im.cs > maxRefTableBytes {
		return fmt.Errorf("refcount table would exceed %d bytes", maxRefTableBytes)
	}
	for c := int64(0); c < a.tableCl; c++ {
		a.pendingFree = append(a.pendingFree, a.tableOff/im.cs+c)
	}
	off := a.end
	a.end += clusters * im.cs
	t := make([]uint64, clusters*perCluster)
	copy(t, a.table)
	a.table, a.tableOff, a.tableCl, a.relocated = t, off, clusters, true
	for c := int64(0); c < clusters; c++ {
		if err := im.addRef(off/im.cs+c, 1); err != nil {
			return err
		}
	}
	return nil
}

// commitRefs writes refcount changes in a safe order (see the top of this
// file). It returns after the refcounts are durable.
func (im *Image) commitRefs() error {
	a := im.alloc
	for {
		if err := im.writeDirtyBlocks(); err != nil {
			return err
		}
		if a.relocated {
			raw := make([]byte, a.tableCl*im.cs)
			for i, e := range a.table {
				binary.BigEndian.PutUint64(raw[i*8:], e)
			}
			if err := im.write(raw, a.tableOff); err != nil {
				return fmt.Errorf("write refcount table: %w", err)
			}
			if err := im.sync(); err != nil {
				return err
			}
			var hdr [12]byte
			binary.BigEndian.PutUint64(hdr[0:], uint64(a.tableOff))
			binary.BigEndian.PutUint32(hdr[8:], uint32(a.tableCl))
			if err := im.write(hdr[:], 48); err != nil {
				return fmt.Errorf("switch to new refcount table: %w", err)
			}
			if err := im.sync(); err != nil {
				return err
			}
			im.h.refTableOffset, im.h.refTableClusters = uint64(a.tableOff), uint32(a.tableCl)
			a.relocated, a.newBlocks = false, false
			clear(a.dirtyEntry)
			// Release the old table(s); this may dirty blocks again.
			free := a.pendingFree
			a.pendingFree = nil
			for _, c := range free {
				if err := im.addRef(c, -1); err != nil {
					return err
				}
			}
			continue
		}
		if len(a.dirtyEntry) > 0 {
			if a.newBlocks {
				if err := im.sync(); err != nil {
					return err
				}
				a.newBlocks = false
			}
			for _, i := range sortedKeys(a.dirtyEntry) {
				var e [8]byte
				binary.BigEndian.PutUint64(e[:], a.table[i])
				if err := im.write(e[:], a.tableOff+int64(i)*8); err != nil {
					return fmt.Errorf("write refcount table entry: %w", err)
				}
			}
			clear(a.dirtyEntry)
		}
		return nil
	}
}

func (im *Image) writeDirtyBlocks() error {
	a := im.alloc
	for _, off := range sortedKeys(a.dirty) {
		if err := im.write(a.blocks[off], off); err != nil {
			return fmt.Errorf("write refcount block: %w", err)
		}
	}
	clear(a.dirty)
	return nil
}

func sortedKeys[K int | int64 | uint64, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// write writes to the file and keeps fileSize up to date.
func (im *Image) write(p []byte, off int64) error {
	if _, err := im.f.WriteAt(p, off); err != nil {
		return err
	}
	im.fileSize = max(im.fileSize, off+int64(len(p)))
	return nil
}

func (im *Image) sync() error {
	if err := im.f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// WriteAt writes p to the virtual disk at off. Writes past the end of the
// disk fail (images do not grow). When WriteAt returns, the data and
// metadata are written in a crash-safe order but not necessarily durable:
// call Sync or Close for that. Large writes are applied in rounds of 8 MiB.
// If a write fails part way (a prefix may have been written) the image refuses
// further writes; close and reopen it (the file on disk is consistent, at
// worst with leaked clusters).
func (im *Image) WriteAt(p []byte, off int64) (int, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	switch {
	case im.closed:
		return 0, ErrClosed
	case !im.writable:
		return 0, fmt.Errorf("write %s: %w", im.path, ErrReadOnly)
	case im.failed != nil:
		return 0, fmt.Errorf("write %s: an earlier write failed, reopen the image: %w", im.path, im.failed)
	case off < 0 || off > im.size || int64(len(p)) > im.size-off:
		return 0, fmt.Errorf("write %s: %d bytes at %d outside the %d-byte disk", im.path, len(p), off, im.size)
	}
	if len(p) == 0 {
		return 0, nil
	}
	var err error
	if im.format == FormatRaw {
		_, err = im.f.WriteAt(p, off)
	} else {
		// Bound the memory held for copy-on-write: at most writeChunk
		// bytes (a multiple of every cluster size) per metadata round.
		for q, o := p, off; len(q) > 0 && err == nil; {
			n := min(int64(len(q)), writeChunk-o%writeChunk)
			err = im.writeQcow(q[:n], o)
			q, o = q[n:], o+n
		}
		if err != nil {
			im.failed = err
		}
	}
	if err != nil {
		return 0, fmt.Errorf("write %s at %d: %w", im.path, off, err)
	}
	return len(p), nil
}

// writeChunk is the most WriteAt copies on write in one metadata round.
const writeChunk = 8 << 20

// cow is one cluster being copied on write.
type cow struct {
	vc   int64
	buf  []byte
	host int64
}

func (im *Image) writeQcow(p []byte, off int64) error {
	if err := im.prepareWrite(); err != nil {
		return err
	}
	var (
		cows []cow
		free []int64 // host clusters to release at the end
	)
	for len(p) > 0 {
		vc := off >> im.h.clusterBits
		in := off & (im.cs - 1)
		n := min(im.cs-in, int64(len(p)))
		e, err := im.l2Entry(vc)
		if err != nil {
			return err
		}
		kind, host, err := im.classify(e)
		if err != nil {
			return err
		}
		if kind == kindData {
			if host >= im.alloc.end {
				return fmt.Errorf("%w: data cluster at %#x lies past the end of the file", ErrCorrupt, host)
			}
			if err := im.write(p[:n], host+in); err != nil {
				return err
			}
		} else {
			buf := make([]byte, im.cs)
			if n < im.cs {
				// Current contents of the whole cluster (the last cluster
				// may extend past the virtual size; that part stays zero).
				m := min(im.cs, im.size-vc*im.cs)
				if err := im.readLocked(buf[:m], vc*im.cs); err != nil {
					return err
				}
			}
			copy(buf[in:], p[:n])
			cows = append(cows, cow{vc: vc, buf: buf})
			switch kind {
			case kindZero:
				if host != 0 {
					if host&(im.cs-1) != 0 || host >= im.alloc.end {
						return fmt.Errorf("%w: zero cluster with bad offset %#x", ErrCorrupt, host)
					}
					free = append(free, host/im.cs)
				}
			case kindCompressed:
				h, size := im.compressedSpan(e)
				if h >= im.alloc.end {
					return fmt.Errorf("%w: compressed cluster at %#x lies past the end of the file", ErrCorrupt, h)
				}
				// The data runs from the sector holding h to h+size.
				for c := (h &^ 511) / im.cs; c <= (h+size-1)/im.cs; c++ {
					free = append(free, c)
				}
			}
		}
		p, off = p[n:], off+n
	}
	if len(cows) == 0 {
		return nil
	}

	// Phase 1: allocate, write data and new L2 tables, commit refcounts.
	newL2 := map[int64]uint64{}   // L1 index -> new L2 table offset
	dirtyL2 := map[uint64][]int{} // existing L2 table -> changed indices
	for i := range cows {
		c := &cows[i]
		l1i := c.vc / im.h.l2Entries()
		l2off := im.l1[l1i] & offsetMask
		if l2off == 0 {
			o, err := im.allocCluster()
			if err != nil {
				return err
			}
			l2off = uint64(o)
			newL2[l1i] = l2off
			im.l2[l2off] = make([]uint64, im.h.l2Entries())
			im.l1[l1i] = l2off | flagCopied
		}
		t, err := im.l2Table(l2off)
		if err != nil {
			return err
		}
		host, err := im.allocCluster()
		if err != nil {
			return err
		}
		c.host = host
		idx := int(c.vc % im.h.l2Entries())
		t[idx] = uint64(host) | flagCopied
		if _, isNew := newL2[l1i]; !isNew {
			dirtyL2[l2off] = append(dirtyL2[l2off], idx)
		}
	}
	for i := 0; i < len(cows); {
		// Coalesce runs of contiguous host clusters into one write.
		j := i + 1
		for j < len(cows) && cows[j].host == cows[j-1].host+im.cs {
			j++
		}
		run := make([]byte, 0, int64(j-i)*im.cs)
		if j-i == 1 {
			run = cows[i].buf
		} else {
			for k := i; k < j; k++ {
				run = append(run, cows[k].buf...)
			}
		}
		if err := im.write(run, cows[i].host); err != nil {
			return fmt.Errorf("write data: %w", err)
		}
		i = j
	}
	for _, l2off := range newL2 {
		if err := im.writeL2(l2off, 0, int(im.h.l2Entries())-1); err != nil {
			return err
		}
	}
	if err := im.commitRefs(); err != nil {
		return err
	}
	// Phase 2: barrier, then link the new clusters in.
	if err := im.sync(); err != nil {
		return err
	}
	for l2off, idxs := range dirtyL2 {
		if err := im.writeL2(l2off, slices.Min(idxs), slices.Max(idxs)); err != nil {
			return err
		}
	}
	if len(newL2) > 0 {
		l1is := sortedKeys(newL2)
		lo, hi := l1is[0], l1is[len(l1is)-1]
		raw := make([]byte, (hi-lo+1)*8)
		for i := lo; i <= hi; i++ {
			binary.BigEndian.PutUint64(raw[(i-lo)*8:], im.l1[i])
		}
		if err := im.write(raw, int64(im.h.l1Offset)+lo*8); err != nil {
			return fmt.Errorf("write L1 table: %w", err)
		}
	}
	// Phase 3: release replaced clusters once nothing points at them.
	if len(free) > 0 {
		if err := im.sync(); err != nil {
			return err
		}
		for _, c := range free {
			if err := im.addRef(c, -1); err != nil {
				return err
			}
		}
		if err := im.commitRefs(); err != nil {
			return err
		}
	}
	return nil
}

// writeL2 writes entries lo..hi of the cached L2 table at l2off.
func (im *Image) writeL2(l2off uint64, lo, hi int) error {
	t := im.l2[l2off]
	raw := make([]byte, (hi-lo+1)*8)
	for i := lo; i <= hi; i++ {
		binary.BigEndian.PutUint64(raw[(i-lo)*8:], t[i])
	}
	if err := im.write(raw, int64(l2off)+int64(lo)*8); err != nil {
		return fmt.Errorf("write L2 table at %#x: %w", l2off, err)
	}
	return nil
}
