package mirror

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

var ctx = context.Background()

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// quick are the options of the tests: small syncs, fast retries.
var quick = []Option{WithSync(256<<10, 50*time.Millisecond), WithBackoff(10*time.Millisecond, 100*time.Millisecond), WithDialTimeout(2 * time.Second)}

func openStore(t testing.TB, dir string, opts ...store.Option) *store.Store {
	t.Helper()
	st, err := store.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// blk is a block written to a test store.
type blk struct {
	s venti.Score
	t venti.Type
	d []byte
}

// fill writes n distinct blocks (seeded by seed; random ones stored raw,
// text ones compressed) and syncs.
func fill(t testing.TB, st venti.Store, seed, n int) []blk {
	t.Helper()
	var out []blk
	for i := range n {
		r := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
		d := make([]byte, 512+r.IntN(8192))
		for j := range d {
			d[j] = byte(r.Uint32())
			if i%2 == 1 && j%8 != 0 {
				d[j] = 'm'
			}
		}
		ty := venti.DataType
		if i%7 == 0 {
			ty = venti.DirType
		}
		s, err := st.Write(ctx, ty, d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, blk{s, ty, d})
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return out
}

// has checks that st holds every block of bs.
func has(t testing.TB, st venti.Reader, bs []blk) {
	t.Helper()
	for i, b := range bs {
		got, err := st.Read(ctx, b.s, b.t, venti.MaxBlock)
		if err != nil || !bytes.Equal(got, b.d) {
			t.Fatalf("block %d %v/%v: %v", i, b.s, b.t, err)
		}
	}
}

// counting is a store that counts writes and can refuse Tsync.
type counting struct {
	venti.Store
	writes   atomic.Int64
	failSync atomic.Bool
	delay    atomic.Int64 // nanoseconds per write
}

func (c *counting) Write(ctx context.Context, t venti.Type, d []byte) (venti.Score, error) {
	c.writes.Add(1)
	if d := c.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	return c.Store.Write(ctx, t, d)
}

func (c *counting) Sync(ctx context.Context) error {
	if c.failSync.Load() {
		return errors.New("disk on fire")
	}
	return c.Store.Sync(ctx)
}

// server is an in-process venti over a store on loopback, which can be
// stopped and started again on the same address.
type server struct {
	t      testing.TB
	st     *counting
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

func startServer(t testing.TB, st venti.Store) *server {
	t.Helper()
	s := &server{t: t, st: &counting{Store: st}, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 100 { // the port may linger a moment after a stop
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	sctx, cancel := context.WithCancel(ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		venti.NewServer(s.st).Serve(sctx, ln)
	}()
}

// stop closes the listener and every connection.
func (s *server) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// caughtUp reports whether the mirror's saved position is the store's
// durable end with no lag.
func caughtUp(s Status) bool {
	return s.Pos == s.Durable && s.LagBlocks == 0 && s.LagBytes == 0
}

func statusOf(t testing.TB, mg *Manager, addr string) Status {
	t.Helper()
	m, err := mg.Mirror(addr)
	if err != nil {
		t.Fatal(err)
	}
	return m.Status()
}

// mirrorTo starts a manager of prim's mirrors with the one at addr.
func mirrorTo(t testing.TB, prim *store.Store, addr string) (*Manager, string) {
	t.Helper()
	mg, err := New(prim, t.TempDir(), testLog(t), quick...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mg.Close() })
	canon, err := mg.Add(addr)
	if err != nil {
		t.Fatal(err)
	}
	mg.Start(ctx)
	return mg, canon
}

// TestMirrorPushes mirrors a store, follows new writes, and verifies.
func TestMirrorPushes(t *testing.T) {
	prim := openStore(t, t.TempDir(), store.WithArenaSize(1<<20))
	bs := fill(t, prim, 1, 400)
	mst := openStore(t, t.TempDir())
	srv := startServer(t, mst)
	mg, err := New(prim, t.TempDir(), testLog(t), quick...)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	addr, err := mg.Add(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	mg.Start(ctx)
	waitFor(t, "the mirror to catch up", time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	has(t, mst, bs)
	st := statusOf(t, mg, addr)
	if st.Blocks != 400 || st.Skipped != 0 || !st.Connected || !st.Running || st.LastError != "" || st.Pos.Arena == 0 {
		t.Fatalf("status after catching up: %+v", st)
	}
	var bytes int64
	for _, b := range bs {
		bytes += int64(len(b.d))
	}
	if st.Bytes != bytes {
		t.Fatalf("status says %d bytes pushed, the blocks have %d", st.Bytes, bytes)
	}

	// New writes follow, synced by the writer or not (the idle mirror
	// syncs the store itself).
	more := fill(t, prim, 2, 50)
	for i := range 5 {
		if _, err := prim.Write(ctx, venti.DataType, []byte{byte(i), 'u', 'n', 's', 'y', 'n', 'c'}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the mirror to follow new writes", time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	has(t, mst, more)
	if got := statusOf(t, mg, addr).Blocks; got != 455 {
		t.Fatalf("%d blocks pushed, want 455", got)
	}

	rep, err := mg.Verify(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Blocks != 455 {
		t.Fatalf("verify: %+v", rep)
	}
	if w := srv.st.writes.Load(); w != 455 {
		t.Fatalf("the mirror received %d writes for 455 blocks", w)
	}
}

// TestMirrorResume stops and reopens the manager: pushing resumes after
// the saved position, with no block pushed twice.
func TestMirrorResume(t *testing.T) {
	pdir, mdir := t.TempDir(), t.TempDir()
	prim := openStore(t, pdir)
	fill(t, prim, 1, 200)
	srv := startServer(t, openStore(t, t.TempDir()))
	mg, err := New(prim, mdir, testLog(t), quick...)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := mg.Add("tcp!" + strings.Replace(srv.addr, ":", "!", 1))
	if addr != srv.addr {
		t.Fatalf("Add gave %q for %s", addr, srv.addr)
	}
	mg.Start(ctx)
	waitFor(t, "catch up", time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	mg.Close()
	prim.Close()

	prim = openStore(t, pdir)
	more := fill(t, prim, 2, 120)
	mg, err = New(prim, mdir, testLog(t), quick...)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if l := mg.List(); len(l) != 1 || l[0] != addr {
		t.Fatalf("reloaded list %q", l)
	}
	if st := statusOf(t, mg, addr); st.Blocks != 200 || st.LagBlocks != 120 || st.Running {
		t.Fatalf("reloaded status %+v", st)
	}
	mg.Start(ctx)
	waitFor(t, "catch up after reopening", time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	has(t, srv.st, more)
	if w := srv.st.writes.Load(); w != 320 {
		t.Fatalf("%d writes for 320 blocks: blocks were pushed again", w)
	}
}

// TestMirrorReconnect stops the mirror's server mid-stream and starts it
// again: the pusher reconnects, resumes and catches up.
func TestMirrorReconnect(t *testing.T) {
	prim := openStore(t, t.TempDir())
	bs := fill(t, prim, 3, 1500)
	mst := openStore(t, t.TempDir())
	srv := startServer(t, mst)
	srv.st.delay.Store(int64(200 * time.Microsecond))
	mg, addr := mirrorTo(t, prim, srv.addr)
	waitFor(t, "some progress", time.Minute, func() bool { return statusOf(t, mg, addr).Blocks > 200 })
	srv.stop()
	waitFor(t, "the error to show", time.Minute, func() bool {
		st := statusOf(t, mg, addr)
		return !st.Connected && st.LastError != ""
	})
	st := statusOf(t, mg, addr)
	if caughtUp(st) {
		t.Fatal("caught up before the server was stopped: the test needs more blocks or a slower server")
	}
	t.Logf("while the mirror is down: %+v", st)
	time.Sleep(150 * time.Millisecond) // a few failed reconnects
	srv.st.delay.Store(0)
	srv.start()
	waitFor(t, "catch up after the restart", time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	has(t, mst, bs)
	if w := srv.st.writes.Load(); w < 1500 {
		t.Fatalf("%d writes for 1500 blocks", w)
	}
}

// TestMirrorNeedsSync: while the mirror refuses Tsync nothing is saved,
// however much it has written; once Tsync works the position moves.
func TestMirrorNeedsSync(t *testing.T) {
	prim := openStore(t, t.TempDir())
	fill(t, prim, 4, 300)
	srv := startServer(t, openStore(t, t.TempDir()))
	srv.st.failSync.Store(true)
	dir := t.TempDir()
	mg, err := New(prim, dir, testLog(t), quick...)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	addr, _ := mg.Add(srv.addr)
	mg.Start(ctx)
	waitFor(t, "writes and a failed sync", time.Minute, func() bool {
		return srv.st.writes.Load() >= 300 && strings.Contains(statusOf(t, mg, addr).LastError, "disk on fire")
	})
	if st := statusOf(t, mg, addr); st.Blocks != 0 || st.Pos != store.StartPos() {
		t.Fatalf("position moved without a Tsync: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFileName(addr))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("position file written without a Tsync: %v", err)
	}
	srv.st.failSync.Store(false)
	waitFor(t, "catch up", time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	s, err := loadState(filepath.Join(dir, stateFileName(addr)))
	if err != nil || s.Blocks != 300 || s.Pos != prim.Durable() || s.Store != prim.ID() {
		t.Fatalf("saved state %+v, %v; durable end %v", s, err, prim.Durable())
	}
}

// TestMirrorDamagedStore: a damaged record of the store is skipped,
// counted and reported; everything else is pushed, and Verify reports
// the damage.
func TestMirrorDamagedStore(t *testing.T) {
	pdir := t.TempDir()
	prim := openStore(t, pdir)
	bs := fill(t, prim, 5, 30)
	it, _ := prim.Records(store.StartPos())
	var victim store.Record
	for i := 0; i <= 10; i++ {
		victim, _ = it.Next(ctx)
	}
	prim.Close()
	f, err := os.OpenFile(filepath.Join(pdir, "arena.000000"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("DAMAGE"), victim.Pos.Offset+int64(victim.Stored)-10)
	f.Close()
	prim = openStore(t, pdir)
	srv := startServer(t, openStore(t, t.TempDir()))
	mg, addr := mirrorTo(t, prim, srv.addr)
	waitFor(t, "catch up", time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	st := statusOf(t, mg, addr)
	if st.Skipped != 1 || st.Blocks != 30 || !strings.Contains(st.LastError, victim.Score.String()) {
		t.Fatalf("status %+v, want one skipped block named %v", st, victim.Score)
	}
	var good []blk
	for _, b := range bs {
		if b.s != victim.Score {
			good = append(good, b)
		}
	}
	has(t, srv.st, good)
	rep, err := mg.Verify(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Damaged != 1 || rep.Blocks != 29 || len(rep.Problems) != 1 {
		t.Fatalf("verify: %+v", rep)
	}
}

// TestVerifyFindsMissing verifies against a venti that holds only some of
// the blocks.
func TestVerifyFindsMissing(t *testing.T) {
	prim := openStore(t, t.TempDir())
	bs := fill(t, prim, 6, 200)
	mst := openStore(t, t.TempDir())
	for _, b := range bs[:150] {
		mst.Write(ctx, b.t, b.d)
	}
	srv := startServer(t, mst)
	rep, err := Verify(ctx, prim, srv.addr, testLog(t), WithWindow(16))
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Missing != 50 || rep.Blocks != 150 || rep.Wrong != 0 || len(rep.Problems) != 50 ||
		!strings.Contains(strings.Join(rep.Problems, "\n"), bs[150].s.String()) {
		t.Fatalf("verify: %+v", rep)
	}
	srv.stop()
	if _, err := Verify(ctx, prim, srv.addr, testLog(t), WithDialTimeout(time.Second)); err == nil {
		t.Fatal("verify against a stopped server succeeded")
	}
}

// TestManagerList covers Add, Remove and the saved list.
func TestManagerList(t *testing.T) {
	prim := openStore(t, t.TempDir())
	dir := t.TempDir()
	mg, err := New(prim, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"127.0.0.1:17100", "tcp!10.0.0.2!venti", "[::1]:17101"} {
		if _, err := mg.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mg.Add("127.0.0.1!17100"); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second add: %v", err)
	}
	if _, err := mg.Add("host:port"); err == nil {
		t.Fatal("add of a bad address succeeded")
	}
	if err := mg.Remove("127.0.0.1:1"); !errors.Is(err, ErrNoMirror) {
		t.Fatalf("remove of a stranger: %v", err)
	}
	want := []string{"127.0.0.1:17100", "10.0.0.2:17034", "[::1]:17101"}
	if got := mg.List(); !slicesEqual(got, want) {
		t.Fatalf("list %q, want %q", got, want)
	}
	// A position for the removed mirror is deleted with it.
	pos := filepath.Join(dir, stateFileName("10.0.0.2:17034"))
	if err := saveState(pos, State{Addr: "10.0.0.2:17034", Store: prim.ID(), Pos: store.StartPos()}); err != nil {
		t.Fatal(err)
	}
	if err := mg.Remove("10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pos); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("position file after remove: %v", err)
	}
	mg.Close()
	if _, err := mg.Add("127.0.0.1:17102"); err == nil {
		t.Fatal("add after close succeeded")
	}
	mg, err = New(prim, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := mg.List(); !slicesEqual(got, []string{"127.0.0.1:17100", "[::1]:17101"}) {
		t.Fatalf("reloaded list %q", got)
	}
	if len(mg.Status()) != 2 {
		t.Fatal("status of two mirrors has another length")
	}
	// A damaged list is an error naming the file.
	os.WriteFile(filepath.Join(dir, listName), []byte(`{"version":1,"mirrors":[{"addr":"x:1"},{"addr":"x:1"}]}`), 0o600)
	if _, err := New(prim, dir, nil); err == nil || !strings.Contains(err.Error(), listName) {
		t.Fatalf("damaged list: %v", err)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// TestStateOtherStore: a position saved for another store is not used.
func TestStateOtherStore(t *testing.T) {
	prim := openStore(t, t.TempDir())
	fill(t, prim, 7, 20)
	path := filepath.Join(t.TempDir(), "pos.json")
	if err := saveState(path, State{Addr: "127.0.0.1:9", Store: "deadbeef", Pos: store.Pos{Arena: 0, Offset: 5000}, Blocks: 7}); err != nil {
		t.Fatal(err)
	}
	m, err := NewMirror(prim, "127.0.0.1:9", path, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.Pos != store.StartPos() || st.Blocks != 0 || st.LagBlocks != 20 {
		t.Fatalf("status with another store's position: %+v", st)
	}
	if _, err := NewMirror(prim, "127.0.0.1:10", path, nil); err == nil {
		t.Fatal("a position file of another mirror was accepted")
	}
}

// TestMirrorStoreClosed: Run ends with ErrClosed when the store closes.
func TestMirrorStoreClosed(t *testing.T) {
	prim := openStore(t, t.TempDir())
	fill(t, prim, 8, 10)
	srv := startServer(t, openStore(t, t.TempDir()))
	m, err := NewMirror(prim, srv.addr, filepath.Join(t.TempDir(), "pos"), testLog(t), quick...)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() { defer wg.Done(); runErr = m.Run(ctx) }()
	waitFor(t, "catch up", time.Minute, func() bool { return caughtUp(m.Status()) })
	if err := m.Run(ctx); err == nil {
		t.Fatal("a second Run started")
	}
	prim.Close()
	wg.Wait()
	if !errors.Is(runErr, store.ErrClosed) {
		t.Fatalf("Run after the store closed: %v", runErr)
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := State{Addr: "127.0.0.1:17034", Store: "0badf00d", Pos: store.Pos{Arena: 3, Offset: 4096}, Blocks: 10, Bytes: 8000, Skipped: 1}
	path := filepath.Join(t.TempDir(), "p.json")
	if err := saveState(path, s); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(path)
	if err != nil || got != s {
		t.Fatalf("loaded %+v, %v; saved %+v", got, err, s)
	}
	for _, bad := range []string{
		`{"addr":"127.0.0.1:17034","store":"x","pos":{"arena":0,"offset":64}} {}`,
		`{"addr":"127.0.0.1:17034","store":"x","pos":{"arena":0,"offset":10}}`,
		`{"addr":"tcp!h!1","store":"x","pos":{"arena":0,"offset":64}}`,
		`{"addr":"127.0.0.1:17034","store":"","pos":{"arena":0,"offset":64}}`,
		`{"addr":"127.0.0.1:17034","store":"x","pos":{"arena":0,"offset":64},"blocks":1,"skipped":2}`,
		`{"addr":"127.0.0.1:17034","store":"x","pos":{"arena":0,"offset":64},"extra":1}`,
	} {
		if _, err := parseState([]byte(bad)); err == nil {
			t.Errorf("parseState(%s) succeeded", bad)
		}
	}
	addrs := []string{"127.0.0.1:17034", "[::1]:1"}
	got2, err := parseList(encodeList(addrs))
	if err != nil || !slicesEqual(got2, addrs) {
		t.Fatalf("list round trip: %q, %v", got2, err)
	}
	if l, err := parseList(encodeList(nil)); err != nil || len(l) != 0 {
		t.Fatalf("empty list round trip: %q, %v", l, err)
	}
}

// forgetful is a venti store that, like a real one killed with SIGKILL,
// loses every write not covered by a Sync when it crashes.
type forgetful struct {
	mu      sync.Mutex
	durable *venti.MemStore
	pending []blk
}

func (f *forgetful) Read(ctx context.Context, s venti.Score, t venti.Type, n int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.pending {
		if b.s == s && b.t == t {
			return bytes.Clone(b.d), nil
		}
	}
	return f.durable.Read(ctx, s, t, n)
}

func (f *forgetful) Write(ctx context.Context, t venti.Type, d []byte) (venti.Score, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, blk{venti.Sum(d), t, bytes.Clone(d)})
	return venti.Sum(d), nil
}

func (f *forgetful) Sync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.pending {
		f.durable.Write(ctx, b.t, b.d)
	}
	f.pending = nil
	return nil
}

// crash forgets what was not synced; it returns how many writes it lost.
func (f *forgetful) crash() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.pending)
	f.pending = nil
	return n
}

// TestMirrorCrashLosesUnsynced crashes the mirror several times
// mid-stream, each time losing the writes it had acknowledged but not
// synced: the pusher resumes from its last Tsync, so in the end the
// mirror's durable store holds every block.
func TestMirrorCrashLosesUnsynced(t *testing.T) {
	prim := openStore(t, t.TempDir())
	bs := fill(t, prim, 9, 3000)
	fs := &forgetful{durable: venti.NewMemStore()}
	srv := startServer(t, fs)
	srv.st.delay.Store(int64(100 * time.Microsecond))
	mg, addr := mirrorTo(t, prim, srv.addr)
	// At least three crashes, more (up to eight) until one has lost
	// something: a crash right after a Tsync loses nothing, which on a
	// loaded machine happened to all three.
	lost, crashes := 0, 0
	for round := 1; round <= 8 && (round <= 3 || lost == 0); round++ {
		crashes = round
		waitFor(t, "progress", time.Minute, func() bool { return statusOf(t, mg, addr).Blocks >= int64(round*300) })
		srv.stop() // the connections close: nothing more is acknowledged
		lost += fs.crash()
		srv.start()
	}
	if lost == 0 {
		t.Fatal("no crash lost an acknowledged write: the test did not test anything")
	}
	srv.st.delay.Store(0)
	waitFor(t, "catch up", time.Minute, func() bool { return caughtUp(statusOf(t, mg, addr)) })
	fs.crash() // nothing may depend on unsynced writes
	has(t, fs.durable, bs)
	t.Logf("%d crashes lost %d acknowledged writes; all %d blocks are durable on the mirror", crashes, lost, len(bs))
}
