package ninep

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"path"
	"sync"

	"9fans.net/go/plan9"
)

// FSOptions configures FromFS.
type FSOptions struct {
	// Owner is the uid and gid of files Meta leaves alone; default "sys".
	Owner string
	// Meta, if set, adjusts the Plan 9 metadata of each served file
	// (owners, modes, times) in place; name is "." for the root. Use it
	// to apply a replica log's owners to a tree that has none.
	Meta func(name string, d *plan9.Dir)
}

// FromFS serves an io/fs.FS read-only. Qid paths are a hash of each file's
// path (stable across restarts); versions are the modification time.
// Symbolic links, which Plan 9 has not, are left out of listings and walks.
func FromFS(fsys fs.FS, opts FSOptions) FS {
	if opts.Owner == "" {
		opts.Owner = "sys"
	}
	return &ioFS{fsys: fsys, opts: opts}
}

type ioFS struct {
	fsys fs.FS
	opts FSOptions
}

// qidPath is the FNV-1a hash of a path.
func qidPath(name string) uint64 {
	h := fnv.New64a()
	io.WriteString(h, name)
	return h.Sum64()
}

// dir makes the Plan 9 directory entry of name from its FileInfo.
func (f *ioFS) dir(name string, fi fs.FileInfo) plan9.Dir {
	mt := uint32(fi.ModTime().Unix())
	d := plan9.Dir{
		Name:  fi.Name(),
		Qid:   plan9.Qid{Path: qidPath(name), Vers: mt},
		Mode:  plan9.Perm(fi.Mode().Perm()),
		Atime: mt,
		Mtime: mt,
		Uid:   f.opts.Owner,
		Gid:   f.opts.Owner,
		Muid:  f.opts.Owner,
	}
	if name == "." {
		d.Name = "/"
	}
	if fi.IsDir() {
		d.Qid.Type = plan9.QTDIR
		d.Mode |= plan9.DMDIR
	} else {
		d.Length = uint64(fi.Size())
	}
	if f.opts.Meta != nil {
		f.opts.Meta(name, &d)
		// The type bits follow the file, whatever Meta said.
		d.Mode = d.Mode&^plan9.DMDIR | plan9.Perm(d.Qid.Type&plan9.QTDIR)<<24
	}
	return d
}

func (f *ioFS) Stat(_ context.Context, name string) (plan9.Dir, error) {
	fi, err := fs.Lstat(f.fsys, name)
	if err != nil {
		return plan9.Dir{}, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return plan9.Dir{}, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return f.dir(name, fi), nil
}

func (f *ioFS) ReadDir(_ context.Context, name string) ([]plan9.Dir, error) {
	ents, err := fs.ReadDir(f.fsys, name)
	if err != nil {
		return nil, err
	}
	out := make([]plan9.Dir, 0, len(ents))
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, f.dir(path.Join(name, e.Name()), fi))
	}
	return out, nil
}

func (f *ioFS) Open(_ context.Context, name string, mode uint8) (File, error) {
	if mode&3 == plan9.OWRITE || mode&3 == plan9.ORDWR || mode&plan9.OTRUNC != 0 {
		return nil, fmt.Errorf("open %s for writing: %w", name, ErrReadOnly)
	}
	file, err := f.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	if ra, ok := file.(File); ok {
		return ra, nil
	}
	if s, ok := file.(io.ReadSeeker); ok {
		return &seekReader{f: file, rs: s}, nil
	}
	file.Close()
	return nil, fmt.Errorf("open %s: the tree's files cannot be read at an offset", name)
}

// seekReader gives ReadAt to a file that can only seek and read.
type seekReader struct {
	mu sync.Mutex
	f  fs.File
	rs io.ReadSeeker
}

func (s *seekReader) ReadAt(b []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(s.rs, b)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

func (s *seekReader) Close() error { return s.f.Close() }
