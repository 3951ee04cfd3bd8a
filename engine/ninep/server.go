// Package ninep serves a file tree over 9P2000 (the Plan 9 protocol, not
// 9P2000.L), as Plan 9 kernels mount it: a cpu kernel booting with
// nobootprompt=tcp attaches to it as its root.
//
// Authentication is not offered: Tauth is refused, so clients attach
// without it, as with u9fs -a none. The served tree is an FS; FromFS
// adapts an io/fs.FS (a directory, an ISO image) to it read-only. A
// writable tree opens files for writing in its Open and returns Files that
// implement io.WriterAt.
//
// The wire format is 9fans.net/go/plan9's. The server does not use that
// module's srv9p because srv9p trusts the negotiated msize when sizing read
// buffers (a client that negotiates a tiny msize can make it allocate up to
// 2 GiB per Tread), logs through the global log package and cannot be
// stopped with a context.
package ninep

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"strings"
	"sync"

	"9fans.net/go/plan9"
)

// FS is a file tree served over 9P2000. Names are slash-separated paths
// relative to the root, which is "."; they are always clean (no "..", no
// empty elements).
type FS interface {
	// Stat describes the named file. Its Qid.Path must be stable and
	// unique per file; directories have DMDIR in Mode and QTDIR in
	// Qid.Type. The root's Name is "/".
	Stat(ctx context.Context, name string) (plan9.Dir, error)
	// ReadDir lists the named directory.
	ReadDir(ctx context.Context, name string) ([]plan9.Dir, error)
	// Open opens the named regular file with a 9P open mode
	// (plan9.OREAD, OWRITE, ORDWR, OEXEC, possibly with OTRUNC); a
	// read-only tree refuses writing modes.
	Open(ctx context.Context, name string, mode uint8) (File, error)
}

// File is an open file of an FS. Files opened for writing also implement
// io.WriterAt.
type File interface {
	io.ReaderAt
	io.Closer
}

// Errors an FS returns that clients see as Plan 9's own messages.
var (
	// ErrReadOnly refuses a change to a read-only tree.
	ErrReadOnly = errors.New("read-only file system")
)

// Options configures a Server.
type Options struct {
	// Msize is the largest message the server accepts; 0 means
	// DefaultMsize. Clients may negotiate less.
	Msize uint32
	// Logger receives connection errors, and every request and reply at
	// debug level; nil discards them.
	Logger *slog.Logger
}

// DefaultMsize is the message size offered when Options.Msize is 0.
const DefaultMsize = 64*1024 + plan9.IOHDRSZ

// minMsize is the smallest msize the server agrees to: a stat of a file
// with long names must fit one message.
const minMsize = 512

// maxInflight bounds the requests of one connection handled at once.
const maxInflight = 32

// Server serves one FS to any number of connections.
type Server struct {
	fs    FS
	msize uint32
	log   *slog.Logger
}

// NewServer returns a server of fsys.
func NewServer(fsys FS, opts Options) *Server {
	s := &Server{fs: fsys, msize: opts.Msize, log: opts.Logger}
	if s.msize == 0 {
		s.msize = DefaultMsize
	}
	if s.msize < minMsize {
		s.msize = minMsize
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Serve accepts connections on l and serves each until ctx is cancelled
// (then it closes l and every connection and returns nil) or Accept fails.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("9P server: accept: %w", err)
		}
		// A connection from a virtual network (gVisor) may have no remote
		// address once it is closed: take it now.
		remote := "unknown"
		if a := c.RemoteAddr(); a != nil {
			remote = a.String()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ServeConn(ctx, c); err != nil {
				s.log.Warn("9P connection ended", "remote", remote, "err", err)
			}
		}()
	}
}

// ServeConn serves one connection until the client closes it, a protocol
// error ends it (returned) or ctx is cancelled. It closes rw.
func (s *Server) ServeConn(ctx context.Context, rw io.ReadWriteCloser) error {
	ctx, cancel := context.WithCancel(ctx)
	c := &conn{srv: s, rw: rw, ctx: ctx, fids: map[uint32]*fid{}, tags: map[uint16]chan struct{}{}, msize: s.msize}
	stop := context.AfterFunc(ctx, func() { rw.Close() })
	defer func() {
		stop()
		cancel()
		c.wg.Wait()
		rw.Close()
		c.clunkAll()
	}()
	sem := make(chan struct{}, maxInflight)
	for {
		f, err := c.readMsg()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if f.Type == plan9.Tversion {
			// Tversion resets the session: wait for every request.
			c.wg.Wait()
			r := c.version(f)
			c.srv.log.Debug("9P", "request", f.String(), "reply", r.String())
			c.send(r)
			continue
		}
		done := make(chan struct{})
		c.mu.Lock()
		_, dup := c.tags[f.Tag]
		if !dup {
			c.tags[f.Tag] = done
		}
		c.mu.Unlock()
		if dup {
			c.send(rerror(f, errors.New("duplicate tag")))
			continue
		}
		sem <- struct{}{}
		c.wg.Add(1)
		go func() {
			defer func() {
				<-sem
				c.wg.Done()
			}()
			r := c.handle(f)
			if c.srv.log.Enabled(ctx, slog.LevelDebug) {
				c.srv.log.Debug("9P", "request", f.String(), "reply", r.String())
			}
			c.reply(r, f.Tag)
			close(done)
		}()
	}
}

// conn is one 9P session.
type conn struct {
	srv *Server
	rw  io.ReadWriteCloser
	ctx context.Context
	wg  sync.WaitGroup

	wmu sync.Mutex // serialises replies

	mu    sync.Mutex
	msize uint32
	fids  map[uint32]*fid
	tags  map[uint16]chan struct{}
}

// fid is one fid of a session.
type fid struct {
	mu    sync.Mutex
	uname string // the user named at attach, inherited by walks
	name  string
	qid   plan9.Qid
	open  bool
	mode  uint8
	file  File
	// Directory reads: the listing taken when the read at offset 0
	// began, the next entry and the offset the next read must give.
	dir    []plan9.Dir
	dirIdx int
	dirOff uint64
}

// readMsg reads and decodes one message, refusing sizes outside
// [7, msize] before allocating.
func (c *conn) readMsg() (*plan9.Fcall, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.rw, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	c.mu.Lock()
	msize := c.msize
	c.mu.Unlock()
	if n < 7 || n > msize {
		return nil, fmt.Errorf("9P message of %d bytes (the limit is %d): protocol error", n, msize)
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(c.rw, b[4:]); err != nil {
		return nil, fmt.Errorf("9P message cut short: %w", err)
	}
	f, err := plan9.UnmarshalFcall(b)
	if err != nil {
		return nil, fmt.Errorf("9P message: %w", err)
	}
	if f.Type%2 != 0 || f.Type < plan9.Tversion || f.Type >= plan9.Tmax {
		return nil, fmt.Errorf("9P message of type %d is not a request", f.Type)
	}
	return f, nil
}

// send writes a reply to a request that holds no tag.
func (c *conn) send(r *plan9.Fcall) { c.reply(r, plan9.NOTAG) }

// reply writes one reply and frees the request's tag (NOTAG: none) in
// the same step, so that a Tflush that no longer finds the tag is
// answered after it, and a client reusing the tag once it has the reply
// finds it free. A write error closes the connection, which ends the
// read loop.
func (c *conn) reply(r *plan9.Fcall, tag uint16) {
	b, err := r.Bytes()
	if err != nil {
		c.srv.log.Warn("9P reply not encodable", "reply", r.String(), "err", err)
		b, _ = rerror(r, errors.New("reply too large")).Bytes()
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if tag != plan9.NOTAG {
		c.mu.Lock()
		delete(c.tags, tag)
		c.mu.Unlock()
	}
	if _, err := c.rw.Write(b); err != nil {
		c.rw.Close()
	}
}

func rerror(f *plan9.Fcall, err error) *plan9.Fcall {
	return &plan9.Fcall{Type: plan9.Rerror, Tag: f.Tag, Ename: errorString(err)}
}

// errorString turns an error into the Plan 9 message a client expects.
func errorString(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "file does not exist"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, ErrReadOnly):
		return "read-only file system"
	}
	return err.Error()
}

func (c *conn) version(f *plan9.Fcall) *plan9.Fcall {
	c.clunkAll()
	r := &plan9.Fcall{Type: plan9.Rversion, Tag: f.Tag, Version: "unknown"}
	msize := min(f.Msize, c.srv.msize)
	if msize < minMsize {
		return rerror(f, fmt.Errorf("msize %d is too small (at least %d)", f.Msize, minMsize))
	}
	if strings.HasPrefix(f.Version, "9P2000") {
		r.Version = "9P2000"
	}
	r.Msize = msize
	c.mu.Lock()
	c.msize = msize
	c.mu.Unlock()
	return r
}

// clunkAll forgets every fid, closing open files.
func (c *conn) clunkAll() {
	c.mu.Lock()
	fids := c.fids
	c.fids = map[uint32]*fid{}
	c.mu.Unlock()
	for _, f := range fids {
		f.mu.Lock()
		if f.file != nil {
			f.file.Close()
			f.file = nil
		}
		f.mu.Unlock()
	}
}

// withFid calls fn with the fid id, locked.
func (c *conn) withFid(id uint32, fn func(fd *fid) error) error {
	fd, err := c.lookup(id)
	if err != nil {
		return err
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return fn(fd)
}

func (c *conn) lookup(id uint32) (*fid, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.fids[id]
	if !ok {
		return nil, errors.New("unknown fid")
	}
	return f, nil
}

// handle answers one request other than Tversion.
func (c *conn) handle(f *plan9.Fcall) *plan9.Fcall {
	r := &plan9.Fcall{Type: f.Type + 1, Tag: f.Tag}
	var err error
	switch f.Type {
	case plan9.Tauth:
		err = errors.New("authentication not required")
	case plan9.Tattach:
		err = c.attach(f, r)
	case plan9.Tflush:
		c.mu.Lock()
		done, ok := c.tags[f.Oldtag]
		c.mu.Unlock()
		if ok && f.Oldtag != f.Tag {
			// Requests are short: let the old one answer first.
			<-done
		}
	case plan9.Twalk:
		err = c.walk(f, r)
	case plan9.Topen:
		err = c.open(f, r)
	case plan9.Tcreate:
		err = fmt.Errorf("create %s: %w", f.Name, ErrReadOnly)
	case plan9.Tread:
		err = c.read(f, r)
	case plan9.Twrite:
		err = c.write(f, r)
	case plan9.Tclunk:
		err = c.clunk(f.Fid)
	case plan9.Tremove:
		// Remove clunks the fid whether or not it succeeds.
		if err = c.clunk(f.Fid); err == nil {
			err = ErrReadOnly
		}
	case plan9.Tstat:
		err = c.stat(f, r)
	case plan9.Twstat:
		err = ErrReadOnly
	default:
		err = fmt.Errorf("unknown 9P request type %d", f.Type)
	}
	if err != nil {
		return rerror(f, err)
	}
	return r
}

func (c *conn) attach(f, r *plan9.Fcall) error {
	if f.Afid != plan9.NOFID {
		return errors.New("authentication not required")
	}
	d, err := c.srv.fs.Stat(c.ctx, ".")
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.fids[f.Fid]; dup {
		return errors.New("fid in use")
	}
	c.fids[f.Fid] = &fid{name: ".", qid: d.Qid, uname: f.Uname}
	r.Qid = d.Qid
	return nil
}

type userKey struct{}

// User returns the user name the client gave at attach, for the calls an
// FS gets on that client's behalf (Open): no authentication vouches for
// it, so an FS may use it to refuse, never to grant more than any client
// of the listener may have.
func User(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// child returns the path of elem in directory name.
func child(name, elem string) (string, error) {
	switch {
	case elem == "..":
		if name == "." {
			return ".", nil
		}
		return path.Dir(name), nil
	case elem == "" || elem == "." || strings.ContainsRune(elem, '/') || strings.ContainsRune(elem, 0):
		return "", fmt.Errorf("bad path element %q", elem)
	case name == ".":
		return elem, nil
	}
	return name + "/" + elem, nil
}

func (c *conn) walk(f, r *plan9.Fcall) error {
	if len(f.Wname) > plan9.MAXWELEM {
		return fmt.Errorf("walk of %d names (at most %d)", len(f.Wname), plan9.MAXWELEM)
	}
	from, err := c.lookup(f.Fid)
	if err != nil {
		return err
	}
	from.mu.Lock()
	name, qid, open, uname := from.name, from.qid, from.open, from.uname
	from.mu.Unlock()
	if open {
		return errors.New("walk of an open fid")
	}
	if f.Newfid != f.Fid {
		c.mu.Lock()
		_, dup := c.fids[f.Newfid]
		c.mu.Unlock()
		if dup {
			return errors.New("fid in use")
		}
	}
	qids := make([]plan9.Qid, 0, len(f.Wname))
	for i, elem := range f.Wname {
		if qid.Type&plan9.QTDIR == 0 {
			if i == 0 {
				return errors.New("walk in a non-directory")
			}
			break
		}
		next, err := child(name, elem)
		if err != nil {
			if i == 0 {
				return err
			}
			break
		}
		d, err := c.srv.fs.Stat(c.ctx, next)
		if err != nil {
			if i == 0 {
				return err
			}
			break
		}
		name, qid = next, d.Qid
		qids = append(qids, qid)
	}
	r.Wqid = qids
	if len(qids) < len(f.Wname) {
		return nil // a partial walk leaves newfid undefined
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.Newfid == f.Fid {
		from.mu.Lock()
		from.name, from.qid = name, qid
		from.mu.Unlock()
		return nil
	}
	if _, dup := c.fids[f.Newfid]; dup {
		return errors.New("fid in use")
	}
	c.fids[f.Newfid] = &fid{name: name, qid: qid, uname: uname}
	return nil
}

func (c *conn) open(f, r *plan9.Fcall) error {
	return c.withFid(f.Fid, func(fd *fid) error {
		if fd.open {
			return errors.New("fid already open")
		}
		if f.Mode&plan9.ORCLOSE != 0 {
			return fmt.Errorf("open %s with remove-on-close: %w", fd.name, ErrReadOnly)
		}
		if fd.qid.Type&plan9.QTDIR != 0 {
			if f.Mode&3 != plan9.OREAD && f.Mode&3 != plan9.OEXEC || f.Mode&plan9.OTRUNC != 0 {
				return errors.New("is a directory")
			}
		} else {
			file, err := c.srv.fs.Open(context.WithValue(c.ctx, userKey{}, fd.uname), fd.name, f.Mode)
			if err != nil {
				return err
			}
			fd.file = file
		}
		fd.open, fd.mode = true, f.Mode
		r.Qid = fd.qid
		return nil
	})
}

// maxData is the largest Rread/Twrite payload of the session.
func (c *conn) maxData() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msize - plan9.IOHDRSZ
}

func (c *conn) read(f, r *plan9.Fcall) error {
	return c.withFid(f.Fid, func(fd *fid) error {
		if !fd.open {
			return errors.New("fid not open")
		}
		if m := fd.mode & 3; m != plan9.OREAD && m != plan9.ORDWR && m != plan9.OEXEC {
			return errors.New("fid not open for reading")
		}
		count := min(f.Count, c.maxData())
		if int64(f.Offset) < 0 {
			return errors.New("negative offset")
		}
		if fd.qid.Type&plan9.QTDIR != 0 {
			return c.readDir(fd, f.Offset, count, r)
		}
		buf := make([]byte, count)
		n, err := fd.file.ReadAt(buf, int64(f.Offset))
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		r.Data = buf[:n]
		return nil
	})
}

// readDir packs whole directory entries into one reply; reads must go on
// from where the last one ended, or restart at 0.
func (c *conn) readDir(fd *fid, off uint64, count uint32, r *plan9.Fcall) error {
	if off == 0 {
		ents, err := c.srv.fs.ReadDir(c.ctx, fd.name)
		if err != nil {
			return err
		}
		fd.dir, fd.dirIdx, fd.dirOff = ents, 0, 0
	} else if off != fd.dirOff {
		return errors.New("bad offset in directory read")
	}
	var out []byte
	for fd.dirIdx < len(fd.dir) {
		b, err := fd.dir[fd.dirIdx].Bytes()
		if err != nil {
			return fmt.Errorf("directory %s: entry %s: %w", fd.name, fd.dir[fd.dirIdx].Name, err)
		}
		if len(out)+len(b) > int(count) {
			if len(out) == 0 {
				return fmt.Errorf("directory entry of %d bytes does not fit a read of %d", len(b), count)
			}
			break
		}
		out = append(out, b...)
		fd.dirIdx++
	}
	fd.dirOff += uint64(len(out))
	r.Data = out
	return nil
}

func (c *conn) write(f, r *plan9.Fcall) error {
	return c.withFid(f.Fid, func(fd *fid) error {
		if !fd.open || fd.mode&3 != plan9.OWRITE && fd.mode&3 != plan9.ORDWR {
			return errors.New("fid not open for writing")
		}
		w, ok := fd.file.(io.WriterAt)
		if !ok {
			return ErrReadOnly
		}
		if int64(f.Offset) < 0 {
			return errors.New("negative offset")
		}
		n, err := w.WriteAt(f.Data, int64(f.Offset))
		if err != nil {
			return err
		}
		r.Count = uint32(n)
		return nil
	})
}

func (c *conn) clunk(id uint32) error {
	c.mu.Lock()
	fd, ok := c.fids[id]
	delete(c.fids, id)
	c.mu.Unlock()
	if !ok {
		return errors.New("unknown fid")
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if fd.file != nil {
		err := fd.file.Close()
		fd.file = nil
		return err
	}
	return nil
}

func (c *conn) stat(f, r *plan9.Fcall) error {
	fd, err := c.lookup(f.Fid)
	if err != nil {
		return err
	}
	fd.mu.Lock()
	name := fd.name
	fd.mu.Unlock()
	d, err := c.srv.fs.Stat(c.ctx, name)
	if err != nil {
		return err
	}
	b, err := d.Bytes()
	if err != nil {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	r.Stat = b
	return nil
}
