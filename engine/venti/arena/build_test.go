package arena

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"

	"gridlord/engine/venti"
	"gridlord/engine/venti/whack"
)

// The builder below writes arena partitions the way venti/srv lays them
// out (fmtarenas, writeaclump, wbarena, sumarena), for tests that need
// arenas the real fixture lacks: version 4, sealed with a score, clumps
// past the trailer's count, the memstats extension, many megabytes.

type specBlock struct {
	t    venti.Type
	data []byte
}

type specArena struct {
	name    string
	version int         // 4 or 5
	blocks  []specBlock // clumps recorded in directory and trailer
	tail    []specBlock // clumps in the log only (written after the trailer)
	lagging int         // diskstats lag memstats by this many clumps (extension)
	sealed  bool        // mark sealed and write the arena score
}

// buildPartition returns a partition with block size bs and arenas of
// arenaSize bytes each.
func buildPartition(bs int, arenaSize int64, arenas []specArena) []byte {
	be := binary.BigEndian
	tb := tabBase(uint32(bs))
	base := tb + int64(bs)
	size := base + int64(len(arenas))*arenaSize
	b := make([]byte, size)
	h := b[PartBlank:]
	be.PutUint32(h, partMagic)
	be.PutUint32(h[4:], partVersion)
	be.PutUint32(h[8:], uint32(bs))
	be.PutUint32(h[12:], uint32(base))
	m := fmt.Sprintf("%d\n", len(arenas))
	for i, a := range arenas {
		m += fmt.Sprintf("%s\t%d\t%d\n", a.name, base+int64(i)*arenaSize, base+int64(i+1)*arenaSize)
	}
	copy(b[tb:], m)
	var enc whack.Encoder
	for i, sa := range arenas {
		start := base + int64(i)*arenaSize
		ab := b[start : start+arenaSize]
		magic := uint32(clumpMagicV4)
		if sa.version == 5 {
			magic = 0x5eed0000 + uint32(i)
		}
		// Head.
		be.PutUint32(ab, headMagic)
		be.PutUint32(ab[4:], uint32(sa.version))
		copy(ab[8:], sa.name)
		be.PutUint32(ab[72:], uint32(bs))
		be.PutUint64(ab[76:], uint64(arenaSize))
		if sa.version == 5 {
			be.PutUint32(ab[84:], magic)
		}
		log := ab[bs : arenaSize-int64(bs)]
		per := bs / ClumpInfoSize
		var st TailStats
		put := func(blk specBlock, dir bool) {
			hdr := log[st.Used:]
			stored := blk.data
			encoding := byte(EncodingNone)
			buf := make([]byte, len(blk.data))
			if n := enc.Encode(buf, blk.data); n > 0 {
				stored, encoding = buf[:n], EncodingWhack
			}
			s := venti.Sum(blk.data)
			be.PutUint32(hdr, magic)
			info := hdr[4:]
			info[0] = byte(blk.t)
			be.PutUint16(info[1:], uint16(len(stored)))
			be.PutUint16(info[3:], uint16(len(blk.data)))
			copy(info[5:], s[:])
			hdr[4+ClumpInfoSize] = encoding
			be.PutUint32(hdr[4+ClumpInfoSize+5:], 1700000000)
			copy(hdr[ClumpSize:], stored)
			if dir {
				k := int(st.Clumps) / per
				blkOff := int64(len(log)) - int64(k+1)*int64(bs)
				copy(log[blkOff+int64(int(st.Clumps)%per*ClumpInfoSize):], info[:ClumpInfoSize])
				st.Clumps++
				if encoding == EncodingWhack {
					st.CClumps++
				}
				st.UncSize += uint64(len(blk.data))
			}
			st.Used += uint64(ClumpSize + len(stored))
		}
		for _, blk := range sa.blocks {
			put(blk, true)
		}
		mem := st
		for _, blk := range sa.tail {
			put(blk, false)
		}
		mem.Sealed = sa.sealed
		disk := mem
		if sa.lagging > 0 {
			disk = TailStats{}
			for _, blk := range sa.blocks[:len(sa.blocks)-sa.lagging] {
				disk.Clumps++
				disk.UncSize += uint64(len(blk.data))
			}
			disk.Used, disk.CClumps = 0, 0 // only need to differ
		}
		// Trailer.
		t := ab[arenaSize-int64(bs):]
		be.PutUint32(t, tailMagic)
		be.PutUint32(t[4:], uint32(sa.version))
		copy(t[8:], sa.name)
		p := t[72:]
		be.PutUint32(p, disk.Clumps)
		be.PutUint32(p[4:], disk.CClumps)
		be.PutUint32(p[8:], 1700000000)
		be.PutUint32(p[12:], 1700000100)
		p = p[16:]
		if sa.version == 5 {
			be.PutUint32(p, magic)
			p = p[4:]
		}
		be.PutUint64(p, disk.Used)
		be.PutUint64(p[8:], disk.UncSize)
		if disk.Sealed {
			p[16] = 1
		}
		p = p[17:]
		if mem != disk {
			p[0] = 1
			be.PutUint32(p[1:], mem.Clumps)
			be.PutUint32(p[5:], mem.CClumps)
			be.PutUint64(p[9:], mem.Used)
			be.PutUint64(p[17:], mem.UncSize)
			if mem.Sealed {
				p[25] = 1
			}
		}
		if sa.sealed {
			sum := sha1.Sum(ab) // the score field is still zero
			copy(t[len(t)-venti.ScoreSize:], sum[:])
		}
	}
	return b
}

// syntheticBlocks returns n blocks of mixed types and compressibility.
func syntheticBlocks(seed, n int) []specBlock {
	out := make([]specBlock, n)
	for i := range out {
		var data []byte
		switch i % 4 {
		case 0: // text: compresses
			data = fmt.Appendf(nil, "block %d of seed %d: %s", i, seed, string(make([]byte, 0)))
			for len(data) < 6000 {
				data = fmt.Appendf(data, "line %d of block %d/%d\n", len(data), i, seed)
			}
		case 1: // pseudo-random: stays plain
			data = make([]byte, 8192)
			x := uint32(seed*7919 + i*104729 + 1)
			for j := range data {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				data[j] = byte(x)
			}
		case 2: // small pointer-like block
			data = fmt.Appendf(nil, "pointer %d/%d", i, seed)
		case 3: // mostly zero
			data = make([]byte, 8192)
			copy(data[100:], fmt.Sprintf("sparse %d/%d", i, seed))
		}
		t := venti.DataType
		switch i % 7 {
		case 3:
			t = venti.DirType
		case 5:
			t = venti.PointerType0 + venti.Type(i%3)
		}
		out[i] = specBlock{t, data}
	}
	return out
}
