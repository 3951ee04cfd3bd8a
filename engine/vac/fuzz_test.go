package vac

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/venti"
)

// Fuzz targets for every decoder of bytes read from a venti. Run each with
// a bounded time in CI, e.g. go test -run=^$ -fuzz=^FuzzArchive$ -fuzztime=10s.

func FuzzUnpackEntry(f *testing.F) {
	f.Add(Entry{PSize: 8180, DSize: 8192, Active: true, Depth: 2, Size: 1 << 40, Score: fill(7)}.Pack(nil))
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := UnpackEntry(b)
		if err != nil {
			return
		}
		back, err := UnpackEntry(e.Pack(nil))
		if e.Active && e.PSize <= 0xffff && e.DSize <= 0xffff && (err != nil || back != e) {
			t.Fatalf("repack of %+v gave %+v, %v", e, back, err)
		}
	})
}

func FuzzUnpackRoot(f *testing.F) {
	b, _ := Root{Type: "vac", BlockSize: 8192, Score: fill(1)}.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnpackRoot(b)
		if err != nil {
			return
		}
		if len(b) != RootSize || r.BlockSize < 256 {
			t.Fatalf("accepted %d-byte root with block size %d", len(b), r.BlockSize)
		}
	})
}

func FuzzUnpackDirEntry(f *testing.F) {
	d := DirEntry{Elem: "name", UID: "u", GID: "g", Mode: ModeDir | 0o755, QidSpace: true, QidMax: 9, Plan9: true, P9Path: 3}
	b, _ := d.Pack(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := UnpackDirEntry(b)
		if err != nil {
			return
		}
		p, err := d.Pack(nil)
		if err != nil {
			t.Fatalf("repack %+v: %v", d, err)
		}
		d2, err := UnpackDirEntry(p)
		if err != nil || d2.Elem != d.Elem || d2.Mode != d.Mode || d2.Qid != d.Qid || d2.QidSpace != d.QidSpace || d2.QidMax != d.QidMax {
			t.Fatalf("repacked %+v decodes to %+v, %v", d, d2, err)
		}
	})
}

func FuzzUnpackMetaBlock(f *testing.F) {
	var packed [][]byte
	for _, n := range []string{"a", "ab", "b"} {
		b, _ := (&DirEntry{Elem: n}).Pack(nil)
		packed = append(packed, b)
	}
	mb, _ := packMetaBlock(packed, []string{"a", "ab", "b"}, 1024)
	f.Add(mb)
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		UnpackMetaBlock(b)
	})
}

func FuzzParseScore(f *testing.F) {
	f.Add("vac:9028ae52fb22f07bd00896e51bcee2443be86892\n")
	f.Add("ffs:9028ae52fb22f07bd00896e51bcee2443be86892")
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScore(s)
		if err == nil && FormatScore(sc) != "vac:"+sc.String() {
			t.Fatal("format mismatch")
		}
	})
}

// fuzzStore serves a fuzzed set of blocks. A score it knows returns its
// block (if the type matches); any other score returns block s[0] mod n
// whatever its type, so the fuzzer can wire blocks together without
// computing SHA-1.
type fuzzStore struct {
	blocks  []p9pBlock
	byScore map[venti.Score]int
}

func (s *fuzzStore) Read(ctx context.Context, sc venti.Score, t venti.Type, max int) ([]byte, error) {
	if sc == venti.ZeroScore {
		return nil, nil
	}
	i, ok := s.byScore[sc]
	if ok && s.blocks[i].t != t {
		return nil, fmt.Errorf("read %v/%v: %w", sc, t, venti.ErrNotFound)
	}
	if !ok {
		if len(s.blocks) == 0 {
			return nil, venti.ErrNotFound
		}
		i = int(sc[0]) % len(s.blocks)
	}
	b := s.blocks[i].data
	if len(b) > max {
		return nil, fmt.Errorf("read %v: %d bytes > %d", sc, len(b), max)
	}
	return append([]byte(nil), b...), nil
}

// parseBlocks reads the blocks.bin framing: type[1] len[4] data.
func parseBlocks(raw []byte) *fuzzStore {
	st := &fuzzStore{byScore: map[venti.Score]int{}}
	for len(raw) >= 5 {
		n := int(binary.BigEndian.Uint32(raw[1:]))
		if n > len(raw)-5 || n > venti.MaxBlock {
			break
		}
		b := p9pBlock{t: venti.Type(raw[0]), data: raw[5 : 5+n]}
		b.s = venti.Sum(b.data)
		st.byScore[b.s] = len(st.blocks)
		st.blocks = append(st.blocks, b)
		raw = raw[5+n:]
	}
	return st
}

func FuzzArchive(f *testing.F) {
	// Seed: a small archive with 512-byte blocks (small inputs keep the
	// fuzzer fast), serialized root block first.
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("hello"), 0o644)
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "b"), make([]byte, 1500), 0o600)
	os.WriteFile(filepath.Join(dir, "d", "c"), []byte(strings.Repeat("x", 1100)), 0o600)
	os.Symlink("a", filepath.Join(dir, "l"))
	cs := &countingStore{Store: venti.NewMemStore()}
	if _, err := Create(context.Background(), cs, []string{dir + "/."}, Options{BlockSize: 512}); err != nil {
		f.Fatal(err)
	}
	var seed []byte
	for i := len(cs.blocks) - 1; i >= 0; i-- { // the root block was written last
		b := cs.blocks[i]
		seed = append(seed, byte(b.t), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(seed[len(seed)-4:], uint32(len(b.data)))
		seed = append(seed, b.data...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, raw []byte) {
		st := parseBlocks(raw)
		if len(st.blocks) == 0 {
			return
		}
		ctx := context.Background()
		a, err := Open(ctx, st, st.blocks[0].s)
		if err != nil {
			return
		}
		visited := 0
		errStop := errors.New("enough")
		a.Walk(ctx, func(f *File) error {
			if visited++; visited > 200 {
				return errStop
			}
			if f.IsDir() {
				return nil
			}
			r, err := f.Open(ctx)
			if err != nil {
				return nil
			}
			if r.Size() <= 1<<20 {
				r.WriteTo(io.Discard)
			} else {
				buf := make([]byte, 4096)
				r.ReadAt(buf, 0)
				r.ReadAt(buf, r.Size()-100)
			}
			return nil
		})
	})
}
