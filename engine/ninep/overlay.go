package ninep

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"time"

	"9fans.net/go/plan9"
)

// Extra is a file or directory an Overlay adds to (or replaces in) the
// tree below it.
type Extra struct {
	// Data is a file's contents (nil for a directory).
	Data []byte
	// Dir makes the entry a directory.
	Dir bool
	// Mode holds the permission bits (default 0664, 0775 for a
	// directory).
	Mode plan9.Perm
	// Owner is the uid and gid (default "sys").
	Owner string
}

// Overlay serves base with extra files on top, read-only: an entry of
// extra (a clean relative path) shadows base's file of the same name and
// appears in its parent directory's listing. The parent of every extra
// must be a directory of base or another extra. Use it to serve a
// distribution with files the engine wrote (a filtered replica log, a
// configuration) beside it.
func Overlay(base FS, extra map[string]Extra) (FS, error) {
	o := &overlay{base: base, extra: map[string]Extra{}, children: map[string][]string{}, mtime: uint32(time.Now().Unix())}
	for name, e := range extra {
		if !fs.ValidPath(name) || name == "." {
			return nil, fmt.Errorf("overlay: %q is not a clean relative path", name)
		}
		if e.Dir && e.Data != nil {
			return nil, fmt.Errorf("overlay: %s is a directory with contents", name)
		}
		o.extra[name] = e
		dir := path.Dir(name)
		o.children[dir] = append(o.children[dir], name)
	}
	for name := range o.extra {
		dir := path.Dir(name)
		if _, ok := o.extra[dir]; ok {
			continue
		}
		d, err := base.Stat(context.Background(), dir)
		if err != nil || d.Mode&plan9.DMDIR == 0 {
			return nil, fmt.Errorf("overlay: the parent of %s is not a directory of the tree", name)
		}
	}
	for _, c := range o.children {
		sort.Strings(c)
	}
	return o, nil
}

type overlay struct {
	base     FS
	extra    map[string]Extra
	children map[string][]string
	mtime    uint32
}

func (o *overlay) dir(name string, e Extra) plan9.Dir {
	owner := e.Owner
	if owner == "" {
		owner = "sys"
	}
	d := plan9.Dir{
		Name: path.Base(name), Qid: plan9.Qid{Path: qidPath("overlay:" + name), Vers: o.mtime},
		Mode: e.Mode, Atime: o.mtime, Mtime: o.mtime, Uid: owner, Gid: owner, Muid: owner,
		Length: uint64(len(e.Data)),
	}
	switch {
	case e.Dir:
		if d.Mode == 0 {
			d.Mode = 0o775
		}
		d.Mode |= plan9.DMDIR
		d.Qid.Type = plan9.QTDIR
		d.Length = 0
	case d.Mode == 0:
		d.Mode = 0o664
	}
	return d
}

func (o *overlay) Stat(ctx context.Context, name string) (plan9.Dir, error) {
	if e, ok := o.extra[name]; ok {
		return o.dir(name, e), nil
	}
	return o.base.Stat(ctx, name)
}

func (o *overlay) ReadDir(ctx context.Context, name string) ([]plan9.Dir, error) {
	var out []plan9.Dir
	if _, ok := o.extra[name]; !ok {
		ents, err := o.base.ReadDir(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, d := range ents {
			if _, shadowed := o.extra[path.Join(name, d.Name)]; !shadowed {
				out = append(out, d)
			}
		}
	}
	for _, c := range o.children[name] {
		out = append(out, o.dir(c, o.extra[c]))
	}
	return out, nil
}

func (o *overlay) Open(ctx context.Context, name string, mode uint8) (File, error) {
	e, ok := o.extra[name]
	if !ok {
		return o.base.Open(ctx, name, mode)
	}
	if mode&3 == plan9.OWRITE || mode&3 == plan9.ORDWR || mode&plan9.OTRUNC != 0 {
		return nil, fmt.Errorf("open %s for writing: %w", name, ErrReadOnly)
	}
	if e.Dir {
		return nil, fmt.Errorf("open %s: is a directory", name)
	}
	return nopCloser{bytes.NewReader(e.Data)}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
