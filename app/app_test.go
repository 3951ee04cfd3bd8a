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
	"gridlord/app/apptest"
	"gridlord/engine/grid"
	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/plan9disk/plan9disktest"
)

// open returns an App over a real Local backend (embedded venti on a free
// loopback port, the default grid in a temporary directory) whose VMs are
// apptest's fake runner; runner may be nil for "no engine".
func open(t *testing.T, runner app.Runner) (*app.App, *app.Local) {
	t.Helper()
	l, err := app.OpenLocal(context.Background(), app.LocalOptions{DataDir: t.TempDir(), VentiAddr: "127.0.0.1:0", Runner: runner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return app.New(l, nil), l
}

// waitState waits, woken by change events, until node is in state.
func waitState(t *testing.T, b app.Backend, node, state string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	changes := b.Changes(ctx) // subscribe before looking: no change is missed
	for {
		st, err := b.NodeStatus(context.Background(), node)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(st, state+" ") {
			return
		}
		if _, ok := <-changes; !ok {
			t.Fatalf("waiting for %s to be %s (last %q): %v %v", node, state, st, ctx.Err(), b.Err())
		}
	}
}

func gridFile(t *testing.T, b app.Backend) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.GridDir(), grid.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestViewOfDefaultGrid(t *testing.T) {
	a, l := open(t, nil)
	v, err := a.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Nodes) != 3 || len(v.Links) != 2 {
		t.Fatalf("default grid view: %d nodes, %d links", len(v.Nodes), len(v.Links))
	}
	venti, _ := v.NodeByName("venti")
	cpu, _ := v.NodeByName("cpu1")
	if venti.State != "running" || !venti.Embedded || cpu.State != "stopped" || cpu.IP == "" || cpu.Seed == "" {
		t.Errorf("venti %+v cpu1 %+v", venti, cpu)
	}
	if s := a.Venti(context.Background()); s.Addr != l.VentiAddr() || s.Err != "" {
		t.Errorf("venti status %+v, want addr %s", s, l.VentiAddr())
	}
}

// TestPendingOnlyWhileUp: a configuration not yet on a node's disk is
// "pending" only while its VM runs the old one; a stopped node (a fresh
// grid's, or one changed while stopped) gets it at its next start anyway.
func TestPendingOnlyWhileUp(t *testing.T) {
	r := apptest.NewRunner(20 * time.Millisecond)
	a, l := open(t, r)
	ctx := context.Background()
	pending := func() map[string]bool {
		t.Helper()
		v, err := a.View(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, n := range v.Nodes {
			m[n.Name] = n.Pending
		}
		return m
	}
	if p := pending(); p["fossil1"] || p["cpu1"] {
		t.Errorf("fresh grid: pending %v, want nothing pending", p)
	}
	if err := l.Ctl(ctx, "memory", "cpu1", "256"); err != nil {
		t.Fatal(err)
	}
	if p := pending(); p["cpu1"] {
		t.Error("a change to stopped cpu1 shows as pending")
	}
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	waitState(t, l, "cpu1", "running")
	if err := l.Ctl(ctx, "memory", "cpu1", "384"); err != nil {
		t.Fatal(err)
	}
	if p := pending(); !p["cpu1"] {
		t.Error("running cpu1 changed: not shown as pending")
	}
	if err := a.NodeCtl(ctx, "cpu1", "stop"); err != nil {
		t.Fatal(err)
	}
	waitState(t, l, "cpu1", "stopped")
	if p := pending(); p["cpu1"] {
		t.Error("stopped cpu1 still pending")
	}
}

func TestStartWithoutEngineSaysSo(t *testing.T) {
	a, _ := open(t, nil)
	_, err := a.Toggle(context.Background(), "cpu1")
	if !errors.Is(err, app.ErrEngineNotRunning) {
		t.Fatalf("toggle without an engine: %v, want ErrEngineNotRunning", err)
	}
}

func TestToggleStartsDependenciesFirstThenStops(t *testing.T) {
	r := apptest.NewRunner(20 * time.Millisecond)
	a, l := open(t, r)
	ctx := context.Background()
	verb, err := a.Toggle(ctx, "cpu1")
	if err != nil || verb != "start" {
		t.Fatalf("toggle stopped cpu1: %q, %v", verb, err)
	}
	waitState(t, l, "cpu1", "running")
	if got := strings.Join(r.Calls(), ","); got != "start fossil1,start cpu1" {
		t.Errorf("runner calls %q, want fossil1 started before cpu1", got)
	}
	verb, err = a.Toggle(ctx, "fossil1")
	if err != nil || verb != "stop" {
		t.Fatalf("toggle running fossil1: %q, %v", verb, err)
	}
	waitState(t, l, "fossil1", "stopped")
	if got := strings.Join(r.Calls()[2:], ","); got != "stop cpu1,stop fossil1" {
		t.Errorf("runner calls %q, want cpu1 stopped before fossil1", got)
	}
}

func TestInvalidWireChangesNothing(t *testing.T) {
	a, l := open(t, nil)
	ctx := context.Background()
	before := gridFile(t, l)
	_, err := a.Wire(ctx, "venti", "cpu1")
	var we *grid.WiringError
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "venti") {
		t.Fatalf("wire venti → cpu1: %v, want a WiringError", err)
	}
	if after := gridFile(t, l); !bytes.Equal(before, after) {
		t.Error("a refused wire changed grid.json")
	}
}

// TestWireToSecondFossilRewires: dragging a cpu onto a second fossil means
// "boot from that one": the root link moves, in the model and in the
// configuration the cpu gets.
func TestWireToSecondFossilRewires(t *testing.T) {
	a, l := open(t, nil)
	ctx := context.Background()
	if _, err := a.AddNode(ctx, "fossil", "fossil2", grid.DefaultSeed); err != nil {
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
	g, err := grid.Load(l.GridDir())
	if err != nil {
		t.Fatal(err)
	}
	if root := g.Target(g.Node("cpu1"), grid.LinkRoot); root == nil || root.Name != "fossil2" {
		t.Errorf("cpu1 roots from %v, want fossil2", root)
	}
	if n := len(g.Links); n != 2 {
		t.Errorf("%d links after the rewire, want 2 (cpu1 → fossil2, fossil1 → venti)", n)
	}
	c, err := g.Config("cpu1")
	if err != nil {
		t.Fatal(err)
	}
	if fs, _ := c.Value("fs"); fs != g.Node("fossil2").IP.String() {
		t.Errorf("cpu1 fs=%q on disk model, want fossil2's %s", fs, g.Node("fossil2").IP)
	}
	// A fossil dragged onto a second venti archives there instead.
	if _, err := a.AddNode(ctx, "venti", "venti2", grid.DefaultSeed); err != nil {
		t.Fatal(err)
	}
	if plan, err := a.Wire(ctx, "fossil1", "venti2"); err != nil || plan.Replaces != "venti" || plan.Kind != "archive" {
		t.Errorf("wire fossil1 → venti2: %+v, %v; want the archive link to venti replaced", plan, err)
	}
	// Wiring to what it is already wired to is still refused.
	if _, err := a.Wire(ctx, "cpu1", "fossil2"); err == nil {
		t.Error("wiring cpu1 to fossil2 twice was accepted")
	}
}

// addDisk gives node a (raw) Plan 9 disk where the engine keeps it.
func addDisk(t *testing.T, b app.Backend, node string) string {
	t.Helper()
	g, err := b.Grid(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	src := plan9disktest.BuildNativeSmall(t)
	dir := app.NodeDir(b.GridDir(), g.Node(node))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, app.DiskNames()[0])
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readNvram(t *testing.T, path string) *nvram.Record {
	t.Helper()
	f, err := plan9disk.OpenFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im, err := plan9disk.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := im.ReadNvram()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResetIdentityWritesNvram(t *testing.T) {
	a, l := open(t, nil)
	ctx := context.Background()
	disk := addDisk(t, l, "cpu1")
	before := gridFile(t, l)
	for _, pw := range []string{"", "short1", "onlyletters", "glenda123"} {
		_, err := app.ResetIdentity(ctx, a.Backend(), app.Identity{User: "glenda", AuthDom: "lab", Password: pw}, "cpu1")
		if err == nil {
			t.Errorf("password %q accepted", pw)
		}
	}
	if !bytes.Equal(before, gridFile(t, l)) {
		t.Fatal("a refused reset changed grid.json")
	}
	res, err := app.ResetIdentity(ctx, a.Backend(), app.Identity{User: "glenda", AuthDom: "lab", Password: "s3cret-pw"}, "cpu1", "fossil1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Written, ",") != "cpu1" || strings.Join(res.Deferred, ",") != "fossil1" {
		t.Errorf("reset result %+v", res)
	}
	r := readNvram(t, disk)
	if r.AuthID != "glenda" || r.AuthDom != "lab" || r.MachKey != nvram.PassToDESKey("s3cret-pw") {
		t.Errorf("nvram on disk: %s@%s key %x", r.AuthID, r.AuthDom, r.MachKey)
	}
	g, _ := grid.Load(l.GridDir())
	for _, n := range []string{"cpu1", "fossil1"} {
		if u, d := g.Node(n).User, g.Node(n).AuthDom; u != "glenda" || d != "lab" {
			t.Errorf("grid.json %s identity %s@%s", n, u, d)
		}
	}
}

func TestResetRefusesRunningNode(t *testing.T) {
	r := apptest.NewRunner(time.Millisecond)
	a, l := open(t, r)
	ctx := context.Background()
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	waitState(t, l, "cpu1", "running")
	_, err := app.ResetIdentity(ctx, l, app.Identity{User: "glenda", AuthDom: "lab", Password: "s3cret-pw"}, "cpu1")
	if err == nil || !strings.Contains(err.Error(), "stop it") {
		t.Fatalf("reset of a running node: %v", err)
	}
}

func TestClonePreviewThenClone(t *testing.T) {
	a, l := open(t, nil)
	ctx := context.Background()
	if _, err := a.AddNode(ctx, "fossil", "fossil2", grid.DefaultSeed); err != nil {
		t.Fatal(err)
	}
	before := gridFile(t, l)
	spec := app.CloneSpec{Source: "cpu1", Name: "cpu2", MemoryMB: 768, WireTo: []string{"fossil2"}}
	cfg, err := a.PreviewClone(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := l.Grid(ctx)
	fossil2IP := g.Node("fossil2").IP.String()
	if fs, _ := cfg.Value("fs"); fs != fossil2IP || cfg.Name != "cpu2" {
		t.Fatalf("preview of cpu2: name %s fs=%s, want fs=%s", cfg.Name, fs, fossil2IP)
	}
	if !bytes.Equal(before, gridFile(t, l)) {
		t.Fatal("preview changed grid.json")
	}
	name, err := a.Clone(ctx, spec)
	if err != nil || name != "cpu2" {
		t.Fatalf("clone: %s, %v", name, err)
	}
	g, err = grid.Load(l.GridDir())
	if err != nil {
		t.Fatal(err)
	}
	n := g.Node("cpu2")
	if n == nil || n.MemoryMB != 768 || n.CloneOf == nil || *n.CloneOf != g.Node("cpu1").ID {
		t.Fatalf("cpu2 in grid.json: %+v", n)
	}
	got, _ := g.Config("cpu2")
	if fs, _ := got.Value("fs"); fs != fossil2IP {
		t.Errorf("cpu2 fs=%s in grid.json's config, want %s", fs, fossil2IP)
	}
	// Cloning a kind change is refused, and changes nothing.
	before = gridFile(t, l)
	if _, err := a.Clone(ctx, app.CloneSpec{Source: "cpu1", Kind: "fossil"}); err == nil {
		t.Error("clone of a cpu as a fossil accepted")
	}
	if !bytes.Equal(before, gridFile(t, l)) {
		t.Error("refused clone changed grid.json")
	}
}

func TestNewGridAndOpen(t *testing.T) {
	a, _ := open(t, nil)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "lab")
	if err := app.NewGrid(app.NewGridSpec{Dir: dir, Seed: grid.DefaultSeed, AuthDom: "lab", User: "glenda"}); err != nil {
		t.Fatal(err)
	}
	if err := app.NewGrid(app.NewGridSpec{Dir: dir, Seed: grid.DefaultSeed, AuthDom: "lab", User: "glenda"}); err == nil {
		t.Error("a second grid in the same directory was accepted")
	}
	if err := a.OpenGrid(ctx, dir); err != nil {
		t.Fatal(err)
	}
	v, err := a.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Dir != dir || len(v.Nodes) != 3 {
		t.Fatalf("opened %s with %d nodes", v.Dir, len(v.Nodes))
	}
	cpu, _ := v.NodeByName("cpu1")
	if cpu.User != "glenda" || cpu.AuthDom != "lab" {
		t.Errorf("cpu1 identity %s@%s", cpu.User, cpu.AuthDom)
	}
}

func TestImportSeedProgressAndCancel(t *testing.T) {
	img := plan9disktest.BuildNativeSmall(t)
	var last, total int64
	s, err := app.ImportSeed(context.Background(), img, "mydisk", grid.DefaultSeed, func(d, t int64) { last, total = d, t })
	if err != nil {
		t.Fatal(err)
	}
	if last != total || total == 0 || s.Name != "mydisk" || len(s.SHA256) != 64 {
		t.Errorf("import: progress %d/%d, seed %+v", last, total, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := app.ImportSeed(ctx, img, "mydisk", grid.DefaultSeed, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled import: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "g")
	if err := app.NewGrid(app.NewGridSpec{Dir: dir, Local: &s, AuthDom: "lab", User: "glenda"}); err != nil {
		t.Fatal(err)
	}
	g, err := grid.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if g.Node("cpu1").Seed != "mydisk" || len(g.Seeds) != 1 {
		t.Errorf("grid from a local seed: cpu1 seed %q, %d seed records", g.Node("cpu1").Seed, len(g.Seeds))
	}
}

func TestConsoleThroughLocal(t *testing.T) {
	r := apptest.NewRunner(time.Millisecond)
	a, l := open(t, r)
	ctx := context.Background()
	if err := a.NodeCtl(ctx, "cpu1", "start"); err != nil {
		t.Fatal(err)
	}
	waitState(t, l, "cpu1", "running")
	c, err := l.OpenConsole(ctx, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	expectConsole(t, c, "cpu1: ready")
	io.WriteString(c, "date\n")
	expectConsole(t, c, "echo: date")
	c.Close()
	if st, _ := l.NodeStatus(ctx, "cpu1"); !strings.HasPrefix(st, "running") {
		t.Errorf("closing the console changed the VM: %s", st)
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

func TestResetIdentityFreshDiskAsksTheEngine(t *testing.T) {
	r := apptest.NewRunner(time.Millisecond)
	_, l := open(t, r)
	ctx := context.Background()
	res, err := app.ResetIdentity(ctx, l, app.Identity{User: "glenda", AuthDom: "lab", Password: "s3cret-pw", FreshDisk: true}, "cpu1")
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Join(r.Calls(), ","); c != "reset cpu1" || strings.Join(res.Deferred, ",") != "cpu1" {
		t.Errorf("runner calls %q, result %+v", c, res)
	}
	// Without an engine the fresh disk cannot be made, and nothing changes.
	_, l2 := open(t, nil)
	before := gridFile(t, l2)
	if _, err := app.ResetIdentity(ctx, l2, app.Identity{User: "glenda", AuthDom: "lab", Password: "s3cret-pw", FreshDisk: true}, "cpu1"); !errors.Is(err, app.ErrEngineNotRunning) {
		t.Errorf("fresh reset without an engine: %v", err)
	}
	if !bytes.Equal(before, gridFile(t, l2)) {
		t.Error("a failed fresh reset changed grid.json")
	}
}
