package qcow2

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
)

// checkResult is what checkImage found, like "qemu-img check".
type checkResult struct {
	errors []string // references to clusters whose refcount is too low, bad offsets
	leaks  int      // clusters with a refcount above their references
}

// checkImage recomputes the refcount of every cluster of the qcow2 file at
// path from its metadata and compares with the stored refcounts. It is an
// independent stand-in for "qemu-img check" in the plain test tier.
func checkImage(t testing.TB, path string) checkResult {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHeader(raw[:min(len(raw), 1<<maxClusterBits)], int64(len(raw)))
	if err != nil {
		t.Fatalf("check %s: %v", path, err)
	}
	var res checkResult
	cs := h.clusterSize()
	nclusters := (int64(len(raw)) + cs - 1) / cs
	refs := map[int64]int64{}
	ref := func(off, n int64, what string) {
		if off < 0 || off+n > nclusters*cs+cs {
			res.errors = append(res.errors, fmt.Sprintf("%s at %#x beyond end of file", what, off))
			return
		}
		for c := off / cs; c <= (off+n-1)/cs; c++ {
			refs[c]++
		}
	}
	be := binary.BigEndian
	ref(0, cs, "header")
	ref(int64(h.l1Offset), int64(h.l1Size)*8, "L1")
	ref(int64(h.refTableOffset), int64(h.refTableClusters)*cs, "refcount table")
	x := 62 - (h.clusterBits - 8)
	for i := uint32(0); i < h.l1Size; i++ {
		l2off := int64(be.Uint64(raw[h.l1Offset+uint64(i)*8:]) & offsetMask)
		if l2off == 0 {
			continue
		}
		ref(l2off, cs, "L2")
		for j := int64(0); j < cs/8; j++ {
			e := be.Uint64(raw[l2off+j*8:])
			switch {
			case e&flagCompress != 0:
				host := int64(e & (1<<x - 1))
				sectors := int64((e>>x)&(1<<(62-x)-1)) + 1
				ref(host&^511, sectors*512, "compressed cluster")
			case e&offsetMask != 0:
				if int64(e&offsetMask)%cs != 0 {
					res.errors = append(res.errors, fmt.Sprintf("unaligned data offset %#x", e&offsetMask))
					continue
				}
				ref(int64(e&offsetMask), cs, "data")
			}
		}
	}
	perBlock := cs * 8 >> h.refcountOrder
	stored := map[int64]uint64{}
	for i := int64(0); i < int64(h.refTableClusters)*cs/8; i++ {
		boff := int64(be.Uint64(raw[int64(h.refTableOffset)+i*8:]) & offsetMask)
		if boff == 0 {
			continue
		}
		ref(boff, cs, "refcount block")
		if boff+cs > int64(len(raw)) {
			res.errors = append(res.errors, fmt.Sprintf("refcount block %#x past EOF", boff))
			continue
		}
		blk := raw[boff : boff+cs]
		for k := int64(0); k < perBlock; k++ {
			if v := refGet(blk, h.refcountOrder, k); v != 0 {
				stored[i*perBlock+k] = v
			}
		}
	}
	for c, n := range refs {
		if s := stored[c]; s < uint64(n) {
			res.errors = append(res.errors, fmt.Sprintf("cluster %d: refcount %d, %d references", c, s, n))
		}
	}
	for c, s := range stored {
		if s > uint64(refs[c]) {
			res.leaks++
		}
	}
	return res
}

// mustCheckClean fails t unless the image has no errors and no leaks.
func mustCheckClean(t testing.TB, path string) {
	t.Helper()
	r := checkImage(t, path)
	if len(r.errors) > 0 || r.leaks > 0 {
		t.Fatalf("check %s: %d errors %v, %d leaks", path, len(r.errors), r.errors, r.leaks)
	}
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
