package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/app"
	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/plan9disk/plan9disktest"
	"gridlord/engine/qcow2"
)

// open runs the real engine on a fresh default grid (fake VMs, the small
// seed) and returns an App connected to it over gridfs, as the window is.
func open(t *testing.T) (*app.App, *daemontest.Grid) {
	t.Helper()
	g := daemontest.Open(t, daemontest.Options{})
	return dial(t, g.Dir), g
}

// dial connects an App to the engine serving dir; Open grid and New grid
// reach other grids' engines through connectTo.
func dial(t *testing.T, dir string) *app.App {
	t.Helper()
	r, err := app.DialRemote(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(r, app.Options{Connect: connectTo(t)})
	t.Cleanup(func() { a.Close() })
	return a
}

// connectTo stands in for the window's Connect (which starts a detached
// engine): it runs the real engine with fake VMs on the grid in dir.
func connectTo(t *testing.T) func(context.Context, string) (*app.Remote, error) {
	return func(ctx context.Context, dir string) (*app.Remote, error) {
		daemontest.Open(t, daemontest.Options{Dir: dir})
		return app.DialRemote(ctx, dir)
	}
}

// node returns the named node's view.
func node(t *testing.T, a *app.App, name string) app.NodeView {
	t.Helper()
	v, err := a.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n, ok := v.NodeByName(name)
	if !ok {
		t.Fatalf("no node %s in the view", name)
	}
	return n
}

// status reads and parses a node's status line.
func status(t *testing.T, g *daemontest.Grid, name string) gridfs.NodeStatus {
	t.Helper()
	line, err := g.Engine.NodeStatus(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gridfs.ParseNodeStatus(line)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func gridFile(t *testing.T, dir string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, grid.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// diskOf is the path of node's disk in the grid directory.
func diskOf(t *testing.T, dir, name string) string {
	t.Helper()
	g, err := grid.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(g.NodeDir(g.Node(name)), grid.DiskName)
}

// startStop boots and stops nodes, so that they have disks.
func startStop(t *testing.T, a *app.App, names ...string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range names {
		if err := a.NodeCtl(ctx, n, "start"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.DownAll(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestViewOfDefaultGrid(t *testing.T) {
	a, g := open(t)
	v, err := a.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Nodes) != 3 || len(v.Links) != 2 || v.Dir != g.Dir {
		t.Fatalf("default grid view: %d nodes, %d links in %s", len(v.Nodes), len(v.Links), v.Dir)
	}
	venti, _ := v.NodeByName("venti")
	cpu, _ := v.NodeByName("cpu1")
	if venti.State != "running" || !venti.Embedded || cpu.State != "stopped" || cpu.IP == "" || cpu.Seed != daemontest.Seed {
		t.Errorf("venti %+v cpu1 %+v", venti, cpu)
	}
	if s := a.Venti(context.Background()); s.Addr != g.Engine.VentiAddr() || s.Err != "" || s.Blocks == 0 {
		t.Errorf("venti status %+v, want addr %s and the seed's blocks", s, g.Engine.VentiAddr())
	}
}

// TestPendingOnlyWhileUp: a configuration not yet on a node's disk is
// "pending" only while its VM runs the old one; a stopped node gets it at
// once (the engine writes stopped disks) or at its next start.
func TestPendingOnlyWhileUp(t *testing.T) {
	a, _ := open(t)
	ctx := context.Background()
	if node(t, a, "cpu1").Pending || node(t, a, "fossil1").Pending {
		t.Error("fresh grid: something is pending")
	}
	if err := a.SetProperties(ctx, "cpu1", app.Properties{MemoryMB: 256}); err != nil {
		t.Fatal(err)
	}
	if node(t, a, "cpu1").Pending {
		t.Error("a change to stopped cpu1 shows as pending")
	}
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unwire(ctx, "cpu1", "fossil1"); err != nil {
		t.Fatal(err)
	}
	if n := node(t, a, "cpu1"); !n.Pending || n.State != "running" {
		t.Errorf("running cpu1 changed: %+v, want running and pending", n)
	}
	if err := a.NodeCtl(ctx, "cpu1", "stop"); err != nil {
		t.Fatal(err)
	}
	if n := node(t, a, "cpu1"); n.Pending || n.State != "stopped" {
		t.Errorf("stopped cpu1: %+v, want stopped and nothing pending", n)
	}
}

func TestToggleStartsDependenciesFirstThenStops(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	verb, err := a.Toggle(ctx, "cpu1")
	if err != nil || verb != "start" {
		t.Fatalf("toggle stopped cpu1: %q, %v", verb, err)
	}
	if n := node(t, a, "cpu1"); n.State != "running" {
		t.Fatalf("cpu1 after start: %s", n.State)
	}
	if got := strings.Join(g.Runner.Calls(), ","); got != "start fossil1,start cpu1" {
		t.Errorf("runner calls %q, want fossil1 started before cpu1", got)
	}
	verb, err = a.Toggle(ctx, "fossil1")
	if err != nil || verb != "stop" {
		t.Fatalf("toggle running fossil1: %q, %v", verb, err)
	}
	if got := strings.Join(g.Runner.Calls()[2:], ","); got != "stop cpu1,stop fossil1" {
		t.Errorf("runner calls %q, want cpu1 stopped before fossil1", got)
	}
}

func TestInvalidWireChangesNothing(t *testing.T) {
	a, g := open(t)
	before := gridFile(t, g.Dir)
	_, err := a.Wire(context.Background(), "venti", "cpu1")
	var we *grid.WiringError
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "venti") {
		t.Fatalf("wire venti → cpu1: %v, want a WiringError", err)
	}
	if !bytes.Equal(before, gridFile(t, g.Dir)) {
		t.Error("a refused wire changed grid.json")
	}
}

// TestWireToSecondFossilRewires: dragging a cpu onto a second fossil means
// "boot from that one": the root link moves, in the model and, the disk
// being stopped, at once on cpu1's disk (an edit rewrites stopped disks).
func TestWireToSecondFossilRewires(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	startStop(t, a, "cpu1")
	if _, err := a.AddNode(ctx, "fossil", "fossil2", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.CanWire(ctx, "cpu1", "fossil2"); err != nil {
		t.Fatalf("CanWire cpu1 → fossil2 (a rewire): %v", err)
	}
	plan, err := a.Wire(ctx, "cpu1", "fossil2")
	if err != nil {
		t.Fatalf("wire cpu1 → fossil2: %v", err)
	}
	if plan.Replaces != "fossil1" || plan.Kind != "root" {
		t.Errorf("plan %+v, want the root link to fossil1 replaced", plan)
	}
	m, err := grid.Load(g.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if root := m.Target(m.Node("cpu1"), grid.LinkRoot); root == nil || root.Name != "fossil2" {
		t.Errorf("cpu1 roots from %v, want fossil2", root)
	}
	ini, err := a.Ini(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "fs=" + m.Node("fossil2").IP.String() + "\n"; !strings.Contains(string(ini), want) {
		t.Errorf("cpu1's plan9.ini on its stopped disk right after the rewire lacks %q:\n%s", want, ini)
	}
	// Wiring to what it is already wired to is still refused.
	if _, err := a.Wire(ctx, "cpu1", "fossil2"); err == nil {
		t.Error("wiring cpu1 to fossil2 twice was accepted")
	}
}

// TestAddWithoutSeed: a node added with no seed gets the grid's default
// seed (the engine's add KIND NAME [SEED]), and starts.
func TestAddWithoutSeed(t *testing.T) {
	a, _ := open(t)
	ctx := context.Background()
	name, err := a.AddNode(ctx, "cpu", "", "")
	if err != nil || name != "cpu2" {
		t.Fatalf("add a cpu without a seed: %q, %v", name, err)
	}
	if n := node(t, a, "cpu2"); n.Seed != daemontest.Seed {
		t.Errorf("cpu2's seed is %q, want the grid's %s", n.Seed, daemontest.Seed)
	}
	if _, err := a.Wire(ctx, "cpu2", "fossil1"); err != nil {
		t.Fatal(err)
	}
	if err := a.NodeCtl(ctx, "cpu2", "start"); err != nil {
		t.Fatalf("start cpu2: %v", err)
	}
}

// TestRemoveDeletesTheNodesDirectory: remove takes a stopped node, its
// links and its directory (the disk too, as the Delete dialog says), and
// refuses a running node.
func TestRemoveDeletesTheNodesDirectory(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	startStop(t, a, "cpu1")
	disk := diskOf(t, g.Dir, "cpu1")
	if _, err := os.Stat(disk); err != nil {
		t.Fatal(err)
	}
	if err := a.NodeCtl(ctx, "fossil1", "start"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(ctx, "fossil1"); err == nil || !strings.Contains(err.Error(), "stop it") {
		t.Errorf("remove running fossil1: %v, want a refusal", err)
	}
	if err := a.Remove(ctx, "cpu1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(disk)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cpu1's directory after remove: %v, want it gone", err)
	}
	v, _ := a.View(ctx)
	if _, ok := v.NodeByName("cpu1"); ok || len(v.Links) != 1 {
		t.Errorf("after remove: %d links, cpu1 still there: %v", len(v.Links), ok)
	}
}

// TestStatusFields: the status line the window reads has the state, the
// VM's pid and its forwards while it runs, none when stopped.
func TestStatusFields(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	s := status(t, g, "cpu1")
	if s.State != "running" || s.Kind != "cpu" || s.IP != node(t, a, "cpu1").IP || s.PID == 0 || s.Forward(grid.CPUPort) == "" || s.Pending {
		t.Errorf("running cpu1: %+v", s)
	}
	if n := node(t, a, "cpu1"); n.DefaultPassword != s.DefaultPassword {
		t.Errorf("view's default password %v, status's %v", n.DefaultPassword, s.DefaultPassword)
	}
	if err := a.NodeCtl(ctx, "cpu1", "stop"); err != nil {
		t.Fatal(err)
	}
	if s := status(t, g, "cpu1"); s.State != "stopped" || s.PID != 0 || len(s.Forwards) != 0 {
		t.Errorf("stopped cpu1: %+v", s)
	}
	if s := status(t, g, "venti"); !s.Embedded || s.Addr != g.Engine.VentiAddr() {
		t.Errorf("embedded venti: %+v", s)
	}
}

// TestDrawtermTargetUsesTheGridsAuthServer: drawterm to cpu1 reaches its
// cpu port and the ticket and secstore ports of the grid's auth server
// (fossil1), not cpu1's own (a cpu serves no auth).
func TestDrawtermTargetUsesTheGridsAuthServer(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	r, err := app.DialRemote(ctx, g.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tg, err := r.Drawterm(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	cpu, auth := status(t, g, "cpu1"), status(t, g, "fossil1")
	if tg.CPU != cpu.Forward(grid.CPUPort) || tg.Auth != auth.Forward(grid.AuthPort) || tg.Auth == cpu.Forward(grid.AuthPort) || tg.Secstore != auth.Forward(grid.SecstorePort) {
		t.Errorf("drawterm target %+v; cpu1 forwards %v, fossil1's %v", tg, cpu.Forwards, auth.Forwards)
	}
}

// readNvram reads the nvram record on a qcow2 disk.
func readNvram(t *testing.T, path string) *nvram.Record {
	t.Helper()
	d, err := qcow2.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	im, err := plan9disk.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := im.ReadNvram()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestResetIdentityWritesNvram: the engine writes the new identity into
// each node's nvram (making a disk where there is none, stopping a
// running node first); a weak password changes nothing.
func TestResetIdentityWritesNvram(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	before := gridFile(t, g.Dir)
	for _, pw := range []string{"", "short1", "onlyletters", "glenda123"} {
		if _, err := a.ResetIdentity(ctx, app.Identity{User: "glenda", AuthDom: "lab", Password: pw}, "cpu1"); err == nil {
			t.Errorf("password %q accepted", pw)
		}
	}
	if !bytes.Equal(before, gridFile(t, g.Dir)) {
		t.Fatal("a refused reset changed grid.json")
	}
	if err := a.NodeCtl(ctx, "fossil1", "start"); err != nil {
		t.Fatal(err)
	}
	written, err := a.ResetIdentity(ctx, app.Identity{User: "glenda", AuthDom: "lab", Password: "s3cret-pw"}, "cpu1", "fossil1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(written, ",") != "cpu1,fossil1" {
		t.Errorf("written %q", written)
	}
	for _, n := range []string{"cpu1", "fossil1"} {
		r := readNvram(t, diskOf(t, g.Dir, n))
		if r.AuthID != "glenda" || r.AuthDom != "lab" || r.MachKey != nvram.PassToDESKey("s3cret-pw") {
			t.Errorf("%s nvram on disk: %s@%s key %x", n, r.AuthID, r.AuthDom, r.MachKey)
		}
		if v := node(t, a, n); v.User != "glenda" || v.AuthDom != "lab" || v.State != "stopped" {
			t.Errorf("%s after reset: %s@%s %s", n, v.User, v.AuthDom, v.State)
		}
	}
}

// TestResetIdentityFreshDisk: a fresh disk is the engine's reset first.
func TestResetIdentityFreshDisk(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	startStop(t, a, "cpu1")
	disk := diskOf(t, g.Dir, "cpu1")
	fi, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := a.ResetIdentity(ctx, app.Identity{User: "glenda", AuthDom: "lab", Password: "s3cret-pw", FreshDisk: true}, "cpu1"); err != nil {
		t.Fatal(err)
	}
	if fi2, err := os.Stat(disk); err != nil || os.SameFile(fi, fi2) {
		t.Errorf("cpu1's disk was not recreated (%v)", err)
	}
	if r := readNvram(t, disk); r.AuthID != "glenda" {
		t.Errorf("fresh disk's nvram: %s", r.AuthID)
	}
}

// TestClonePreviewThenClone: the preview changes nothing; the clone of a
// stopped node gets a copy of its disk at once; a running source is
// refused.
func TestClonePreviewThenClone(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	startStop(t, a, "cpu1")
	if _, err := a.AddNode(ctx, "fossil", "fossil2", ""); err != nil {
		t.Fatal(err)
	}
	before := gridFile(t, g.Dir)
	spec := app.CloneSpec{Source: "cpu1", Name: "cpu2", MemoryMB: 768, WireTo: []string{"fossil2"}}
	cfg, err := a.PreviewClone(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := grid.Load(g.Dir)
	fossil2IP := m.Node("fossil2").IP.String()
	if fs, _ := cfg.Value("fs"); fs != fossil2IP || cfg.Name != "cpu2" {
		t.Fatalf("preview of cpu2: name %s fs=%s, want fs=%s", cfg.Name, fs, fossil2IP)
	}
	if !bytes.Equal(before, gridFile(t, g.Dir)) {
		t.Fatal("preview changed grid.json")
	}
	name, err := a.Clone(ctx, spec)
	if err != nil || name != "cpu2" {
		t.Fatalf("clone: %s, %v", name, err)
	}
	m, _ = grid.Load(g.Dir)
	n := m.Node("cpu2")
	if n == nil || n.MemoryMB != 768 || n.CloneOf == nil || *n.CloneOf != m.Node("cpu1").ID {
		t.Fatalf("cpu2 in grid.json: %+v", n)
	}
	if _, err := os.Stat(diskOf(t, g.Dir, "cpu2")); err != nil {
		t.Errorf("cpu2 has no disk right after the clone: %v", err)
	}
	ini, _ := a.Ini(ctx, "cpu2")
	if !strings.Contains(string(ini), "fs="+fossil2IP+"\n") {
		t.Errorf("cpu2's disk is not configured for fossil2:\n%s", ini)
	}
	// A kind change is refused and changes nothing; so is a running source.
	before = gridFile(t, g.Dir)
	if _, err := a.Clone(ctx, app.CloneSpec{Source: "cpu1", Kind: "fossil"}); err == nil {
		t.Error("clone of a cpu as a fossil accepted")
	}
	if !bytes.Equal(before, gridFile(t, g.Dir)) {
		t.Error("refused clone changed grid.json")
	}
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Clone(ctx, app.CloneSpec{Source: "cpu1", Name: "cpu3"}); err == nil || !strings.Contains(err.Error(), "running") {
		t.Errorf("clone of running cpu1: %v", err)
	}
	if v, _ := a.View(ctx); len(v.Nodes) != 5 {
		t.Errorf("a refused clone added a node: %d nodes", len(v.Nodes))
	}
}

func TestNewGridAndOpen(t *testing.T) {
	a, _ := open(t)
	ctx := context.Background()
	dir := filepath.Join(daemontest.ShortDir(t), "lab")
	spec := app.NewGridSpec{Dir: dir, Seed: grid.DefaultSeed, AuthDom: "lab", User: "glenda"}
	if err := a.NewGrid(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := a.NewGrid(ctx, spec); err == nil {
		t.Error("a second grid in the same directory was accepted")
	}
	v, err := a.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Dir != dir || len(v.Nodes) != 3 {
		t.Fatalf("opened %s with %d nodes", v.Dir, len(v.Nodes))
	}
	if cpu, _ := v.NodeByName("cpu1"); cpu.User != "glenda" || cpu.AuthDom != "lab" {
		t.Errorf("cpu1 identity %s@%s", cpu.User, cpu.AuthDom)
	}
	if err := a.OpenGrid(ctx, filepath.Join(dir, "nothing")); err == nil {
		t.Error("opened a directory without a grid")
	}
}

// TestNewGridLocalImageStoredInVenti: the New grid wizard's local image is
// stored in the new grid's venti by its engine (seed import, as gridlord
// init does), so its first start finds it there.
func TestNewGridLocalImageStoredInVenti(t *testing.T) {
	a, _ := open(t)
	ctx := context.Background()
	img := plan9disktest.BuildNativeSmall(t)
	dir := filepath.Join(daemontest.ShortDir(t), "lab")
	if err := a.NewGrid(ctx, app.NewGridSpec{Dir: dir, Seed: grid.DefaultSeed, Image: img, AuthDom: "lab", User: "glenda"}); err != nil {
		t.Fatal(err)
	}
	m, err := grid.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	seed := grid.SeedNameFromFile(img)
	s, err := m.Seed(seed)
	if err != nil || s.Vac == "" || m.Node("cpu1").Seed != seed {
		t.Fatalf("seed %s in the new grid: %+v, %v; cpu1's seed %q", seed, s, err, m.Node("cpu1").Seed)
	}
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatalf("first start of the new grid: %v", err)
	}
}

func TestConsole(t *testing.T) {
	a, g := open(t)
	ctx := context.Background()
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	c, err := a.OpenConsole(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	expectConsole(t, c, "cpu1# ")
	io.WriteString(c, "date\n")
	expectConsole(t, c, "date: not found")
	c.Close()
	if s := status(t, g, "cpu1"); s.State != "running" {
		t.Errorf("closing the console changed the VM: %+v", s)
	}
	if typed := g.Runner.Typed("cpu1"); typed[len(typed)-1] != "date" {
		t.Errorf("typed at cpu1: %q", typed)
	}
}

// expectConsole reads c until want appears.
func expectConsole(t *testing.T, c io.Reader, want string) {
	t.Helper()
	var seen strings.Builder
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 256)
		for !strings.Contains(seen.String(), want) {
			n, err := c.Read(buf)
			seen.Write(buf[:n])
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("console ended before %q: %v (saw %q)", want, err, seen.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("console never said %q", want)
	}
}
