// Package seedstore keeps a Plan 9 disk image that has its own venti (an
// "arenas" partition, as the installs of a cpu+fossil+venti server have)
// in a venti without storing its blocks twice.
//
// Such a disk holds most of its data three times: as files in the fossil
// partition, as the same fossil blocks archived in the arenas (whack
// compressed), and, once imported, as those blocks in the grid's venti.
// Import stores the arenas' clumps in the venti (keeping their whack bytes
// as they are, see store.Store.WriteWhacked), then archives the virtual
// disk as a raw file in which every clump payload the venti can give back
// exactly is blanked. The fossil partition's 8 KiB blocks are aligned with
// the archive's, so its data blocks are the clumps' blocks again and cost
// nothing. Restore reverses it: it unpacks the raw file, writes the clump
// payloads back from the venti, checks the disk's SHA-256 against the one
// Import measured and writes the disk as a standalone qcow2 file.
package seedstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gridlord/engine/qcow2"
	"gridlord/engine/vac"
	"gridlord/engine/venti"
	"gridlord/engine/venti/arena"
	"gridlord/engine/venti/whack"
)

// Store is the venti a seed goes into: the embedded store (store.Store)
// is one.
type Store interface {
	venti.Store
	arena.WhackSink
	// Whacked returns the stored whack encoding of a block kept as a whack
	// record; ok is false when the block is stored otherwise.
	Whacked(ctx context.Context, s venti.Score, t venti.Type) (whacked []byte, ok bool, err error)
}

// ErrNoArenas is returned by Import for an image without a Plan 9 venti
// arena partition (or with one that holds no arenas): such an image is
// archived as the file it is instead.
var ErrNoArenas = errors.New("the image holds no venti arenas")

// ImportOptions configures Import.
type ImportOptions struct {
	// Name is the disk's file name in the archive, without extension;
	// default: the image file's base name without its extension.
	Name string
	// TempDir holds the raw disk while it is archived (it needs room for
	// the disk's data, not its virtual size: the file is sparse); default:
	// the system's temporary directory.
	TempDir string
	// Arena configures the import of the image's arenas (checkpoints,
	// progress, corrupt clumps).
	Arena arena.ImportOptions
	// Log receives progress lines; nil discards.
	Log *slog.Logger
	// AnyDisk archives a disk without venti arenas too (as a raw file,
	// nothing left out) instead of returning ErrNoArenas: the node disks
	// that snapshots save.
	AnyDisk bool
}

// Result is what Import stored.
type Result struct {
	// Vac is the root score of the archive of the raw disk.
	Vac venti.Score
	// DiskSHA256 is the hex SHA-256 of the whole virtual disk; Restore
	// checks it.
	DiskSHA256 string
	// DiskSize is the virtual disk's size in bytes.
	DiskSize int64
	// Arena is the import of the image's own arenas.
	Arena *arena.Result
	// Clumps counts the clumps of the image's arenas; Blanked those whose
	// payload the archive leaves out (BlankedBytes bytes) because the
	// venti gives them back exactly.
	Clumps, Blanked, BlankedBytes int64
}

// span is a byte range of the disk.
type span struct{ off, n int64 }

// Import stores the disk image at path (raw or qcow2, with its backing
// chain) in st: the clumps of its venti arenas, then the disk as a raw file
// with the payloads of those clumps left out. It returns ErrNoArenas, and
// stores nothing, for an image without arenas.
func Import(ctx context.Context, st Store, path string, opts ImportOptions) (*Result, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	img, err := qcow2.OpenReadOnly(path)
	if err != nil {
		return nil, fmt.Errorf("seed image %s: %w", path, err)
	}
	defer img.Close()
	res := &Result{Arena: &arena.Result{}, DiskSize: img.Size()}
	var blanks []span
	src, p, err := openArenas(img, img.Size())
	switch {
	case err == nil:
		ao := opts.Arena
		if ao.Log == nil {
			ao.Log = log
		}
		if res.Arena, err = arena.Import(ctx, p, st, ao); err != nil {
			return nil, fmt.Errorf("import the venti arenas of %s: %w", path, err)
		}
		if blanks, err = blankable(ctx, st, src.Offset, p, res); err != nil {
			return nil, fmt.Errorf("seed image %s: %w", path, err)
		}
	case !opts.AnyDisk:
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	tmp, err := os.MkdirTemp(opts.TempDir, ".seed-import-")
	if err != nil {
		return nil, fmt.Errorf("seed image %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	raw := filepath.Join(tmp, name+".raw")
	if res.DiskSHA256, err = writeResidual(ctx, img, raw, blanks); err != nil {
		return nil, fmt.Errorf("seed image %s: %w", path, err)
	}
	if res.Vac, err = vac.Create(ctx, st, []string{raw}, vac.Options{Logger: log}); err != nil {
		return nil, fmt.Errorf("seed image %s: archive the disk: %w", path, err)
	}
	log.Info("seed disk stored", "image", path, "vac", vac.FormatScore(res.Vac), "clumps", res.Clumps,
		"blanked", res.Blanked, "blanked_bytes", res.BlankedBytes)
	return res, nil
}

// openArenas finds the venti arenas of the disk r of size bytes, or
// returns an error wrapping ErrNoArenas.
func openArenas(r io.ReaderAt, size int64) (*arena.Source, *arena.Partition, error) {
	src, err := arena.FindPartition(r, size)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrNoArenas, err)
	}
	p, err := arena.Open(src, src.Size)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrNoArenas, err)
	}
	if len(p.Arenas) == 0 {
		return nil, nil, fmt.Errorf("%w: its arena partition has no arenas", ErrNoArenas)
	}
	return src, p, nil
}

// blankable returns the disk ranges of the clump payloads that st gives
// back exactly (see restoreClump), in disk order. base is the arena
// partition's offset in the disk.
func blankable(ctx context.Context, st Store, base int64, p *arena.Partition, res *Result) ([]span, error) {
	var out []span
	var enc []byte
	for _, a := range p.Arenas {
		err := a.Walk(ctx, arena.Position{}, true, func(e *arena.Entry) error {
			if e.Err != nil || e.Header.Size == 0 {
				return nil
			}
			res.Clumps++
			got, err := clumpFromStore(ctx, st, &e.Header, &enc)
			if errors.Is(err, venti.ErrNotFound) || errors.Is(err, venti.ErrCorrupt) {
				return nil // not imported (a corrupt clump): the archive keeps it
			}
			if err != nil {
				return err
			}
			if !bytes.Equal(got, e.Stored) {
				return nil
			}
			out = append(out, span{base + a.PartitionOffset(e.Offset) + arena.ClumpSize, int64(e.Header.Size)})
			res.Blanked++
			res.BlankedBytes += int64(e.Header.Size)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("arena %s: %w", a.Name, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].off < out[j].off })
	return out, nil
}

// clumpFromStore returns the stored bytes of clump c as st can rebuild
// them: for a whack clump its whack record's bytes, or the whack encoding
// of the block (whack.Encoder is venti's own, byte for byte); for a raw
// clump the block itself. enc is scratch space.
func clumpFromStore(ctx context.Context, st Store, c *arena.Clump, enc *[]byte) ([]byte, error) {
	if c.Encoding == arena.EncodingWhack {
		w, ok, err := st.Whacked(ctx, c.Score, c.Type)
		if err != nil || ok {
			return w, err
		}
	}
	data, err := st.Read(ctx, c.Score, c.Type, venti.MaxBlock)
	if err != nil {
		return nil, err
	}
	if c.Encoding != arena.EncodingWhack {
		return data, nil
	}
	if cap(*enc) < len(data) {
		*enc = make([]byte, venti.MaxBlock)
	}
	n := whack.Encode((*enc)[:len(data)], data)
	if n < 0 {
		return nil, nil // venti would have stored it raw: not this clump
	}
	return (*enc)[:n], nil
}

// chunk is the unit of disk reads and writes.
const chunk = 1 << 20

// writeResidual writes the virtual disk of img to the new sparse raw file
// path, with the ranges blanks zeroed, and returns the SHA-256 of the disk
// as it is (blanks included). Chunks that are all zeros are not written.
func writeResidual(ctx context.Context, img *qcow2.Image, path string, blanks []span) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size := img.Size()
	if err := f.Truncate(size); err != nil {
		return "", fmt.Errorf("raw disk %s: %w", path, err)
	}
	h := sha256.New()
	buf := make([]byte, chunk)
	zero := make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		b := buf[:min(chunk, size-off)]
		if _, err := img.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the disk at %d: %w", off, err)
		}
		h.Write(b)
		for len(blanks) > 0 && blanks[0].off < off+int64(len(b)) {
			s := blanks[0]
			lo, hi := max(s.off, off), min(s.off+s.n, off+int64(len(b)))
			clear(b[lo-off : hi-off])
			if s.off+s.n > off+int64(len(b)) {
				break // continues into the next chunk
			}
			blanks = blanks[1:]
		}
		if bytes.Equal(b, zero[:len(b)]) {
			continue
		}
		if _, err := f.WriteAt(b, off); err != nil {
			return "", fmt.Errorf("raw disk %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("raw disk %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Restore rebuilds the disk Import stored under the archive score into
// the new qcow2 file dst: it unpacks the raw disk next to dst, writes back
// the clump payloads from st, checks the disk's SHA-256 against
// wantSHA256 and writes the disk to dst as a standalone sparse qcow2. On
// failure dst does not exist.
func Restore(ctx context.Context, st Store, score venti.Score, dst, wantSHA256 string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a, err := vac.Open(ctx, st, score)
	if err != nil {
		return fmt.Errorf("restore seed disk: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".seed-restore-")
	if err != nil {
		return fmt.Errorf("restore seed disk: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := vac.Restore(ctx, a, tmp, vac.RestoreOptions{Logger: log}); err != nil {
		return fmt.Errorf("restore seed disk: %w", err)
	}
	ents, err := os.ReadDir(tmp)
	if err != nil || len(ents) != 1 || !ents[0].Type().IsRegular() {
		return fmt.Errorf("restore seed disk: vac:%v should hold one raw disk file (%v)", score, err)
	}
	raw := filepath.Join(tmp, ents[0].Name())
	if err := refill(ctx, st, raw, wantSHA256); err != nil {
		return fmt.Errorf("restore seed disk vac:%v: %w", score, err)
	}
	if err := qcow2.Flatten(ctx, raw, dst, nil); err != nil {
		return fmt.Errorf("restore seed disk vac:%v: %w", score, err)
	}
	return nil
}

// refill writes the blanked clump payloads of the raw disk at path back
// from st and checks the disk's SHA-256.
func refill(ctx context.Context, st Store, path, wantSHA256 string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var enc []byte
	src, p, err := openArenas(f, fi.Size())
	if err != nil {
		p = &arena.Partition{} // a disk without arenas: nothing was left out
	}
	for _, a := range p.Arenas {
		err := a.Walk(ctx, arena.Position{}, true, func(e *arena.Entry) error {
			if e.Err != nil || e.Header.Size == 0 || !allZero(e.Stored) {
				return nil
			}
			b, err := clumpFromStore(ctx, st, &e.Header, &enc)
			if err != nil {
				return fmt.Errorf("clump %d (block %v): %w", e.Clump, e.Header.Score, err)
			}
			if len(b) != int(e.Header.Size) {
				return fmt.Errorf("clump %d (block %v): the venti gives %d bytes for its %d", e.Clump, e.Header.Score, len(b), e.Header.Size)
			}
			_, err = f.WriteAt(b, src.Offset+a.PartitionOffset(e.Offset)+arena.ClumpSize)
			return err
		})
		if err != nil {
			return fmt.Errorf("arena %s: %w", a.Name, err)
		}
	}
	if wantSHA256 == "" {
		return f.Close()
	}
	got, err := sumFile(ctx, f)
	if err != nil {
		return err
	}
	if got != wantSHA256 {
		return fmt.Errorf("the rebuilt disk has SHA-256 %s, the imported one had %s: the venti lost or changed blocks (run gridlord venti check)", got, wantSHA256)
	}
	return f.Close()
}

// sumFile returns the hex SHA-256 of f's contents.
func sumFile(ctx context.Context, f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(ctxWriter{ctx, h}, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", fmt.Errorf("hash the disk: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxWriter is a hash that stops taking bytes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	h   hash.Hash
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.h.Write(p)
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 && b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] == 0 {
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
