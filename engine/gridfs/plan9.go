package gridfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"9fans.net/go/plan9"

	"gridlord/engine/ninep"
)

// The grid's tree for Plan 9 itself: the same files over 9P2000, which
// Plan 9 mounts (9P2000.L it cannot), served on the grid's private network
// so a node can drive the grid from its own shell:
//
//	srv tcp!10.0.9.254!564 grid && mount /srv/grid /n/grid
//	cat /n/grid/nodes/*/status; echo start >/n/grid/nodes/cpu2/ctl
//
// The tree is /ctl, /grid.json, /seeds, /venti/stats and
// /nodes/NAME/{ctl,status,cons,log,ini}: not /identity or drawterm, which
// hold passwords. Files are read from a snapshot taken at open; each write
// to a ctl file is one command, and a refused command's message comes back
// as the write's error (9P2000 errors are strings). Nothing authenticates
// the attach, so the tree is read-only except for the user the grid names
// as its host owner, and it is served only inside the grid network.

// Plan9Options configures NewPlan9FS.
type Plan9Options struct {
	// Owner returns the user that may write (ctl, typing at cons): the
	// grid's host owner. Others get a read-only tree.
	Owner func() string
	// Verbs are the ctl verb tables (default GridVerbs and NodeVerbs).
	GridVerbs, NodeVerbs []Verb
}

// plan9FS is the tree as a ninep.FS.
type plan9FS struct {
	e         Engine
	owner     func() string
	gridVerbs verbTable
	nodeVerbs verbTable
	start     time.Time
}

// NewPlan9FS returns e's tree for a ninep.Server (9P2000).
func NewPlan9FS(e Engine, opts Plan9Options) ninep.FS {
	gv, nv := opts.GridVerbs, opts.NodeVerbs
	if gv == nil {
		gv = GridVerbs()
	}
	if nv == nil {
		nv = NodeVerbs()
	}
	owner := opts.Owner
	if owner == nil {
		owner = func() string { return "" }
	}
	return &plan9FS{e: e, owner: owner, gridVerbs: newVerbTable(gv), nodeVerbs: newVerbTable(nv), start: time.Now()}
}

// plan9NodeFiles are the files of /nodes/NAME.
func plan9NodeFiles() []string { return []string{"cons", "ctl", "ini", "log", "status"} }

// entry kinds of the tree.
type p9kind int

const (
	p9Dir p9kind = iota
	p9Text
	p9Ctl
	p9Cons
)

// resolve names a path: its kind and, under /nodes, the node.
func (f *plan9FS) resolve(name string) (p9kind, string, error) {
	elems := strings.Split(name, "/")
	if name == "." {
		return p9Dir, "", nil
	}
	notExist := fmt.Errorf("%s: %w", name, errNotExist)
	switch elems[0] {
	case "ctl":
		if len(elems) == 1 {
			return p9Ctl, "", nil
		}
	case "grid.json", "seeds":
		if len(elems) == 1 {
			return p9Text, "", nil
		}
	case "venti":
		switch {
		case len(elems) == 1:
			return p9Dir, "", nil
		case len(elems) == 2 && elems[1] == "stats":
			return p9Text, "", nil
		}
	case "nodes":
		if len(elems) == 1 {
			return p9Dir, "", nil
		}
		if !slices.Contains(f.e.Nodes(), elems[1]) {
			return 0, "", notExist
		}
		switch {
		case len(elems) == 2:
			return p9Dir, elems[1], nil
		case len(elems) == 3 && slices.Contains(plan9NodeFiles(), elems[2]):
			switch elems[2] {
			case "ctl":
				return p9Ctl, elems[1], nil
			case "cons":
				return p9Cons, elems[1], nil
			}
			return p9Text, elems[1], nil
		}
	}
	return 0, "", notExist
}

var errNotExist = errors.New("file does not exist")

// Stat implements ninep.FS.
func (f *plan9FS) Stat(_ context.Context, name string) (plan9.Dir, error) {
	kind, _, err := f.resolve(name)
	if err != nil {
		return plan9.Dir{}, err
	}
	return f.dir(name, kind), nil
}

func (f *plan9FS) dir(name string, kind p9kind) plan9.Dir {
	h := fnv.New64a()
	h.Write([]byte(name))
	d := plan9.Dir{
		Name: path.Base(name), Uid: f.owner(), Gid: "gridlord", Muid: f.owner(),
		Qid:   plan9.Qid{Path: h.Sum64()},
		Mode:  0o444,
		Atime: uint32(time.Now().Unix()), Mtime: uint32(f.start.Unix()),
	}
	if d.Uid == "" {
		d.Uid, d.Muid = "gridlord", "gridlord"
	}
	if name == "." {
		d.Name = "/"
	}
	switch kind {
	case p9Dir:
		d.Mode = plan9.DMDIR | 0o555
		d.Qid.Type = plan9.QTDIR
	case p9Ctl, p9Cons:
		d.Mode = 0o664
	}
	return d
}

// ReadDir implements ninep.FS.
func (f *plan9FS) ReadDir(_ context.Context, name string) ([]plan9.Dir, error) {
	kind, node, err := f.resolve(name)
	if err != nil {
		return nil, err
	}
	if kind != p9Dir {
		return nil, fmt.Errorf("%s: not a directory", name)
	}
	var names []string
	switch {
	case name == ".":
		names = []string{"ctl", "grid.json", "nodes", "seeds", "venti"}
	case name == "venti":
		names = []string{"stats"}
	case name == "nodes":
		names = f.e.Nodes()
	case node != "":
		names = plan9NodeFiles()
	}
	var out []plan9.Dir
	for _, n := range names {
		child := n
		if name != "." {
			child = name + "/" + n
		}
		if k, _, err := f.resolve(child); err == nil {
			out = append(out, f.dir(child, k))
		}
	}
	return out, nil
}

// Open implements ninep.FS.
func (f *plan9FS) Open(ctx context.Context, name string, mode uint8) (ninep.File, error) {
	kind, node, err := f.resolve(name)
	if err != nil {
		return nil, err
	}
	writing := mode&3 == plan9.OWRITE || mode&3 == plan9.ORDWR
	if writing {
		if kind != p9Ctl && kind != p9Cons {
			return nil, fmt.Errorf("%s: %w", name, ninep.ErrReadOnly)
		}
		if u, owner := ninep.User(ctx), f.owner(); owner == "" || u != owner {
			return nil, fmt.Errorf("%s: permission denied: only the grid's host owner (%s) may change the grid; %q may read it", name, owner, u)
		}
	}
	var data []byte
	switch {
	case kind == p9Ctl:
		data = []byte(f.verbs(node).usage())
	case kind == p9Cons:
		if h, err := f.e.Console(node); err == nil {
			data = h.Scrollback()
		}
	default:
		if data, err = f.text(name, node); err != nil {
			return nil, err
		}
	}
	file := &p9File{data: data}
	switch {
	case writing && kind == p9Ctl:
		file.write = func(p []byte) error { return f.ctl(ctx, node, bytes.TrimRight(p, "\n")) }
	case writing && kind == p9Cons:
		file.write = func(p []byte) error {
			h, err := f.e.Console(node)
			if err != nil {
				return err
			}
			// A line typed on Plan 9 ends in \n; a serial console wants \r.
			_, err = h.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r")))
			return err
		}
	}
	if file.write != nil {
		return &p9WFile{file}, nil
	}
	return file, nil
}

func (f *plan9FS) verbs(node string) verbTable {
	if node == "" {
		return f.gridVerbs
	}
	return f.nodeVerbs
}

// text generates a read-only file's contents.
func (f *plan9FS) text(name, node string) ([]byte, error) {
	switch {
	case name == "grid.json":
		return f.e.GridJSON()
	case name == "seeds":
		ss, err := f.e.Seeds()
		if err != nil || len(ss) == 0 {
			return nil, err
		}
		return []byte(strings.Join(ss, "\n") + "\n"), nil
	case name == "venti/stats":
		return f.e.VentiStats()
	}
	switch path.Base(name) {
	case "status":
		s, err := f.e.NodeStatus(node)
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(s, "\n") + "\n"), nil
	case "ini":
		return f.e.NodeIni(node)
	case "log":
		return f.e.NodeLog(node)
	}
	return nil, fmt.Errorf("%s: %w", name, errNotExist)
}

// ctl runs one command written to a ctl file; ctx is the client's
// connection (the engine runs the command on its own and ctx only bounds
// the wait).
func (f *plan9FS) ctl(ctx context.Context, node string, p []byte) error {
	words, err := ParseCtl(p)
	if err != nil {
		return err
	}
	if err := f.verbs(node).check(words); err != nil {
		return err
	}
	if node == "" {
		return f.e.Ctl(ctx, words)
	}
	return f.e.NodeCtl(ctx, node, words)
}

// p9File is an open file: a snapshot to read and, for ctl and cons opened
// for writing, what a write does.
type p9File struct {
	data  []byte
	write func([]byte) error
}

func (p *p9File) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(p.data)) {
		return 0, io.EOF
	}
	return copy(b, p.data[off:]), nil
}

func (p *p9File) Close() error { return nil }

// p9WFile is a p9File open for writing.
type p9WFile struct{ *p9File }

func (p *p9WFile) WriteAt(b []byte, _ int64) (int, error) {
	if err := p.write(b); err != nil {
		return 0, err
	}
	return len(b), nil
}
