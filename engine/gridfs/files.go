package gridfs

// The file types of the tree. Each is a small struct that embeds templatefs
// pieces for the operations it does not support. Every Walk returns a fresh
// value, so per-open state (a console reader, an events cursor, the error
// of the last ctl write, a read snapshot) belongs to exactly one fid.
//
// Locking: each file's mu guards its own per-fid state; fsys state has its
// own locks (notifier.mu, lastErrors.mu). No lock is held while calling the
// Engine except inside snapshot.readAt, which only this fid can contend.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/hugelgupf/p9/fsimpl/templatefs"
	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"

	"gridlord/engine/console"
)

// v9fsMagic is the statfs type Linux reports for 9P mounts.
const v9fsMagic = 0x01021997

// statfs implements p9.File.StatFS for every file.
type statfs struct{}

// StatFS implements p9.File.StatFS.
func (statfs) StatFS() (p9.FSStat, error) {
	return p9.FSStat{Type: v9fsMagic, BlockSize: 4096, NameLength: 255}, nil
}

// entry is what every node of the tree knows: its path and the attacher
// (engine, shared state, connection context) it was reached through.
type entry struct {
	a    *attacher
	path string // "/", "/nodes/cpu1/ctl", ...
}

func (en entry) qid(t p9.QIDType) p9.QID {
	h := fnv.New64a()
	h.Write([]byte(en.path))
	return p9.QID{Type: t, Path: h.Sum64()}
}

func (en entry) attr(mode p9.FileMode) p9.Attr {
	uid, gid := 0, 0
	if runtime.GOOS != "windows" {
		uid, gid = os.Getuid(), os.Getgid()
	}
	nlink := p9.NLink(1)
	if mode.IsDir() {
		nlink = 2
	}
	return p9.Attr{Mode: mode, UID: p9.UID(uid), GID: p9.GID(gid), NLink: nlink, BlockSize: 4096}
}

func (en entry) child(name string) entry {
	return entry{a: en.a, path: strings.TrimSuffix(en.path, "/") + "/" + name}
}

// errno turns an engine error into the errno a 9P client receives.
func errno(err error) error {
	if err == nil {
		return nil
	}
	if errContextDone(err) {
		return linux.EINTR
	}
	return linux.ExtractErrno(err)
}

// ---- directories ----

// dirKind says which directory a dir value is.
type dirKind int

const (
	rootDir dirKind = iota
	nodesDir
	nodeDir
	ventiDir
)

// dir is a read-only directory whose entries come from the engine.
type dir struct {
	statfs
	p9.DefaultWalkGetAttr
	templatefs.ReadOnlyDir
	templatefs.NilCloser
	entry
	kind dirKind
	node string // for nodeDir
}

var _ p9.File = (*dir)(nil)

func newRoot(a *attacher) *dir { return &dir{entry: entry{a: a, path: "/"}, kind: rootDir} }

var nodeFileNames = []string{"cons", "ctl", "drawterm", "ini", "log", "status"}

// names lists the directory's entries in order, with whether each is a directory.
func (d *dir) names() ([]string, map[string]bool) {
	e := d.a.fs.e
	switch d.kind {
	case rootDir:
		return []string{"ctl", "events", "grid.json", "identity", "log", "nodes", "seeds", "venti"}, map[string]bool{"nodes": true, "venti": true}
	case nodesDir:
		ns := e.Nodes()
		isDir := make(map[string]bool, len(ns))
		for _, n := range ns {
			isDir[n] = true
		}
		return ns, isDir
	case nodeDir:
		return nodeFileNames, nil
	case ventiDir:
		return []string{"mirrors", "stats"}, nil
	}
	return nil, nil
}

// lookup returns the child called name.
func (d *dir) lookup(name string) (p9.File, error) {
	c := d.child(name)
	switch d.kind {
	case rootDir:
		switch name {
		case "ctl":
			return &ctlFile{fileBase: fileBase{entry: c}}, nil
		case "events":
			return &eventsFile{fileBase: fileBase{entry: c}}, nil
		case "identity":
			return &ctlFile{fileBase: fileBase{entry: c}, identity: true}, nil
		case "log":
			return &logFile{fileBase: fileBase{entry: c}}, nil
		case "grid.json":
			return &textFile{fileBase: fileBase{entry: c}, gen: d.a.fs.e.GridJSON}, nil
		case "seeds":
			return &textFile{fileBase: fileBase{entry: c}, gen: func() ([]byte, error) {
				ss, err := d.a.fs.e.Seeds()
				if err != nil || len(ss) == 0 {
					return nil, err
				}
				return []byte(strings.Join(ss, "\n") + "\n"), nil
			}}, nil
		case "nodes":
			return &dir{entry: c, kind: nodesDir}, nil
		case "venti":
			return &dir{entry: c, kind: ventiDir}, nil
		}
	case nodesDir:
		if slices.Contains(d.a.fs.e.Nodes(), name) {
			return &dir{entry: c, kind: nodeDir, node: name}, nil
		}
	case nodeDir:
		return nodeFile(c, d.node, name)
	case ventiDir:
		switch name {
		case "stats":
			return &textFile{fileBase: fileBase{entry: c}, gen: d.a.fs.e.VentiStats}, nil
		case "mirrors":
			return &textFile{fileBase: fileBase{entry: c}, gen: d.a.fs.e.VentiMirrors}, nil
		}
	}
	return nil, linux.ENOENT
}

func nodeFile(c entry, node, name string) (p9.File, error) {
	e := c.a.fs.e
	switch name {
	case "ctl":
		return &ctlFile{fileBase: fileBase{entry: c}, node: node}, nil
	case "status":
		return &textFile{fileBase: fileBase{entry: c}, gen: func() ([]byte, error) {
			s, err := e.NodeStatus(node)
			if err != nil {
				return nil, err
			}
			return []byte(strings.TrimRight(s, "\n") + "\n"), nil
		}}, nil
	case "ini":
		return &textFile{fileBase: fileBase{entry: c}, gen: func() ([]byte, error) { return e.NodeIni(node) }}, nil
	case "log":
		return &textFile{fileBase: fileBase{entry: c}, gen: func() ([]byte, error) { return e.NodeLog(node) }}, nil
	case "drawterm":
		return &textFile{fileBase: fileBase{entry: c}, gen: func() ([]byte, error) { return e.NodeDrawterm(node) }}, nil
	case "cons":
		return &consFile{fileBase: fileBase{entry: c}, node: node}, nil
	}
	return nil, linux.ENOENT
}

// Walk implements p9.File.Walk.
func (d *dir) Walk(names []string) ([]p9.QID, p9.File, error) {
	switch len(names) {
	case 0:
		nd := *d
		return nil, &nd, nil
	case 1:
		f, err := d.lookup(names[0])
		if err != nil {
			return nil, nil, err
		}
		q, _, _, err := f.GetAttr(p9.AttrMask{})
		if err != nil {
			return nil, nil, err
		}
		return []p9.QID{q}, f, nil
	}
	return nil, nil, linux.EINVAL
}

// Open implements p9.File.Open.
func (d *dir) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	if mode.Mode() != p9.ReadOnly {
		return p9.QID{}, 0, linux.EISDIR
	}
	return d.qid(p9.TypeDir), 0, nil
}

// GetAttr implements p9.File.GetAttr.
func (d *dir) GetAttr(req p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	return d.qid(p9.TypeDir), req, d.attr(p9.ModeDirectory | 0o555), nil
}

// Readdir implements p9.File.Readdir; offsets are entry indexes.
func (d *dir) Readdir(offset uint64, count uint32) (p9.Dirents, error) {
	names, isDir := d.names()
	var out p9.Dirents
	for i := offset; i < uint64(len(names)) && len(out) < int(count); i++ {
		t := p9.TypeRegular
		if isDir[names[i]] {
			t = p9.TypeDir
		}
		out = append(out, p9.Dirent{
			QID:    d.child(names[i]).qid(t),
			Type:   t,
			Offset: i + 1,
			Name:   names[i],
		})
	}
	return out, nil
}

// ---- plain files ----

// fileBase is what every regular file shares.
type fileBase struct {
	statfs
	p9.DefaultWalkGetAttr
	templatefs.ReadOnlyFile
	entry
}

// getAttr reports a regular file of size 0: contents are generated.
func (f *fileBase) getAttr(req p9.AttrMask, perm p9.FileMode) (p9.QID, p9.AttrMask, p9.Attr, error) {
	return f.qid(p9.TypeRegular), req, f.attr(p9.ModeRegular | perm), nil
}

// snapshot holds a file's content for one fid. A read at offset 0 (or the
// first read) regenerates it, so re-reading from the start sees fresh state.
type snapshot struct {
	mu   sync.Mutex
	data []byte
	have bool
}

func (s *snapshot) readAt(p []byte, off int64, gen func() ([]byte, error)) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off == 0 || !s.have {
		b, err := gen()
		if err != nil {
			return 0, err
		}
		s.data, s.have = b, true
	}
	if off < 0 {
		return 0, linux.EINVAL
	}
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	return copy(p, s.data[off:]), nil
}

// textFile is a read-only file whose content gen makes.
type textFile struct {
	fileBase
	templatefs.NilCloser
	gen  func() ([]byte, error)
	snap snapshot
}

var _ p9.File = (*textFile)(nil)

// Walk implements p9.File.Walk.
func (f *textFile) Walk(names []string) ([]p9.QID, p9.File, error) {
	if len(names) != 0 {
		return nil, nil, linux.ENOTDIR
	}
	return nil, &textFile{fileBase: f.fileBase, gen: f.gen}, nil
}

// GetAttr implements p9.File.GetAttr.
func (f *textFile) GetAttr(req p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	return f.getAttr(req, 0o444)
}

// Open implements p9.File.Open.
func (f *textFile) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	if mode.Mode() != p9.ReadOnly {
		return p9.QID{}, 0, linux.EACCES
	}
	return f.qid(p9.TypeRegular), 0, nil
}

// ReadAt implements p9.File.ReadAt.
func (f *textFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.snap.readAt(p, off, f.gen)
	if err != nil && err != io.EOF {
		f.a.fs.log.Warn("gridfs read failed", "path", f.path, "err", err)
		return 0, errno(err)
	}
	return n, err
}

// ---- ctl ----

// ctlFile is /ctl (node == "") or /nodes/NODE/ctl. A write is one command.
// A failed write's message is kept for this fid: the next read returns
// "error: MESSAGE\n" once (9P2000.L's Rlerror carries only an errno).
// Otherwise reads list the verbs and the file's last failure, if any.
type ctlFile struct {
	fileBase
	templatefs.NilCloser
	node     string
	identity bool // /identity: its lines hold a password and are never logged

	mu      sync.Mutex
	pending string // error of this fid's last write, until read
	snap    snapshot
}

var _ p9.File = (*ctlFile)(nil)

// Walk implements p9.File.Walk.
func (f *ctlFile) Walk(names []string) ([]p9.QID, p9.File, error) {
	if len(names) != 0 {
		return nil, nil, linux.ENOTDIR
	}
	return nil, &ctlFile{fileBase: f.fileBase, node: f.node, identity: f.identity}, nil
}

// GetAttr implements p9.File.GetAttr.
func (f *ctlFile) GetAttr(req p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	return f.getAttr(req, 0o644)
}

// SetAttr implements p9.File.SetAttr: truncation (from a shell's
// "echo start >ctl") and time changes are accepted and ignored.
func (f *ctlFile) SetAttr(valid p9.SetAttrMask, attr p9.SetAttr) error { return nil }

// FSync implements p9.File.FSync.
func (f *ctlFile) FSync() error { return nil }

// Open implements p9.File.Open.
func (f *ctlFile) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	if f.node != "" && !slices.Contains(f.a.fs.e.Nodes(), f.node) {
		return p9.QID{}, 0, linux.ENOENT
	}
	return f.qid(p9.TypeRegular), 0, nil
}

func (f *ctlFile) verbs() verbTable {
	if f.identity {
		return f.a.fs.identVerbs
	}
	if f.node == "" {
		return f.a.fs.gridVerbs
	}
	return f.a.fs.nodeVerbs
}

// ReadAt implements p9.File.ReadAt.
func (f *ctlFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	pending := f.pending
	if off == 0 {
		f.pending = ""
	}
	f.mu.Unlock()
	return f.snap.readAt(p, off, func() ([]byte, error) {
		if pending != "" {
			return []byte("error: " + pending + "\n"), nil
		}
		s := f.verbs().usage()
		if last := f.a.fs.lastErr.get(f.path); last != "" {
			s += "last error: " + last + "\n"
		}
		return []byte(s), nil
	})
}

// WriteAt implements p9.File.WriteAt. The offset is ignored.
func (f *ctlFile) WriteAt(p []byte, off int64) (int, error) {
	err := f.run(p)
	f.mu.Lock()
	f.pending = ""
	if err != nil {
		f.pending = oneLine(err.Error())
	}
	f.mu.Unlock()
	if err != nil {
		line := oneLine(string(bytes.TrimRight(p, "\r\n")))
		if f.identity {
			line = "(identity not shown)"
		}
		f.a.fs.lastErr.set(f.path, fmt.Sprintf("%q: %s", line, oneLine(err.Error())))
		f.a.fs.log.Info("gridfs ctl failed", "path", f.path, "command", line, "err", err)
		var ce *ctlError
		if errors.As(err, &ce) {
			return 0, ce.errno
		}
		return 0, errno(err)
	}
	return len(p), nil
}

// run parses and runs one command under the tree's context (not the
// connection's: a command outlives the client that wrote it), or, after
// AttachedWord, under the connection's, marked Cancellable.
func (f *ctlFile) run(p []byte) error {
	words, err := ParseCtl(p)
	if err != nil {
		return &ctlError{errno: linux.EINVAL, msg: err.Error()}
	}
	fs := f.a.fs
	ctx := fs.ctx
	if len(words) > 1 && words[0] == AttachedWord {
		words = words[1:]
		ctx = Cancellable(f.a.conn)
	}
	if err := f.verbs().check(words); err != nil {
		return err
	}
	if f.identity {
		fs.log.Info("gridfs identity", "path", f.path)
		return fs.e.Identity(ctx, words)
	}
	fs.log.Info("gridfs ctl", "path", f.path, "words", words)
	if f.node == "" {
		return fs.e.Ctl(ctx, words)
	}
	return fs.e.NodeCtl(ctx, f.node, words)
}

// oneLine keeps an error message on a single line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// ---- cons ----

// consFile is /nodes/NODE/cons. Opening it for reading subscribes a
// console.Reader (scrollback first) that Close releases; a read returns the
// bytes buffered for this fid, or blocks until console bytes arrive, the hub
// closes (EOF) or the connection ends. Writes are typed into the VM.
//
// Offsets are ignored except for one rule that makes the file usable through
// Linux's v9fs, whose read(2) keeps issuing Treads until the user's buffer
// is full or a Tread returns 0 bytes: a read at the offset where this fid's
// previous read ended (off > 0) does not block; with nothing buffered it
// returns 0. So through a kernel mount "cat cons" prints what is buffered and
// exits, and "tail -f cons" streams (polling). Client.OpenCons reads at
// offset 0 and always blocks.
type consFile struct {
	fileBase
	node string

	mu      sync.Mutex
	hub     *console.Hub
	r       *console.Reader
	lastEnd int64 // offset where the previous read ended
}

var _ p9.File = (*consFile)(nil)

// Walk implements p9.File.Walk.
func (f *consFile) Walk(names []string) ([]p9.QID, p9.File, error) {
	if len(names) != 0 {
		return nil, nil, linux.ENOTDIR
	}
	return nil, &consFile{fileBase: f.fileBase, node: f.node}, nil
}

// GetAttr implements p9.File.GetAttr.
func (f *consFile) GetAttr(req p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	return f.getAttr(req, 0o644)
}

// SetAttr implements p9.File.SetAttr (truncation is ignored).
func (f *consFile) SetAttr(valid p9.SetAttrMask, attr p9.SetAttr) error { return nil }

// FSync implements p9.File.FSync.
func (f *consFile) FSync() error { return nil }

// Open implements p9.File.Open. A node without a console gives ENXIO.
func (f *consFile) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	hub, err := f.a.fs.e.Console(f.node)
	if err != nil || hub == nil {
		var en linux.Errno
		if errors.As(err, &en) {
			return p9.QID{}, 0, en
		}
		return p9.QID{}, 0, linux.ENXIO
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hub = hub
	if mode.Mode() != p9.WriteOnly {
		f.r = hub.Subscribe(true)
		f.a.fs.log.Debug("gridfs cons reader opened", "node", f.node)
	}
	return f.qid(p9.TypeRegular), 0, nil
}

// ReadAt implements p9.File.ReadAt.
func (f *consFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	r := f.r
	f.mu.Unlock()
	if r == nil {
		return 0, linux.EBADF
	}
	if len(p) == 0 {
		return 0, nil
	}
	ctx := f.a.conn
	f.mu.Lock()
	follow := off > 0 && off == f.lastEnd
	f.mu.Unlock()
	if follow {
		c, cancel := context.WithCancel(ctx)
		cancel() // poll: take what is buffered, never wait
		ctx = c
	}
	n, err := r.ReadContext(ctx, p)
	if err != nil && n == 0 {
		if err == io.EOF || follow && errContextDone(err) && f.a.conn.Err() == nil {
			return 0, io.EOF
		}
		return 0, errno(err)
	}
	f.mu.Lock()
	f.lastEnd = off + int64(n)
	f.mu.Unlock()
	return n, nil
}

// WriteAt implements p9.File.WriteAt.
func (f *consFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	hub := f.hub
	f.mu.Unlock()
	if hub == nil {
		return 0, linux.EBADF
	}
	n, err := hub.Write(p)
	if err != nil {
		if errors.Is(err, console.ErrNotConnected) {
			return n, linux.ENOTCONN
		}
		return n, linux.EIO
	}
	return n, nil
}

// Close implements p9.File.Close: it releases the console reader.
func (f *consFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.r != nil {
		f.r.Close()
		f.r = nil
		f.a.fs.log.Debug("gridfs cons reader released", "node", f.node)
	}
	return nil
}

// ---- events ----

// eventsFile is /events. Each open takes a cursor at the current change
// sequence; a read blocks until the grid changed after the cursor, then
// returns "changed SEQ\n" and moves the cursor. Several changes between
// reads are reported once.
//
// As with cons, a read at the offset where this fid's previous read ended
// (off > 0) does not block but returns 0 when nothing changed, so a Linux
// v9fs read(2) returns after one line ("head -n 1 events" waits for the
// next change; "tail -f events" follows them).
type eventsFile struct {
	fileBase
	templatefs.NilCloser

	mu      sync.Mutex
	cursor  uint64
	lastEnd int64
}

var _ p9.File = (*eventsFile)(nil)

// Walk implements p9.File.Walk.
func (f *eventsFile) Walk(names []string) ([]p9.QID, p9.File, error) {
	if len(names) != 0 {
		return nil, nil, linux.ENOTDIR
	}
	return nil, &eventsFile{fileBase: f.fileBase}, nil
}

// GetAttr implements p9.File.GetAttr.
func (f *eventsFile) GetAttr(req p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	return f.getAttr(req, 0o444)
}

// Open implements p9.File.Open.
func (f *eventsFile) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	if mode.Mode() != p9.ReadOnly {
		return p9.QID{}, 0, linux.EACCES
	}
	seq, _ := f.a.fs.events.current()
	f.mu.Lock()
	f.cursor = seq
	f.mu.Unlock()
	return f.qid(p9.TypeRegular), 0, nil
}

// ReadAt implements p9.File.ReadAt.
func (f *eventsFile) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	f.mu.Lock()
	after := f.cursor
	follow := off > 0 && off == f.lastEnd
	f.mu.Unlock()
	var seq uint64
	if follow {
		if seq, _ = f.a.fs.events.current(); seq <= after {
			return 0, io.EOF
		}
	} else {
		var err error
		if seq, err = f.a.fs.events.wait(f.a.conn, after); err != nil {
			return 0, errno(err)
		}
	}
	n := copy(p, fmt.Sprintf("changed %d\n", seq))
	f.mu.Lock()
	if seq > f.cursor {
		f.cursor = seq
	}
	f.lastEnd = off + int64(n)
	f.mu.Unlock()
	return n, nil
}
