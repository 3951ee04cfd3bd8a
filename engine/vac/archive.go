package vac

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"gridlord/engine/venti"
)

// Archive is an archive opened for reading. It is safe for concurrent use.
type Archive struct {
	st    venti.Reader
	score venti.Score
	root  Root
	top   *File
}

// Open reads the root of the archive whose VtRoot block has the given
// score: the root block, the block of top entries (descending the extra
// level fossil-made archives have) and the root directory's metadata.
func Open(ctx context.Context, st venti.Reader, score venti.Score) (*Archive, error) {
	name := "vac:" + score.String()
	b, err := st.Read(ctx, score, venti.RootType, RootSize)
	if err != nil {
		return nil, fmt.Errorf("open %s: read root block: %w", name, err)
	}
	root, err := UnpackRoot(b)
	if err != nil {
		return nil, fmt.Errorf("open %s: root block: %w", name, err)
	}
	if root.Type != "vac" {
		return nil, fmt.Errorf("open %s: %w", name, formatErr("root type %q, want \"vac\"", root.Type))
	}
	a := &Archive{st: st, score: score, root: root}
	top := Entry{
		PSize:  min(root.BlockSize/EntrySize*EntrySize, 60000),
		DSize:  root.BlockSize,
		Active: true,
		Dir:    true,
		Size:   3 * EntrySize,
		Score:  root.Score,
	}
	es, err := a.topEntries(ctx, top, name)
	if err != nil {
		return nil, err
	}
	if !es[2].Active {
		// Fossil: one more level, whose entry 0 holds the three entries.
		if !es[0].Active || !es[0].Dir {
			return nil, fmt.Errorf("open %s: %w", name, formatErr("top entries are neither vac's nor fossil's"))
		}
		sub := es[0]
		sub.Size = max(sub.Size, 3*EntrySize)
		if es, err = a.topEntries(ctx, sub, name); err != nil {
			return nil, err
		}
	}
	if !es[0].Active || !es[0].Dir || !es[1].Active || es[1].Dir || !es[2].Active || es[2].Dir {
		return nil, fmt.Errorf("open %s: %w", name, formatErr("top entries have wrong flags"))
	}
	super := &File{a: a, path: name + " (root metadata)"}
	blocks, err := super.metaBlocks(ctx, es[2], 1)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if len(blocks) == 0 || len(blocks[0].Entries) == 0 {
		return nil, fmt.Errorf("open %s: %w", name, formatErr("root metadata block is empty"))
	}
	d := blocks[0].Entries[0]
	if !d.IsDir() {
		return nil, fmt.Errorf("open %s: %w", name, formatErr("root %q is not a directory", d.Elem))
	}
	a.top = &File{a: a, dir: d, data: es[0], meta: es[1]}
	return a, nil
}

// topEntries reads the first three entries of a directory stream.
func (a *Archive) topEntries(ctx context.Context, e Entry, name string) ([3]Entry, error) {
	var es [3]Entry
	sr, err := newStreamReader(a.st, e, name)
	if err != nil {
		return es, fmt.Errorf("open %s: %w", name, err)
	}
	b, err := sr.block(ctx, 0)
	if err != nil {
		return es, fmt.Errorf("open %s: top entries: %w", name, err)
	}
	b = venti.ZeroExtend(venti.DirType, b, 3*EntrySize)
	for i := range es {
		if es[i], err = UnpackEntry(b[i*EntrySize:]); err != nil {
			return es, fmt.Errorf("open %s: top entry %d (block %v): %w", name, i, e.Score, err)
		}
	}
	return es, nil
}

// Score returns the score of the archive's root block.
func (a *Archive) Score() venti.Score { return a.score }

// RootBlock returns the decoded root block.
func (a *Archive) RootBlock() Root { return a.root }

// Root returns the archive's root directory.
func (a *Archive) Root() *File { return a.top }

// Lookup returns the file at the slash-separated path below the root
// ("" or "/" is the root itself).
func (a *Archive) Lookup(ctx context.Context, p string) (*File, error) {
	f := a.top
	for _, el := range strings.Split(strings.Trim(p, "/"), "/") {
		if el == "" {
			continue
		}
		kids, err := f.ReadDir(ctx)
		if err != nil {
			return nil, err
		}
		var next *File
		for _, k := range kids {
			if k.dir.Elem == el {
				next = k
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("lookup %s in vac:%v: %w", p, a.score, fs.ErrNotExist)
		}
		f = next
	}
	return f, nil
}

// OpenFile returns a reader of the regular file at the slash-separated
// path, for random access (a seed image read in place) or streaming.
func (a *Archive) OpenFile(ctx context.Context, p string) (*FileReader, error) {
	f, err := a.Lookup(ctx, p)
	if err != nil {
		return nil, err
	}
	return f.Open(ctx)
}

// Walk calls fn for every file and directory below the root, parents
// before children, in metadata order. If fn returns fs.SkipDir for a
// directory, its contents are skipped; any other error stops the walk.
func (a *Archive) Walk(ctx context.Context, fn func(f *File) error) error {
	return a.walk(ctx, a.top, fn, 0)
}

// maxDepth bounds directory nesting, so that a store that lies about
// scores cannot make a walk recurse forever.
const maxDepth = 4096

func (a *Archive) walk(ctx context.Context, d *File, fn func(*File) error, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("walk %s: %w", d.label(), formatErr("directories nested more than %d deep", maxDepth))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	kids, err := d.ReadDir(ctx)
	if err != nil {
		return err
	}
	for _, k := range kids {
		err := fn(k)
		if errors.Is(err, fs.SkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if k.IsDir() {
			if err := a.walk(ctx, k, fn, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// File is one file or directory in an archive.
type File struct {
	a    *Archive
	path string   // slash-separated path below the root; "" for the root
	dir  DirEntry // its metadata
	data Entry    // file data, or a directory's child entries
	meta Entry    // a directory's meta stream
}

// Path returns the slash-separated path below the archive root.
func (f *File) Path() string { return f.path }

// Name returns the last path element ("/" for the root).
func (f *File) Name() string { return f.dir.Elem }

// DirEntry returns the file's metadata record.
func (f *File) DirEntry() DirEntry { return f.dir }

// Entry returns the entry of the file's data (for a directory, of its
// child entries).
func (f *File) Entry() Entry { return f.data }

// IsDir reports whether f is a directory.
func (f *File) IsDir() bool { return f.dir.IsDir() }

// Size returns the file's length; directories have size 0.
func (f *File) Size() int64 {
	if f.IsDir() {
		return 0
	}
	return int64(f.data.Size)
}

// ModTime returns the modification time.
func (f *File) ModTime() time.Time { return time.Unix(int64(f.dir.MTime), 0) }

// Open returns a reader of the file's data. The context bounds every read
// made through it.
func (f *File) Open(ctx context.Context) (*FileReader, error) {
	if f.IsDir() {
		return nil, fmt.Errorf("open %s: is a directory", f.label())
	}
	sr, err := newStreamReader(f.a.st, f.data, f.label())
	if err != nil {
		return nil, err
	}
	return &FileReader{sr: sr, ctx: ctx}, nil
}

func (f *File) label() string {
	if f.path == "" {
		return "/"
	}
	return f.path
}

// maxMetaBlocks bounds a directory's meta stream (millions of entries), so
// that a corrupt size cannot make a directory read run for hours.
const maxMetaBlocks = 1 << 16

// metaBlocks decodes up to limit (0: all) blocks of a meta stream.
func (f *File) metaBlocks(ctx context.Context, me Entry, limit uint64) ([]MetaBlock, error) {
	sr, err := newStreamReader(f.a.st, me, f.label())
	if err != nil {
		return nil, err
	}
	if me.Dir {
		return nil, fmt.Errorf("%s: %w", f.label(), formatErr("meta stream is a directory stream"))
	}
	n := sr.nb
	if n > maxMetaBlocks {
		return nil, fmt.Errorf("%s: %w", f.label(), formatErr("directory metadata of %d blocks is larger than the %d allowed", n, maxMetaBlocks))
	}
	if limit > 0 {
		n = min(n, limit)
	}
	var out []MetaBlock
	for bn := uint64(0); bn < n; bn++ {
		b, s, err := sr.blockScore(ctx, bn)
		if err != nil {
			return nil, err
		}
		mb, err := UnpackMetaBlock(venti.ZeroExtend(venti.DataType, b, me.DSize))
		if err != nil {
			return nil, fmt.Errorf("%s: meta block %d (%v): %w", f.label(), bn, s, err)
		}
		out = append(out, mb)
	}
	return out, nil
}

// ReadDir returns the directory's children in metadata order, each with
// its entries checked: active, matching generation, and a directory flag
// that agrees with the metadata.
func (f *File) ReadDir(ctx context.Context) ([]*File, error) {
	if !f.IsDir() {
		return nil, fmt.Errorf("read directory %s: not a directory", f.label())
	}
	blocks, err := f.metaBlocks(ctx, f.meta, 0)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", f.label(), err)
	}
	src, err := newStreamReader(f.a.st, f.data, f.label())
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", f.label(), err)
	}
	if !f.data.Dir {
		return nil, fmt.Errorf("read directory %s: %w", f.label(), formatErr("entry stream is not a directory stream"))
	}
	nent := f.data.entries()
	epb := uint64(f.data.DSize / EntrySize)
	cache := map[uint64][]byte{}
	scores := map[uint64]venti.Score{}
	entry := func(i uint64) (Entry, error) {
		if i >= nent {
			return Entry{}, formatErr("entry index %d past the %d entries", i, nent)
		}
		bn := i / epb
		b, ok := cache[bn]
		if !ok {
			raw, s, err := src.blockScore(ctx, bn)
			if err != nil {
				return Entry{}, err
			}
			b = venti.ZeroExtend(venti.DirType, raw, f.data.DSize)
			cache[bn] = b
			scores[bn] = s
		}
		off := (i % epb) * EntrySize
		e, err := UnpackEntry(b[off : off+EntrySize])
		if err != nil {
			return e, fmt.Errorf("dir block %v: %w", scores[bn], err)
		}
		return e, nil
	}
	seen := map[string]bool{}
	var kids []*File
	for _, mb := range blocks {
		for _, d := range mb.Entries {
			p := d.Elem
			if f.path != "" {
				p = f.path + "/" + d.Elem
			}
			if err := checkName(d.Elem); err != nil {
				return nil, fmt.Errorf("read directory %s: %w", f.label(), err)
			}
			if seen[d.Elem] {
				return nil, fmt.Errorf("read directory %s: %w", f.label(), formatErr("name %q appears twice", d.Elem))
			}
			seen[d.Elem] = true
			k := &File{a: f.a, path: p, dir: d}
			if k.data, err = entry(uint64(d.Entry)); err != nil {
				return nil, fmt.Errorf("%s: entry %d: %w", p, d.Entry, err)
			}
			if !k.data.Active || k.data.Gen != d.Gen {
				return nil, fmt.Errorf("%s: %w", p, formatErr("entry %d is not active or has generation %d, want %d", d.Entry, k.data.Gen, d.Gen))
			}
			if k.data.Dir != d.IsDir() {
				return nil, fmt.Errorf("%s: %w", p, formatErr("entry %d directory flag disagrees with mode %#o", d.Entry, d.Mode))
			}
			if d.IsDir() {
				if k.meta, err = entry(uint64(d.MEntry)); err != nil {
					return nil, fmt.Errorf("%s: meta entry %d: %w", p, d.MEntry, err)
				}
				if !k.meta.Active || k.meta.Dir || k.meta.Gen != d.MGen {
					return nil, fmt.Errorf("%s: %w", p, formatErr("meta entry %d is not an active data stream of generation %d", d.MEntry, d.MGen))
				}
			}
			kids = append(kids, k)
		}
	}
	return kids, nil
}

// checkName rejects names that would escape or confuse a restore.
func checkName(s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return formatErr("bad file name %q", s)
	}
	return nil
}
