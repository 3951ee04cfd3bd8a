package gridfs_test

import (
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"

	"gridlord/engine/gridfs"
	"gridlord/engine/gridfs/gridfstest"
	"gridlord/engine/ninep"
)

// attach9 serves e's Plan 9 tree (owner bootes) on loopback and attaches
// a 9P2000 client as user.
func attach9(t *testing.T, e gridfs.Engine, user string) *client.Fsys {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := ninep.NewServer(gridfs.NewPlan9FS(e, gridfs.Plan9Options{Owner: func() string { return "bootes" }}), ninep.Options{})
	go srv.Serve(ctx, l)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fsys, err := c.Attach(nil, user, "")
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func read9(t *testing.T, fsys *client.Fsys, name string) string {
	t.Helper()
	f, err := fsys.Open(name, plan9.OREAD)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// TestPlan9Tree: the tree over 9P2000 lists the nodes and their files
// (and none of the password-holding ones), reads status, and runs a ctl
// command written by the host owner; another user reads but cannot write,
// and a refused command's message comes back as the write's error.
func TestPlan9Tree(t *testing.T) {
	e := gridfstest.New()
	owner := attach9(t, e, "bootes")
	root, err := owner.Open("/", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := root.Dirreadall()
	root.Close()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name)
	}
	if want := []string{"ctl", "grid.json", "nodes", "seeds", "venti"}; !slices.Equal(names, want) {
		t.Fatalf("ls / = %v, want %v", names, want)
	}
	nodes, err := owner.Open("/nodes", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ = nodes.Dirreadall()
	nodes.Close()
	if len(ents) != 3 || ents[2].Name != "cpu1" || ents[2].Mode&plan9.DMDIR == 0 {
		t.Fatalf("ls /nodes = %+v", ents)
	}
	if st := read9(t, owner, "/nodes/cpu1/status"); !strings.HasPrefix(st, "stopped ") {
		t.Fatalf("cpu1 status %q", st)
	}
	if _, err := owner.Open("/nodes/cpu1/drawterm", plan9.OREAD); err == nil {
		t.Fatal("drawterm (which holds a password) is served to Plan 9")
	}
	if _, err := owner.Open("/identity", plan9.OWRITE); err == nil {
		t.Fatal("identity is served to Plan 9")
	}
	ctl, err := owner.Open("/nodes/cpu1/ctl", plan9.OWRITE|plan9.OTRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Write([]byte("start\n")); err != nil {
		t.Fatalf("echo start >ctl: %v", err)
	}
	if _, err := ctl.Write([]byte("fly\n")); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("a bad command: %v, want the refusal's message", err)
	}
	ctl.Close()
	calls := e.Calls()
	if len(calls) != 1 || calls[0].Node != "cpu1" || strings.Join(calls[0].Words, " ") != "start" {
		t.Fatalf("engine calls %+v, want one start of cpu1", calls)
	}

	other := attach9(t, e, "glenda")
	if st := read9(t, other, "/nodes/fossil1/status"); !strings.HasPrefix(st, "stopped ") {
		t.Fatalf("glenda reads fossil1 status %q", st)
	}
	if _, err := other.Open("/nodes/cpu1/ctl", plan9.OWRITE); err == nil || !strings.Contains(err.Error(), "host owner") {
		t.Fatalf("glenda opening ctl for writing: %v, want refused", err)
	}
	if _, err := owner.Open("/nodes/nosuch/status", plan9.OREAD); err == nil {
		t.Fatal("a node that does not exist opened")
	}
}
