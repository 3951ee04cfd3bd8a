package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"gridlord/engine/atomicfile"
	"gridlord/engine/venti/store"
)

// ErrNoMirror is wrapped by the error of Manager calls naming an address
// that is not a mirror.
var ErrNoMirror = errors.New("no such mirror")

// Manager keeps the mirrors of one store: their list and positions in a
// directory (see state.go) and, once started, one Run goroutine per
// mirror. Its methods are safe for concurrent use. The store must stay
// open until Close returns.
type Manager struct {
	st   *store.Store
	dir  string
	log  *slog.Logger
	opts []Option

	mu      sync.Mutex // guards the fields below; never held during I/O but the list file's write
	mirrors map[string]*managed
	order   []string        // addresses in the order they were added
	ctx     context.Context // set by Start; nil before
	closed  bool
}

// managed is a mirror and its goroutine.
type managed struct {
	m      *Mirror
	cancel context.CancelFunc // nil while not running
	done   chan struct{}      // closed when Run returns
}

// New loads the mirrors of st kept in dir (created if missing). Nothing
// is pushed until Start. opts apply to every mirror.
func New(st *store.Store, dir string, log *slog.Logger, opts ...Option) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := buildOptions(opts); err != nil {
		return nil, fmt.Errorf("venti mirrors: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("venti mirrors: %w", err)
	}
	if err := atomicfile.RemoveTemps(filepath.Join(dir, listName)); err != nil {
		log.Warn("venti mirrors: stale temporary files", "dir", dir, "err", err)
	}
	mg := &Manager{st: st, dir: dir, log: log, opts: opts, mirrors: map[string]*managed{}}
	addrs, err := mg.readList()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		m, err := mg.newMirror(a)
		if err != nil {
			return nil, err
		}
		mg.mirrors[a] = &managed{m: m}
		mg.order = append(mg.order, a)
	}
	return mg, nil
}

func (mg *Manager) listPath() string { return filepath.Join(mg.dir, listName) }

func (mg *Manager) statePath(addr string) string { return filepath.Join(mg.dir, stateFileName(addr)) }

func (mg *Manager) newMirror(addr string) (*Mirror, error) {
	path := mg.statePath(addr)
	if err := atomicfile.RemoveTemps(path); err != nil {
		mg.log.Warn("venti mirrors: stale temporary files", "path", path, "err", err)
	}
	return NewMirror(mg.st, addr, path, mg.log, mg.opts...)
}

func (mg *Manager) readList() ([]string, error) {
	b, err := os.ReadFile(mg.listPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("venti mirrors: %w", err)
	}
	addrs, err := parseList(b)
	if err != nil {
		return nil, fmt.Errorf("venti mirror list %s: %w (fix or remove the file)", mg.listPath(), err)
	}
	return addrs, nil
}

// writeListLocked saves the mirror list. mg.mu must be held.
func (mg *Manager) writeListLocked(addrs []string) error {
	if err := atomicfile.Write(mg.listPath(), encodeList(addrs), 0o600); err != nil {
		return fmt.Errorf("venti mirrors: save the list: %w", err)
	}
	return nil
}

// Start runs every mirror (and those added later) until ctx is done or
// Close. It returns at once; calling it again does nothing.
func (mg *Manager) Start(ctx context.Context) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	if mg.ctx != nil || mg.closed {
		return
	}
	mg.ctx = ctx
	for _, a := range mg.order {
		mg.startLocked(mg.mirrors[a])
	}
}

// startLocked starts mm's goroutine. mg.mu must be held and mg.ctx set.
func (mg *Manager) startLocked(mm *managed) {
	ctx, cancel := context.WithCancel(mg.ctx)
	mm.cancel, mm.done = cancel, make(chan struct{})
	go func() {
		defer close(mm.done)
		if err := mm.m.Run(ctx); err != nil {
			mg.log.Error("venti mirror stopped", "mirror", mm.m.Addr(), "err", err)
			mm.m.setErr(err)
		}
	}()
}

// stop stops mm's goroutine, if it runs, and waits for it.
func stop(mm *managed) {
	if mm.cancel != nil {
		mm.cancel()
		<-mm.done
	}
}

// Add makes the venti at addr a mirror of the store, saved in the list,
// and starts pushing to it if the manager has been started. It returns
// the mirror's address as host:port. The mirror starts from the beginning
// of the log unless a position for it was left in the directory. Adding
// a mirror twice is an error.
func (mg *Manager) Add(addr string) (string, error) {
	canon, err := canonAddr(addr)
	if err != nil {
		return "", err
	}
	mg.mu.Lock()
	defer mg.mu.Unlock()
	if mg.closed {
		return "", errors.New("venti mirrors: manager is closed")
	}
	if mg.mirrors[canon] != nil {
		return "", fmt.Errorf("venti %s is already a mirror", canon)
	}
	m, err := mg.newMirror(canon)
	if err != nil {
		return "", err
	}
	if err := mg.writeListLocked(append(slices.Clone(mg.order), canon)); err != nil {
		return "", err
	}
	mm := &managed{m: m}
	mg.mirrors[canon] = mm
	mg.order = append(mg.order, canon)
	if mg.ctx != nil {
		mg.startLocked(mm)
	}
	mg.log.Info("venti mirror added", "mirror", canon)
	return canon, nil
}

// Remove stops pushing to the mirror at addr and forgets it and its
// position. The mirror's blocks stay where they are.
func (mg *Manager) Remove(addr string) error {
	canon, err := canonAddr(addr)
	if err != nil {
		return err
	}
	mg.mu.Lock()
	mm := mg.mirrors[canon]
	if mm == nil {
		mg.mu.Unlock()
		return fmt.Errorf("venti %s: %w (see \"mirror status\")", canon, ErrNoMirror)
	}
	rest := slices.DeleteFunc(slices.Clone(mg.order), func(a string) bool { return a == canon })
	if err := mg.writeListLocked(rest); err != nil {
		mg.mu.Unlock()
		return err
	}
	delete(mg.mirrors, canon)
	mg.order = rest
	mg.mu.Unlock()
	stop(mm)
	if err := os.Remove(mm.m.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("venti mirror %s removed, but not its position file: %w", canon, err)
	}
	mg.log.Info("venti mirror removed", "mirror", canon)
	return nil
}

// List returns the mirrors' addresses (host:port) in the order they were
// added.
func (mg *Manager) List() []string {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	return slices.Clone(mg.order)
}

// Mirror returns the mirror at addr.
func (mg *Manager) Mirror(addr string) (*Mirror, error) {
	canon, err := canonAddr(addr)
	if err != nil {
		return nil, err
	}
	mg.mu.Lock()
	defer mg.mu.Unlock()
	if mm := mg.mirrors[canon]; mm != nil {
		return mm.m, nil
	}
	return nil, fmt.Errorf("venti %s: %w", canon, ErrNoMirror)
}

// Status returns every mirror's status, in List order.
func (mg *Manager) Status() []Status {
	mg.mu.Lock()
	ms := make([]*Mirror, 0, len(mg.order))
	for _, a := range mg.order {
		ms = append(ms, mg.mirrors[a].m)
	}
	mg.mu.Unlock()
	out := make([]Status, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Status())
	}
	return out
}

// Verify runs Mirror.Verify on the mirror at addr.
func (mg *Manager) Verify(ctx context.Context, addr string) (*VerifyReport, error) {
	m, err := mg.Mirror(addr)
	if err != nil {
		return nil, err
	}
	return m.Verify(ctx)
}

// Close stops every mirror, each after a last Tsync and save of what it
// has acknowledged, and waits for them. It is idempotent. It does not
// close the store.
func (mg *Manager) Close() error {
	mg.mu.Lock()
	mg.closed = true
	var mms []*managed
	for _, a := range mg.order {
		mms = append(mms, mg.mirrors[a])
	}
	mg.mu.Unlock()
	for _, mm := range mms {
		stop(mm)
	}
	return nil
}
