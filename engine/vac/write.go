package vac

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gridlord/engine/venti"
)

// Options configures Create. The zero value archives like plan9port vac.
type Options struct {
	// BlockSize is the data and directory block size; 0 means 8192.
	BlockSize int
	// Workers is the number of block writes in flight at once; 0 means 32.
	// Against a remote venti this hides the round trip per block.
	Workers int
	// Previous, if set, is an earlier archive in the same store (vac -d):
	// a regular file whose size and modification time equal those of the
	// file at the same path in Previous reuses its data without being read.
	Previous *Archive
	// Progress, if set, is called with the bytes of file data done so far
	// and the total, at least every MiB and once at the end. Calls are
	// never concurrent.
	Progress func(done, total int64)
	// Logger receives warnings about files that are skipped (sockets and
	// devices); nil discards them. A file or directory that cannot be read
	// fails the whole archive.
	Logger *slog.Logger
	// Now is the archive time recorded as each file's ctime, as vac does;
	// the zero value means time.Now().
	Now time.Time
}

// archiver is the state of one Archive call.
type archiver struct {
	st        venti.Store
	opts      Options
	dsize     int
	psize     int
	pool      *writePool
	qid       uint64
	ctime     uint32
	names     *idNames
	log       *slog.Logger
	zero      []byte
	chunk     []byte // read-ahead buffer for file data, unless sent from chunks of the pool (made on first use)
	chunkSize int    // bytes of a read-ahead chunk
	total     int64
	mu        sync.Mutex
	done      int64
	reported  int64
}

// child is one archived file or directory, ready to go into its parent.
type child struct {
	dir     DirEntry
	entries []Entry // 1 for files, 2 (children, meta) for directories
}

// Create stores the files and directories named by paths in st and returns
// the score of the new archive's root block. Each path becomes an entry in
// the archive's root directory under its base name; ".", "/" and ".."
// contribute their contents instead, as in vac. The store is synced before
// Create returns.
func Create(ctx context.Context, st venti.Store, paths []string, opts Options) (venti.Score, error) {
	a := &archiver{st: st, opts: opts, dsize: opts.BlockSize, log: opts.Logger, names: newIDNames()}
	if a.dsize == 0 {
		a.dsize = DefaultBlockSize
	}
	if a.dsize < 512 || a.dsize > venti.MaxBlock {
		return venti.Score{}, fmt.Errorf("archive: block size %d outside 512..%d", a.dsize, venti.MaxBlock)
	}
	a.psize = a.dsize / venti.ScoreSize * venti.ScoreSize
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	a.ctime = uint32(now.Unix())
	a.zero = make([]byte, a.dsize)
	a.chunkSize = max(1<<20/a.dsize, 1) * a.dsize
	workers := opts.Workers
	if workers <= 0 {
		workers = 32
	}

	// Top-level items: base names must be unique.
	type item struct{ path, name string }
	var items []item
	seen := map[string]string{}
	for _, p := range paths {
		if p == "" {
			return venti.Score{}, fmt.Errorf("archive: empty path")
		}
		clean := filepath.Clean(p)
		base := filepath.Base(clean)
		var names []string
		if base == "." || base == ".." || base == string(filepath.Separator) {
			ents, err := os.ReadDir(clean)
			if err != nil {
				return venti.Score{}, fmt.Errorf("archive: %w", err)
			}
			for _, e := range ents {
				names = append(names, e.Name())
			}
		} else {
			clean, names = filepath.Dir(clean), []string{base}
		}
		for _, n := range names {
			full := filepath.Join(clean, n)
			if other, dup := seen[n]; dup {
				return venti.Score{}, fmt.Errorf("archive: %s and %s would both be /%s in the archive", other, full, n)
			}
			seen[n] = full
			items = append(items, item{full, n})
		}
	}
	if opts.Progress != nil {
		for _, it := range items {
			a.total += treeSize(it.path)
		}
	}

	a.pool = newWritePool(ctx, st, a.dsize, workers, 4*workers)
	defer a.pool.close()

	var prevRoot *File
	if opts.Previous != nil {
		prevRoot = opts.Previous.Root()
	}
	var prevKids map[string]*File
	if prevRoot != nil {
		var err error
		if prevKids, err = kidsByName(ctx, prevRoot); err != nil {
			return venti.Score{}, fmt.Errorf("archive: previous archive: %w", err)
		}
	}
	var kids []child
	for _, it := range items {
		c, ok, err := a.archive(ctx, it.path, it.name, prevKids[it.name])
		if err != nil {
			return venti.Score{}, err
		}
		if ok {
			kids = append(kids, c)
		}
	}
	src, meta, err := a.writeDir(ctx, kids)
	if err != nil {
		return venti.Score{}, fmt.Errorf("archive: root directory: %w", err)
	}
	rootDir := DirEntry{
		Elem: "/", Entry: 0, MEntry: 1, Qid: 0, UID: "vac", GID: "vac",
		Mode: ModeDir | 0777, QidSpace: true, QidOffset: 0, QidMax: a.qid + 1,
	}
	superMeta, err := a.writeMeta(ctx, []DirEntry{rootDir})
	if err != nil {
		return venti.Score{}, fmt.Errorf("archive: root metadata: %w", err)
	}
	top := src.Pack(nil)
	top = meta.Pack(top)
	top = superMeta.Pack(top)
	dscore, err := writeBlock(ctx, st, venti.DirType, venti.ZeroTruncate(venti.DirType, top))
	if err != nil {
		return venti.Score{}, fmt.Errorf("archive: top entries: %w", err)
	}
	r := Root{Type: "vac", Score: dscore, BlockSize: a.dsize}
	if opts.Previous != nil {
		r.Prev = opts.Previous.Score()
	}
	rb, err := r.Pack()
	if err != nil {
		return venti.Score{}, fmt.Errorf("archive: %w", err)
	}
	score, err := writeBlock(ctx, st, venti.RootType, rb)
	if err != nil {
		return venti.Score{}, fmt.Errorf("archive: root block: %w", err)
	}
	if err := a.pool.waitSync(); err != nil {
		return venti.Score{}, fmt.Errorf("archive: sync: %w", err)
	}
	if err := st.Sync(ctx); err != nil {
		return venti.Score{}, fmt.Errorf("archive: sync: %w", err)
	}
	a.report(0, true)
	return score, nil
}

// report adds n bytes of progress and calls the callback when due.
func (a *archiver) report(n int64, final bool) {
	if a.opts.Progress == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done += n
	if a.done > a.total {
		a.total = a.done
	}
	if final || a.done-a.reported >= 1<<20 {
		a.reported = a.done
		a.opts.Progress(a.done, a.total)
	}
}

// treeSize sums the sizes of the regular files under p (for progress).
func treeSize(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func kidsByName(ctx context.Context, d *File) (map[string]*File, error) {
	kids, err := d.ReadDir(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*File, len(kids))
	for _, k := range kids {
		m[k.Name()] = k
	}
	return m, nil
}

// archive stores the file or directory at path under name; ok is false if
// it was skipped (with a warning).
func (a *archiver) archive(ctx context.Context, path, name string, prev *File) (child, bool, error) {
	if err := ctx.Err(); err != nil {
		return child{}, false, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return child{}, false, fmt.Errorf("archive: %w", err)
	}
	a.qid++
	d := a.dirEntry(name, fi)
	switch {
	case fi.IsDir():
		var prevKids map[string]*File
		if prev != nil && prev.IsDir() {
			if prevKids, err = kidsByName(ctx, prev); err != nil {
				a.log.Warn("previous archive unreadable; archiving in full", "path", path, "err", err)
				prevKids = nil
			}
		}
		ents, err := os.ReadDir(path)
		if err != nil {
			return child{}, false, fmt.Errorf("archive: %w", err)
		}
		var kids []child
		for _, e := range ents {
			c, ok, err := a.archive(ctx, filepath.Join(path, e.Name()), e.Name(), prevKids[e.Name()])
			if err != nil {
				return child{}, false, err
			}
			if ok {
				kids = append(kids, c)
			}
		}
		src, meta, err := a.writeDir(ctx, kids)
		if err != nil {
			return child{}, false, fmt.Errorf("archive %s: %w", path, err)
		}
		return child{dir: d, entries: []Entry{src, meta}}, true, nil
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return child{}, false, fmt.Errorf("archive: %w", err)
		}
		e, err := writeBytes(ctx, a.pool, venti.DataType, a.psize, []byte(target))
		if err != nil {
			return child{}, false, fmt.Errorf("archive %s: %w", path, err)
		}
		return child{dir: d, entries: []Entry{e}}, true, nil
	case fi.Mode()&fs.ModeNamedPipe != 0:
		return child{dir: d, entries: []Entry{a.emptyEntry()}}, true, nil
	case !fi.Mode().IsRegular():
		a.qid--
		a.log.Warn("skipping special file", "path", path, "mode", fi.Mode().String())
		return child{}, false, nil
	}
	if prev != nil && !prev.IsDir() && prev.dir.Mode&(ModeLink|ModeNamedPipe|ModeDevice) == 0 &&
		prev.Size() == fi.Size() && prev.dir.MTime == d.MTime {
		a.report(fi.Size(), false)
		return child{dir: d, entries: []Entry{prev.Entry()}}, true, nil
	}
	e, err := a.writeFile(ctx, path, fi.Size())
	if err != nil {
		return child{}, false, fmt.Errorf("archive %s: %w", path, err)
	}
	return child{dir: d, entries: []Entry{e}}, true, nil
}

func (a *archiver) emptyEntry() Entry {
	return Entry{PSize: a.psize, DSize: a.dsize, Active: true, Score: venti.ZeroScore}
}

// dirEntry builds the metadata of a file from its stat.
func (a *archiver) dirEntry(name string, fi fs.FileInfo) DirEntry {
	m := fi.Mode()
	mode := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= ModeSetUID
	}
	if m&fs.ModeSetgid != 0 {
		mode |= ModeSetGID
	}
	if m&fs.ModeSticky != 0 {
		mode |= ModeSticky
	}
	switch {
	case m.IsDir():
		mode |= ModeDir
	case m&fs.ModeSymlink != 0:
		mode |= ModeLink
	case m&fs.ModeNamedPipe != 0:
		mode |= ModeNamedPipe
	}
	mtime := uint32(fi.ModTime().Unix())
	d := DirEntry{Elem: name, Qid: a.qid, MTime: mtime, CTime: a.ctime, ATime: mtime, Mode: mode, UID: "none", GID: "none"}
	if uid, gid, atime, ok := statOwner(fi); ok {
		d.UID, d.GID = a.names.user(uid), a.names.group(gid)
		if atime != 0 {
			d.ATime = uint32(atime)
		}
	}
	return d
}

// writeFile stores the contents of the regular file at path, skipping
// holes where the system reports them.
func (a *archiver) writeFile(ctx context.Context, path string, size int64) (Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	w := newStreamWriter(ctx, a.pool, venti.DataType, a.psize, func(n int64) { a.report(n, false) })
	ds := int64(a.dsize)
	var off int64
	holes := newHoleFinder(f, size)
	var chunk []byte  // the read-ahead buffer[:bytes read]; holds the file from cOff
	var ch *readChunk // the read-ahead chunk, when blocks are sent from it
	cOff, cEOF := int64(-1), false
	for {
		if skip := holes.zeroBlocksAt(off, ds); skip > 0 {
			if err := w.addZeros(uint64(skip)); err != nil {
				w.abort()
				return Entry{}, err
			}
			off += skip * ds
			continue
		}
		// Read ahead in large chunks (fewer system calls), then copy
		// each block into a pool buffer.
		if off < cOff || off+ds > cOff+int64(len(chunk)) && !cEOF {
			var buf []byte
			if a.pool.ref != nil {
				// Blocks are sent from the chunk: read into one that
				// no unsent write references.
				ch = a.pool.nextChunk(a.chunkSize)
				buf = ch.b
			} else {
				if a.chunk == nil {
					a.chunk = make([]byte, a.chunkSize)
				}
				buf = a.chunk
			}
			n, rerr := f.ReadAt(buf, off)
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				w.abort()
				return Entry{}, fmt.Errorf("read at %d: %w", off, rerr)
			}
			chunk, cOff, cEOF = buf[:n], off, n < len(buf)
		}
		avail := chunk[min(off-cOff, int64(len(chunk))):]
		if len(avail) == 0 {
			break
		}
		var n int
		if a.pool.async != nil {
			// Queued straight from the chunk: the writer copies it,
			// or sends it from there (ch).
			n = min(len(avail), a.dsize)
			if err := w.addDataFrom(avail[:n], ch); err != nil {
				w.abort()
				return Entry{}, err
			}
		} else {
			buf, err := a.pool.getBuf(ctx)
			if err != nil {
				w.abort()
				return Entry{}, err
			}
			n = copy(buf, avail)
			if err := w.addBlock(buf, n); err != nil {
				w.abort()
				return Entry{}, err
			}
		}
		off += int64(n)
		if n < a.dsize {
			break
		}
	}
	e, err := w.close()
	if err != nil {
		return Entry{}, err
	}
	if e.Size > MaxStreamSize {
		return Entry{}, fmt.Errorf("file of %d bytes is larger than a vac entry can hold", e.Size)
	}
	return e, nil
}

// writeDir writes a directory's child-entry stream and meta stream.
func (a *archiver) writeDir(ctx context.Context, kids []child) (src, meta Entry, err error) {
	epb := a.dsize / EntrySize
	var blocks [][]byte
	var cur []byte
	var n uint64
	dirs := make([]DirEntry, 0, len(kids))
	for _, k := range kids {
		d := k.dir
		d.Entry = uint32(n)
		d.MEntry = d.Entry + 1
		for _, e := range k.entries {
			cur = e.Pack(cur)
			n++
			if n%uint64(epb) == 0 {
				blocks, cur = append(blocks, cur), nil
			}
		}
		dirs = append(dirs, d)
	}
	if len(cur) > 0 {
		blocks = append(blocks, cur)
	}
	if src, err = a.writeLeaves(ctx, venti.DirType, blocks); err != nil {
		return src, meta, err
	}
	src.Size = dirStreamSize(n, a.dsize)
	meta, err = a.writeMeta(ctx, dirs)
	return src, meta, err
}

// writeMeta packs dirs into meta blocks as vac does (each block filled to
// 80% or its index limit) and writes them as a data stream.
func (a *archiver) writeMeta(ctx context.Context, dirs []DirEntry) (Entry, error) {
	maxIndex := a.dsize / bytesPerEntry
	table := metaHeaderSize + maxIndex*metaIndexSize
	limit := a.dsize * fullPercentage / 100
	var blocks [][]byte
	var packed [][]byte
	var names []string
	used := table
	flush := func() error {
		if len(packed) == 0 {
			return nil
		}
		b, err := packMetaBlock(packed, names, a.dsize)
		if err != nil {
			return err
		}
		blocks = append(blocks, b)
		packed, names, used = nil, nil, table
		return nil
	}
	for i := range dirs {
		p, err := dirs[i].Pack(nil)
		if err != nil {
			return Entry{}, err
		}
		if table+len(p) > a.dsize {
			return Entry{}, fmt.Errorf("metadata of %q (%d bytes) does not fit in a %d-byte block", dirs[i].Elem, len(p), a.dsize)
		}
		if len(packed) > 0 && (len(packed) == maxIndex || used+len(p) > limit) {
			if err := flush(); err != nil {
				return Entry{}, err
			}
		}
		packed, names = append(packed, p), append(names, dirs[i].Elem)
		used += len(p)
	}
	if err := flush(); err != nil {
		return Entry{}, err
	}
	e, err := a.writeLeaves(ctx, venti.DataType, blocks)
	if err != nil {
		return Entry{}, err
	}
	e.Size = uint64(len(blocks)) * uint64(a.dsize)
	return e, nil
}

// writeLeaves writes one leaf per element of blocks (each at most dsize
// bytes) and the pointer blocks above them.
func (a *archiver) writeLeaves(ctx context.Context, t venti.Type, blocks [][]byte) (Entry, error) {
	w := newStreamWriter(ctx, a.pool, t, a.psize, nil)
	for _, b := range blocks {
		buf, err := a.pool.getBuf(ctx)
		if err != nil {
			w.abort()
			return Entry{}, err
		}
		n := copy(buf, b)
		if err := w.addBlock(buf, n); err != nil {
			w.abort()
			return Entry{}, err
		}
	}
	return w.close()
}
