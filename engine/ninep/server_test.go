package ninep

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"
)

func testTree() fstest.MapFS {
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	return fstest.MapFS{
		"386/bin/ls":             {Data: []byte("ls binary"), Mode: 0o775, ModTime: mt},
		"386/bin/venti/venti":    {Data: bytes.Repeat([]byte("v"), 200000), Mode: 0o775, ModTime: mt},
		"lib/namespace":          {Data: []byte("mount -aC #s/boot /root $rootspec\n"), Mode: 0o664, ModTime: mt},
		"adm/users":              {Data: []byte("adm:adm:adm:sys\n"), Mode: 0o664, ModTime: mt},
		"tmp":                    {Mode: 0o777 | 1<<31, ModTime: mt},
		"usr/glenda/lib/profile": {Data: []byte("bind -a $home/bin/rc /bin\n"), Mode: 0o664, ModTime: mt},
	}
}

// serve starts a server of fsys on a loopback listener and returns a
// client attached to it.
func serve(t testing.TB, fsys FS) *client.Fsys {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(fsys, Options{}).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Auth("glenda", ""); err == nil || !strings.Contains(err.Error(), "authentication not required") {
		t.Fatalf("Tauth = %v, want refused", err)
	}
	fsys9, err := c.Attach(nil, "glenda", "")
	if err != nil {
		t.Fatal(err)
	}
	return fsys9
}

func owners(name string, d *plan9.Dir) {
	if strings.HasPrefix(name, "usr/glenda") {
		d.Uid, d.Gid = "glenda", "glenda"
	}
}

func TestServeTree(t *testing.T) {
	tree := testTree()
	c := serve(t, FromFS(tree, FSOptions{Meta: owners}))

	fid, err := c.Open("/386/bin/venti/venti", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(fid)
	fid.Close()
	if err != nil || !bytes.Equal(got, tree["386/bin/venti/venti"].Data) {
		t.Fatalf("read venti: %d bytes, %v", len(got), err)
	}

	d, err := c.Stat("/386/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	if d.Mode != 0o775 || d.Length != 9 || d.Uid != "sys" || d.Gid != "sys" || d.Name != "ls" || d.Qid.Type != plan9.QTFILE {
		t.Errorf("stat ls = %v", d)
	}
	if d.Mtime != uint32(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC).Unix()) {
		t.Errorf("ls mtime %d", d.Mtime)
	}
	d2, err := c.Stat("/386/bin/../bin/ls")
	if err != nil || d2.Qid != d.Qid {
		t.Errorf("qid through .. = %v, %v; want %v", d2, err, d.Qid)
	}

	d, err = c.Stat("/tmp")
	if err != nil || d.Mode != plan9.DMDIR|0o777 || d.Qid.Type != plan9.QTDIR {
		t.Errorf("stat /tmp = %v, %v", d, err)
	}
	d, err = c.Stat("/usr/glenda/lib/profile")
	if err != nil || d.Uid != "glenda" {
		t.Errorf("profile owner = %v, %v", d, err)
	}
	root, err := c.Stat("/")
	if err != nil || root.Name != "/" || root.Mode&plan9.DMDIR == 0 {
		t.Errorf("stat / = %v, %v", root, err)
	}

	dirfid, err := c.Open("/", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := dirfid.Dirreadall()
	dirfid.Close()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	if strings.Join(names, " ") != "386 adm lib tmp usr" {
		t.Errorf("ls / = %q", names)
	}

	if _, err := c.Stat("/nonexistent"); err == nil || err.Error() != "file does not exist" {
		t.Errorf("stat missing = %v", err)
	}
	if _, err := c.Open("/lib/namespace", plan9.OWRITE); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("open for writing = %v", err)
	}
	if _, err := c.Create("/lib/new", plan9.OWRITE, 0o664); err == nil {
		t.Error("create succeeded")
	}
	if err := c.Remove("/lib/namespace"); err == nil {
		t.Error("remove succeeded")
	}
	if _, err := c.Open("/386", plan9.OWRITE); err == nil {
		t.Error("a directory opened for writing")
	}
}

// TestLargeDirectory: a listing larger than one message comes in several
// reads, each of whole entries, and nothing is lost or repeated.
func TestLargeDirectory(t *testing.T) {
	tree := fstest.MapFS{}
	for i := range 3000 {
		tree["big/"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+"-"+itoa(i)] = &fstest.MapFile{Data: []byte("x")}
	}
	c := serve(t, FromFS(tree, FSOptions{}))
	fid, err := c.Open("/big", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	defer fid.Close()
	ents, err := fid.Dirreadall()
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 3000 {
		t.Fatalf("%d entries, want 3000", len(ents))
	}
	seen := map[uint64]bool{}
	for _, e := range ents {
		if seen[e.Qid.Path] {
			t.Fatalf("qid %x repeated (%s)", e.Qid.Path, e.Name)
		}
		seen[e.Qid.Path] = true
	}
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

// rpc sends one raw message and returns the decoded reply.
func rpc(t *testing.T, c net.Conn, f *plan9.Fcall) *plan9.Fcall {
	t.Helper()
	if err := plan9.WriteFcall(c, f); err != nil {
		t.Fatal(err)
	}
	r, err := plan9.ReadFcall(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestProtocolEdges drives the server with raw messages.
func TestProtocolEdges(t *testing.T) {
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- NewServer(FromFS(testTree(), FSOptions{}), Options{}).ServeConn(context.Background(), a)
	}()

	r := rpc(t, b, &plan9.Fcall{Type: plan9.Tversion, Tag: plan9.NOTAG, Msize: 100, Version: "9P2000"})
	if r.Type != plan9.Rerror {
		t.Errorf("msize 100 accepted: %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tversion, Tag: plan9.NOTAG, Msize: 8192 + plan9.IOHDRSZ, Version: "9P2000.L"})
	if r.Type != plan9.Rversion || r.Version != "9P2000" || r.Msize != 8192+plan9.IOHDRSZ {
		t.Errorf("version = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tattach, Tag: 1, Fid: 1, Afid: plan9.NOFID, Uname: "none"})
	if r.Type != plan9.Rattach || r.Qid.Type != plan9.QTDIR {
		t.Fatalf("attach = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tattach, Tag: 1, Fid: 2, Afid: 7, Uname: "none"})
	if r.Type != plan9.Rerror {
		t.Errorf("attach with an afid = %v", r)
	}
	// A partial walk returns the qids it found and leaves newfid unused.
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Twalk, Tag: 1, Fid: 1, Newfid: 2, Wname: []string{"386", "bin", "nope"}})
	if r.Type != plan9.Rwalk || len(r.Wqid) != 2 {
		t.Errorf("partial walk = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tstat, Tag: 1, Fid: 2})
	if r.Type != plan9.Rerror {
		t.Errorf("newfid defined after a partial walk: %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Twalk, Tag: 1, Fid: 1, Newfid: 2, Wname: []string{"386", "bin", "ls"}})
	if r.Type != plan9.Rwalk || len(r.Wqid) != 3 {
		t.Fatalf("walk = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Topen, Tag: 1, Fid: 2, Mode: plan9.OEXEC})
	if r.Type != plan9.Ropen {
		t.Fatalf("open OEXEC = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tread, Tag: 1, Fid: 2, Offset: 3, Count: 1 << 30})
	if r.Type != plan9.Rread || string(r.Data) != "binary" {
		t.Errorf("read = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Twalk, Tag: 1, Fid: 2, Newfid: 3})
	if r.Type != plan9.Rerror {
		t.Errorf("walk of an open fid = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tflush, Tag: 2, Oldtag: 1})
	if r.Type != plan9.Rflush {
		t.Errorf("flush = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tclunk, Tag: 1, Fid: 2})
	if r.Type != plan9.Rclunk {
		t.Errorf("clunk = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tclunk, Tag: 1, Fid: 2})
	if r.Type != plan9.Rerror {
		t.Errorf("second clunk = %v", r)
	}
	// Directory reads must continue where they stopped.
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Topen, Tag: 1, Fid: 1, Mode: plan9.OREAD})
	if r.Type != plan9.Ropen {
		t.Fatalf("open / = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tread, Tag: 1, Fid: 1, Offset: 0, Count: 8192})
	if r.Type != plan9.Rread || len(r.Data) == 0 {
		t.Fatalf("read / = %v", r)
	}
	r = rpc(t, b, &plan9.Fcall{Type: plan9.Tread, Tag: 1, Fid: 1, Offset: 5, Count: 8192})
	if r.Type != plan9.Rerror {
		t.Errorf("directory read at a bad offset = %v", r)
	}
	// A message longer than msize ends the connection.
	var hdr [7]byte
	binary.LittleEndian.PutUint32(hdr[:], 1<<20)
	hdr[4] = plan9.Tread
	b.Write(hdr[:])
	if err := <-done; err == nil || !strings.Contains(err.Error(), "protocol error") {
		t.Errorf("ServeConn after an oversized message = %v", err)
	}
	b.Close()
}

// FuzzMessages: no byte stream makes the server panic or hang; it answers
// or closes the connection.
func FuzzMessages(f *testing.F) {
	var seed bytes.Buffer
	for _, m := range []*plan9.Fcall{
		{Type: plan9.Tversion, Tag: plan9.NOTAG, Msize: 8192, Version: "9P2000"},
		{Type: plan9.Tattach, Tag: 1, Fid: 1, Afid: plan9.NOFID, Uname: "none"},
		{Type: plan9.Twalk, Tag: 2, Fid: 1, Newfid: 2, Wname: []string{"386", "bin", "ls"}},
		{Type: plan9.Topen, Tag: 3, Fid: 2, Mode: plan9.OREAD},
		{Type: plan9.Tread, Tag: 4, Fid: 2, Count: 100},
		{Type: plan9.Tstat, Tag: 5, Fid: 1},
		{Type: plan9.Topen, Tag: 6, Fid: 1},
		{Type: plan9.Tread, Tag: 7, Fid: 1, Count: 1000},
		{Type: plan9.Tflush, Tag: 8, Oldtag: 7},
		{Type: plan9.Tclunk, Tag: 9, Fid: 2},
	} {
		b, err := m.Bytes()
		if err != nil {
			f.Fatal(err)
		}
		seed.Write(b)
	}
	f.Add(seed.Bytes())
	tree := FromFS(testTree(), FSOptions{})
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := NewServer(tree, Options{Msize: 8192 + plan9.IOHDRSZ})
		rw := &fuzzConn{in: bytes.NewReader(in)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ServeConn(ctx, rw)
		if ctx.Err() != nil {
			t.Fatal("the server hung")
		}
	})
}

// fuzzConn reads a fixed stream and discards replies.
type fuzzConn struct {
	in io.Reader
}

func (c *fuzzConn) Read(b []byte) (int, error)  { return c.in.Read(b) }
func (c *fuzzConn) Write(b []byte) (int, error) { return len(b), nil }
func (c *fuzzConn) Close() error                { return nil }

// TestSymlinksHidden: symbolic links of a directory tree are neither
// listed nor walked to.
func TestSymlinksHidden(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	c := serve(t, FromFS(os.DirFS(dir), FSOptions{}))
	if _, err := c.Stat("/link"); err == nil {
		t.Error("walked to a symbolic link")
	}
	fid, err := c.Open("/", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	defer fid.Close()
	ents, err := fid.Dirreadall()
	if err != nil || len(ents) != 1 || ents[0].Name != "file" {
		t.Errorf("listing %v, %v; want only file", ents, err)
	}
}
