package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/ini"
	"gridlord/engine/plan9disk/plan9disktest"
	"gridlord/engine/qcow2"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
	"gridlord/images"
	"gridlord/testing/p9pdata"
	"gridlord/testing/testenv"
)

func testLog(t testing.TB) *slog.Logger { return testenv.Log(t) }

func shortDir(t testing.TB) string { return testenv.ShortDir(t) }

// newTestGrid makes a default grid whose fossil and cpu use a small
// Plan 9-layout image as seed "p9small", opens its engine and imports the
// seed into the embedded venti. It returns the engine and the image path.
func newTestGrid(t *testing.T) (*Engine, string) {
	t.Helper()
	img := plan9disktest.BuildNativeSmall(t)
	dir := filepath.Join(shortDir(t), "g")
	if _, err := InitGrid(dir, InitOptions{Seed: "p9small", SeedPath: img}); err != nil {
		t.Fatal(err)
	}
	e, err := Open(context.Background(), dir, Options{VentiAddr: "127.0.0.1:0", Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if _, err := e.ImportSeed(context.Background(), "p9small", img, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	return e, img
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// diskBytes reads a disk image's whole virtual disk through qcow2.
func diskBytes(t testing.TB, path string) []byte {
	t.Helper()
	im, err := qcow2.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	b := make([]byte, im.Size())
	if _, err := im.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

// checkIni verifies that the plan9.ini on a node's disk has every key the
// node's role needs, and no owned key it should not have.
func checkIni(t *testing.T, e *Engine, node string) *ini.File {
	t.Helper()
	disk, _ := e.DiskPath(node)
	b, err := ReadDiskIni(disk)
	if err != nil {
		t.Fatalf("%s: read plan9.ini back: %v", node, err)
	}
	f, err := ini.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	cfg, err := e.g.Config(node)
	e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, kv := range cfg.Ini {
		want[strings.ToLower(kv.Key)] = true
		if v, ok := f.Get(kv.Key); !ok || v != kv.Value {
			t.Errorf("%s plan9.ini: %s=%q, want %q\n%s", node, kv.Key, v, kv.Value, b)
		}
	}
	for _, k := range cfg.Owned {
		if _, ok := f.Get(k); ok && !want[strings.ToLower(k)] {
			t.Errorf("%s plan9.ini still sets owned key %s\n%s", node, k, b)
		}
	}
	return f
}

func TestSecondEngineRefused(t *testing.T) {
	dir := shortDir(t)
	if _, err := grid.New(dir); err != nil {
		t.Fatal(err)
	}
	e, err := Open(context.Background(), dir, Options{VentiAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir, Options{VentiAddr: "127.0.0.1:0"})
	want := fmt.Sprintf("grid %s is already run by engine pid %d (socket %s)", dir, os.Getpid(), filepath.Join(dir, grid.SocketName))
	if err == nil || err.Error() != want {
		t.Fatalf("second Open: %v\nwant: %s", err, want)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := Open(context.Background(), dir, Options{VentiAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	e2.Close()
}

// Two grids at once: with the venti port taken, an engine given no venti
// address serves its venti on another loopback port; one given that
// address explicitly is refused.
func TestVentiPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", grid.DefaultVentiAddr)
	if err != nil {
		t.Logf("%s is already taken here (%v): the fallback is exercised anyway", grid.DefaultVentiAddr, err)
	} else {
		defer taken.Close()
	}
	dir := shortDir(t)
	if _, err := grid.New(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dir, Options{VentiAddr: grid.DefaultVentiAddr}); err == nil || !strings.Contains(err.Error(), "give another address") {
		t.Fatalf("explicit taken address: %v", err)
	}
	e, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	addr := e.VentiAddr()
	if addr == grid.DefaultVentiAddr || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("venti address with %s taken: %s", grid.DefaultVentiAddr, addr)
	}
	c, err := venti.Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("the fallback venti does not answer: %v", err)
	}
	c.Close()
}

// EngineRunning sees the grid lock only while an engine holds it.
func TestEngineRunning(t *testing.T) {
	dir := t.TempDir()
	if _, ok := EngineRunning(dir); ok {
		t.Fatal("an engine runs on a grid nobody locked")
	}
	lk, err := lockGrid(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pid, ok := EngineRunning(dir); !ok || pid != os.Getpid() {
		t.Errorf("while locked: pid %d running %v, want %d true", pid, ok, os.Getpid())
	}
	if _, err := lockGrid(dir); err == nil {
		t.Error("the probe took the lock for itself")
	}
	lk.release()
	if _, ok := EngineRunning(dir); ok {
		t.Error("an engine still runs after the lock was released")
	}
}

// TestSeedRoundTrip: a seed imported into the venti materialises
// byte-identical; a node disk (linked clone + configuration) comes back
// byte-identical after the guest scribbles on it and the node is reset;
// a clone's disk equals its source's outside the configuration it gets.
func TestSeedRoundTrip(t *testing.T) {
	ctx := context.Background()
	e, img := newTestGrid(t)
	want := fileSum(t, img)

	p, err := e.Materialize(ctx, "p9small")
	if err != nil {
		t.Fatal(err)
	}
	if p == img || fileSum(t, p) != want {
		t.Fatalf("materialised seed %s differs from the imported %s", p, img)
	}
	seed, _ := e.g.Seed("p9small")
	if seed.SHA256 != want || !strings.HasPrefix(seed.Vac, "vac:") {
		t.Fatalf("seed record: sha256 %s vac %q", seed.SHA256, seed.Vac)
	}
	// Materialise again from venti alone (cache and source gone).
	if err := os.RemoveAll(filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(img, 0o644)
	if err := os.Rename(img, img+".gone"); err != nil {
		t.Fatal(err)
	}
	p2, err := e.Materialize(ctx, "p9small")
	if err != nil {
		t.Fatal(err)
	}
	if fileSum(t, p2) != want {
		t.Fatal("second materialisation differs")
	}

	for _, n := range []string{"fossil1", "cpu1"} {
		if err := e.prepareDisk(ctx, e.g.Node(n).ID, false); err != nil {
			t.Fatal(err)
		}
		checkIni(t, e, n)
		if e.g.Node(n).Pending() {
			t.Errorf("%s still pending after its disk was configured", n)
		}
	}
	f := checkIni(t, e, "cpu1")
	for _, k := range []string{"baud", "*nomp", "monitor"} { // user keys survive
		if _, ok := f.Get(k); !ok {
			t.Errorf("cpu1 plan9.ini lost the user's %s", k)
		}
	}
	disk, _ := e.DiskPath("cpu1")
	orig := diskBytes(t, disk)
	seedBytes, _ := os.ReadFile(p2)
	if bytes.Equal(orig, seedBytes) {
		t.Fatal("cpu1's disk equals the seed: its configuration was not written")
	}

	// The guest writes all over its disk; reset brings back the same bytes.
	im, err := qcow2.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte("scribble"), 8192)
	for off := int64(0); off < im.Size(); off += im.Size() / 7 {
		if _, err := im.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	im.Close()
	if bytes.Equal(diskBytes(t, disk), orig) {
		t.Fatal("scribbling did not change the disk")
	}
	if err := e.Reset(ctx, "cpu1"); err != nil {
		t.Fatal(err)
	}
	sameButFATTime(t, diskBytes(t, disk), orig)
	if fileSum(t, p2) != want {
		t.Fatal("the materialised seed changed")
	}

	// Clone cpu1: same bytes outside 9fat and nvram, its own sysname.
	name, err := e.Clone(ctx, "cpu1", "cpu2")
	if err != nil || name != "cpu2" {
		t.Fatalf("clone: %q %v", name, err)
	}
	f2 := checkIni(t, e, "cpu2")
	if v, _ := f2.Get("sysname"); v != "cpu2" {
		t.Errorf("cpu2 sysname=%q", v)
	}
	disk2, _ := e.DiskPath("cpu2")
	cb := diskBytes(t, disk2)
	tab, err := plan9disk.ReadTable(bytes.NewReader(cb), int64(len(cb)))
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"9fat", "nvram"} {
		if pt, ok := tab.Find(part); ok {
			for i := pt.Start * 512; i < pt.End*512; i++ {
				cb[i], orig[i] = 0, 0
			}
		}
	}
	if !bytes.Equal(cb, orig) {
		t.Fatal("cpu2's disk differs from cpu1's outside 9fat and nvram")
	}
}

// TestLinkChangeRewritesStoppedDisk: wiring changes are written at once to
// the disks of stopped nodes.
func TestLinkChangeRewritesStoppedDisk(t *testing.T) {
	ctx := context.Background()
	e, _ := newTestGrid(t)
	if err := e.prepareDisk(ctx, e.g.Node("cpu1").ID, false); err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl(ctx, []string{"unwire", "cpu1", "fossil1"}); err != nil {
		t.Fatal(err)
	}
	f := checkIni(t, e, "cpu1")
	if _, ok := f.Get("fs"); ok {
		t.Error("cpu1 still has fs= after unwire")
	}
	st, _ := e.NodeStatus("cpu1")
	if !strings.HasPrefix(st, "stopped ") || !strings.Contains(st, "pending=false") {
		t.Errorf("status %q", st)
	}
	if err := e.NodeCtl(ctx, "cpu1", []string{"wire", "fossil1"}); err != nil {
		t.Fatal(err)
	}
	f = checkIni(t, e, "cpu1")
	fossil := e.g.Node("fossil1").IP.String()
	if v, _ := f.Get("fs"); v != fossil {
		t.Errorf("cpu1 fs=%q after wire, want %s", v, fossil)
	}
	if err := e.Ctl(ctx, []string{"frob"}); err == nil || !strings.Contains(err.Error(), "verbs: add, arrange, boom, clone, down") {
		t.Errorf("unknown verb: %v", err)
	}
	lines, _ := e.Seeds()
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "p9small vac:") {
		t.Errorf("seeds: %q", lines)
	}
	if st, _ := e.NodeStatus("venti"); !strings.HasPrefix(st, "running ") {
		t.Errorf("venti status %q", st)
	}
}

// TestImportDedupAndCatalogName: importing the same image again stores no
// new blocks, and importing a catalog seed's file under its name keeps the
// catalog's family, roles and kernels.
func TestImportDedupAndCatalogName(t *testing.T) {
	ctx := context.Background()
	e, img := newTestGrid(t)
	before := e.store.Stats()
	s, err := e.ImportSeed(ctx, "plan9-4e-cpu-min", img, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := e.store.Stats()
	// Only the archive's root and directory blocks (which record the
	// archive time) may be new.
	if after.Blocks > before.Blocks+4 || after.ClientBytes <= before.ClientBytes {
		t.Errorf("second import of the same image: blocks %d -> %d, client bytes %d -> %d",
			before.Blocks, after.Blocks, before.ClientBytes, after.ClientBytes)
	}
	if s.Family != "4e" || s.Kernel("cpu") != "9pccpu" || s.CanPlay("fossil") {
		t.Errorf("catalog template lost: %+v", s)
	}
	stats, _ := e.VentiStats()
	if !strings.Contains(string(stats), fmt.Sprintf("blocks %d\n", after.Blocks)) {
		t.Errorf("venti stats:\n%s", stats)
	}
}

// sameButFATTime fails unless a and b are equal except within one 32-byte
// FAT directory entry inside the 9fat partition: plan9disk stamps the
// rewritten plan9.ini with the wall clock (2-second resolution), so two
// configurations of the same disk may differ in that entry's time fields.
func sameButFATTime(t *testing.T, a, b []byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("sizes differ: %d and %d", len(a), len(b))
	}
	tab, err := plan9disk.ReadTable(bytes.NewReader(a), int64(len(a)))
	if err != nil {
		t.Fatal(err)
	}
	fat, ok := tab.Find("9fat")
	if !ok {
		t.Fatal("no 9fat")
	}
	entry := int64(-1)
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		off := int64(i)
		if off < fat.Start*512 || off >= fat.End*512 || (entry >= 0 && off/32 != entry) {
			t.Fatalf("disks differ at byte %d (9fat is bytes %d-%d)", off, fat.Start*512, fat.End*512)
		}
		entry = off / 32
	}
	if entry >= 0 {
		t.Logf("disks differ only in the FAT directory entry at byte %d", entry*32)
	}
}

// TestSeedArenasImported imports a seed whose arenas partition holds a real
// plan9port venti: its blocks land in the grid's venti and the seed records
// it. The small fixture's arenas partition has no arena data, so it
// imports nothing (and says so on the seed).
func TestSeedArenasImported(t *testing.T) {
	ctx := context.Background()
	e, _ := newTestGrid(t)
	if s, _ := e.g.Seed("p9small"); s.VentiImported {
		t.Error("a seed whose arenas partition holds no arenas was marked VentiImported")
	}

	img := plan9disktest.BuildNative(t)
	arenas, err := p9pdata.Arenas()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	part := plan9disktest.Parts()[3]
	if part.Name != "arenas" {
		t.Fatalf("fixture partition 3 is %s", part.Name)
	}
	if _, err := f.WriteAt(arenas, (plan9disktest.Plan9Start+part.Start)*512); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	seed, err := e.ImportSeed(ctx, "p9venti", img, ImportOptions{Like: "p9small"})
	if err != nil {
		t.Fatal(err)
	}
	if !seed.VentiImported {
		t.Error("seed with a real arenas partition not marked VentiImported")
	}
	blocks, err := p9pdata.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		got, err := e.store.Read(ctx, b.Score, b.Type, venti.MaxBlock)
		if err != nil {
			t.Fatalf("block %v of the seed's venti: %v", b.Score, err)
		}
		if !bytes.Equal(got, b.Data) {
			t.Fatalf("block %v differs", b.Score)
		}
	}
	// The disk is stored with the clumps of its venti left out
	// (engine/seedstore) and comes back byte for byte.
	if seed.VacForm != images.VacFormDisk || seed.DiskSHA256 == "" {
		t.Fatalf("seed with arenas stored as %q (disk sha256 %q), want %q", seed.VacForm, seed.DiskSHA256, images.VacFormDisk)
	}
	p, err := e.Materialize(ctx, "p9venti")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(diskBytes(t, p), diskBytes(t, img)) {
		t.Fatal("the materialised disk differs from the imported image")
	}
}

// TestModelEditVerbs runs the grid commands the window's wizards send
// (identity, memory, ip, rename) and checks the saved grid.
func TestModelEditVerbs(t *testing.T) {
	ctx := context.Background()
	e, _ := newTestGrid(t)
	for _, cmd := range [][]string{
		{"identity", "cpu1", "glenda", "lab"},
		{"memory", "cpu1", "384"},
		{"ip", "cpu1", "10.0.9.77"},
		{"rename", "cpu1", "cpu9"},
	} {
		if err := e.Ctl(ctx, cmd); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	g, err := grid.Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	n := g.Node("cpu9")
	if n == nil || n.User != "glenda" || n.AuthDom != "lab" || n.MemoryMB != 384 || n.IP.String() != "10.0.9.77" {
		t.Fatalf("after the edits: %+v", n)
	}
	for _, bad := range [][]string{{"memory", "cpu9", "lots"}, {"ip", "cpu9", "nowhere"}, {"rename", "nosuch", "x"}, {"identity", "cpu9", "glenda"}} {
		if err := e.Ctl(ctx, bad); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
}

// TestDefaultPasswordGuard: a grid on the shipped seed says its host owner
// has the seed's default password (status, DefaultPasswords) and refuses to
// open its venti beyond loopback until the password is changed.
func TestDefaultPasswordGuard(t *testing.T) {
	dir := filepath.Join(shortDir(t), "g")
	if _, err := InitGrid(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dir, Options{VentiAddr: "0.0.0.0:0", Log: testLog(t)}); err == nil || !strings.Contains(err.Error(), "gridlord identity") {
		t.Fatalf("venti beyond loopback with default passwords: %v, want refused with the fix", err)
	}
	e, err := Open(context.Background(), dir, Options{VentiAddr: "127.0.0.1:0", Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if d := e.DefaultPasswords(); len(d) != 2 || d[0] != "fossil1: bootes@grid" {
		t.Fatalf("DefaultPasswords = %v", d)
	}
	if st, _ := e.NodeStatus("cpu1"); !strings.Contains(st, " password=default") {
		t.Fatalf("cpu1 status %q does not say its password is the default", st)
	}
	e.mu.Lock()
	err = e.setPasswordLocked("bootes", "grid", "n3w-grid-pass")
	e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := e.NodeStatus("cpu1"); strings.Contains(st, "password=default") {
		t.Fatalf("cpu1 status %q after the password was set", st)
	}
	if fi, err := os.Stat(filepath.Join(dir, grid.PasswordsName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("passwords file: %v %v, want mode 0600", fi, err)
	}
	e.Close()
	e, err = Open(context.Background(), dir, Options{VentiAddr: "0.0.0.0:0", Log: testLog(t)})
	if err != nil {
		t.Fatalf("venti beyond loopback once the password is changed: %v", err)
	}
	e.Close()
}

// TestEngineMirrors: a mirror added through the grid's ctl gets every
// block of the grid's venti pushed to it, /venti/mirrors shows it caught
// up, and verify through the engine passes.
func TestEngineMirrors(t *testing.T) {
	e, _ := newTestGrid(t)
	mst, err := store.Open(filepath.Join(t.TempDir(), "mirror"))
	if err != nil {
		t.Fatal(err)
	}
	defer mst.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go venti.NewServer(mst).Serve(ctx, ln)
	addr := ln.Addr().String()
	if err := e.Ctl(ctx, []string{"mirror", "add", addr}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		sts := e.mirrors.Status()
		if len(sts) == 1 && sts[0].LagBlocks == 0 && sts[0].Blocks > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up: %+v", sts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b, _ := e.VentiMirrors(); !strings.Contains(string(b), addr) {
		t.Fatalf("/venti/mirrors:\n%s", b)
	}
	if err := e.Ctl(ctx, []string{"mirror", "verify", addr}); err != nil {
		t.Fatalf("verify through the engine: %v", err)
	}
	if err := e.Ctl(ctx, []string{"mirror", "rm", addr}); err != nil {
		t.Fatal(err)
	}
	if b, _ := e.VentiMirrors(); len(b) != 0 {
		t.Fatalf("/venti/mirrors after rm:\n%s", b)
	}
}

// TestResetIdentityKeyfsOfAuthServer: with keyfs, a cpu's reset changes
// the keyfs its logins are checked against, its auth server's; making the
// auth server's own host owner's keyfs entry differ from that server's
// nvram is refused before anything is typed or written.
func TestResetIdentityKeyfsOfAuthServer(t *testing.T) {
	e, _ := newTestGrid(t)
	ctx := context.Background()
	owner := e.g.Node("fossil1").User
	before := fileSum(t, filepath.Join(e.dir, grid.FileName))
	err := e.ResetIdentity(ctx, IdentityChange{User: owner, AuthDom: "grid", Password: "s3cret-pw", Keyfs: true, Nodes: []string{"cpu1"}})
	if err == nil || !strings.Contains(err.Error(), "reset fossil1 too") {
		t.Fatalf("reset of cpu1 as %s, fossil1's own host owner: %v", owner, err)
	}
	if fileSum(t, filepath.Join(e.dir, grid.FileName)) != before {
		t.Error("the refused reset changed grid.json")
	}
	if st, err := e.Status("fossil1"); err != nil || st.State != StateStopped {
		t.Errorf("the refused reset started fossil1 (%s, %v)", st.State, err)
	}
}
