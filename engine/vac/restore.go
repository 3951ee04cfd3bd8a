package vac

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// RestoreOptions configures Restore and Cat.
type RestoreOptions struct {
	// Patterns selects what to restore; empty means everything. A pattern
	// selects the path it names and everything below it (as unvac's path
	// arguments do) or, if it contains glob characters, every path it
	// matches with path.Match, again with everything below.
	Patterns []string
	// Workers is the number of blocks fetched ahead; 0 means
	// DefaultFetchAhead.
	Workers int
	// Progress, if set, is called with the bytes restored so far and the
	// total, at least every MiB and once at the end. Calls are never
	// concurrent.
	Progress func(done, total int64)
	// Logger receives warnings about entries that are skipped (devices);
	// nil discards them.
	Logger *slog.Logger
}

// matcher implements RestoreOptions.Patterns.
type matcher struct {
	pats  []string
	found []bool
}

func newMatcher(pats []string) *matcher {
	m := &matcher{found: make([]bool, len(pats))}
	for _, p := range pats {
		m.pats = append(m.pats, strings.Trim(path.Clean("/"+p), "/"))
	}
	return m
}

// want reports whether p (or a directory above it) is selected.
func (m *matcher) want(p string) bool {
	if len(m.pats) == 0 {
		return true
	}
	hit := false
	for i, pat := range m.pats {
		for q := p; ; {
			if q == pat || matchGlob(pat, q) {
				if q == p {
					m.found[i] = true
				}
				hit = true
				break
			}
			j := strings.LastIndexByte(q, '/')
			if j < 0 {
				break
			}
			q = q[:j]
		}
	}
	return hit
}

// descend reports whether directory p may contain selected paths.
func (m *matcher) descend(p string) bool {
	if len(m.pats) == 0 {
		return true
	}
	for _, pat := range m.pats {
		if strings.ContainsAny(pat, "*?[\\") || strings.HasPrefix(pat, p+"/") {
			return true
		}
	}
	return m.want(p)
}

func matchGlob(pat, p string) bool {
	if !strings.ContainsAny(pat, "*?[\\") {
		return false
	}
	ok, _ := path.Match(pat, p)
	return ok
}

// missing returns an error listing the patterns nothing matched.
func (m *matcher) missing() error {
	var miss []string
	for i, f := range m.found {
		if !f {
			miss = append(miss, m.pats[i])
		}
	}
	if len(miss) > 0 {
		return fmt.Errorf("not in the archive: %s", strings.Join(miss, ", "))
	}
	return nil
}

// Select returns the selected files and directories of a in walk order
// (parents before children), and an error naming patterns that matched
// nothing. Directories that are only passed through are not included.
func Select(ctx context.Context, a *Archive, patterns []string) ([]*File, error) {
	m := newMatcher(patterns)
	var out []*File
	err := a.Walk(ctx, func(f *File) error {
		if m.want(f.Path()) {
			out = append(out, f)
			return nil
		}
		if f.IsDir() && m.descend(f.Path()) {
			return nil
		}
		return fs.SkipDir
	})
	if err != nil {
		return nil, err
	}
	return out, m.missing()
}

// progress counts restored bytes for a callback.
type progress struct {
	fn       func(done, total int64)
	done     int64
	total    int64
	reported int64
}

func (p *progress) add(n int64) {
	if p.fn == nil {
		return
	}
	p.done += n
	if p.done-p.reported >= 1<<20 {
		p.reported = p.done
		p.fn(p.done, p.total)
	}
}

func (p *progress) final() {
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
}

// Restore recreates the selected part of archive a below the directory
// dest: directories, regular files (holes stay holes), symbolic links and
// named pipes, with their permission bits (including setuid, setgid and
// sticky) and modification times; owners are not changed. Every file is
// written to a temporary file and renamed into place only when complete
// (and, if it replaces an existing file, after fsync), so an existing file
// is never replaced by a partial one. If a pattern matches nothing, Restore
// fails before writing anything.
func Restore(ctx context.Context, a *Archive, dest string, opts RestoreOptions) error {
	files, err := Select(ctx, a, opts.Patterns)
	if err != nil {
		return fmt.Errorf("restore vac:%v: %w", a.Score(), err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &progress{fn: opts.Progress}
	for _, f := range files {
		if !f.IsDir() && f.dir.Mode&(ModeLink|ModeNamedPipe|ModeDevice) == 0 {
			p.total += f.Size()
		}
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var dirs []*File
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		target := filepath.Join(dest, filepath.FromSlash(f.Path()))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("restore %s: %w", f.Path(), err)
		}
		mode := f.dir.Mode
		switch {
		case f.IsDir():
			fi, err := os.Lstat(target)
			if err == nil && !fi.IsDir() {
				return fmt.Errorf("restore %s: %s exists and is not a directory", f.Path(), target)
			}
			if err != nil {
				if err := os.Mkdir(target, 0o700); err != nil {
					return fmt.Errorf("restore %s: %w", f.Path(), err)
				}
			}
			dirs = append(dirs, f)
		case mode&ModeLink != 0:
			if err := restoreLink(ctx, f, target); err != nil {
				return err
			}
		case mode&ModeNamedPipe != 0:
			if err := replaceWith(target, func(tmp string) error { return mkfifo(tmp, mode&ModePerm) }); err != nil {
				return fmt.Errorf("restore %s: named pipe: %w", f.Path(), err)
			}
			if err := setMeta(target, f); err != nil {
				return fmt.Errorf("restore %s: %w", f.Path(), err)
			}
		case mode&(ModeDevice|ModeExclusive) != 0:
			log.Warn("skipping device or lock file", "path", f.Path())
		default:
			if err := restoreFile(ctx, f, target, opts.Workers, p); err != nil {
				return err
			}
		}
	}
	// Directory modes and times last, deepest first, so that writing the
	// contents neither fails on read-only directories nor changes mtimes.
	for i := len(dirs) - 1; i >= 0; i-- {
		f := dirs[i]
		if err := setMeta(filepath.Join(dest, filepath.FromSlash(f.Path())), f); err != nil {
			return fmt.Errorf("restore %s: %w", f.Path(), err)
		}
	}
	p.final()
	return nil
}

// fileMode converts vac mode bits to an os.FileMode (permissions only).
func fileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & ModePerm)
	if m&ModeSetUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&ModeSetGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&ModeSticky != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

func setMeta(target string, f *File) error {
	if err := os.Chmod(target, fileMode(f.dir.Mode)); err != nil {
		return err
	}
	return os.Chtimes(target, time.Unix(int64(f.dir.ATime), 0), f.ModTime())
}

// replaceWith creates a new file system object with make at a temporary
// name next to target and renames it over target.
func replaceWith(target string, make func(tmp string) error) error {
	t, err := os.CreateTemp(filepath.Dir(target), tempPattern(target))
	if err != nil {
		return err
	}
	tmp := t.Name()
	t.Close()
	os.Remove(tmp)
	if err := make(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func restoreLink(ctx context.Context, f *File, target string) error {
	if f.Size() > 64*1024 {
		return fmt.Errorf("restore %s: %w", f.Path(), formatErr("symbolic link text of %d bytes", f.Size()))
	}
	r, err := f.Open(ctx)
	if err != nil {
		return err
	}
	b := make([]byte, f.Size())
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("restore %s: %w", f.Path(), err)
	}
	if err := replaceWith(target, func(tmp string) error { return os.Symlink(string(b), tmp) }); err != nil {
		return fmt.Errorf("restore %s: symbolic link: %w", f.Path(), err)
	}
	return nil
}

// restoreFile writes f to a temporary file next to target, then renames it.
func restoreFile(ctx context.Context, f *File, target string, workers int, p *progress) (err error) {
	r, err := f.Open(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), tempPattern(target))
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Path(), err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	s := &fileSink{f: tmp, buf: make([]byte, 0, 1<<20)}
	if _, err := r.sr.copyTo(ctx, s, readOpts{workers: workers, progress: p.add}); err != nil {
		return fmt.Errorf("restore: %w", err) // err names the file
	}
	if err := s.flush(); err != nil {
		return fmt.Errorf("restore %s: %w", f.Path(), err)
	}
	if err := tmp.Truncate(f.Size()); err != nil {
		return fmt.Errorf("restore %s: %w", f.Path(), err)
	}
	if err := tmp.Chmod(fileMode(f.dir.Mode)); err != nil {
		return fmt.Errorf("restore %s: %w", f.Path(), err)
	}
	// A file we replace must be on disk before the rename; a new one is
	// not, which keeps restores of many small files fast.
	_, statErr := os.Lstat(target)
	if statErr == nil {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("restore %s: %w", f.Path(), err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("restore %s: %w", f.Path(), err)
	}
	if err := os.Chtimes(tmp.Name(), time.Unix(int64(f.dir.ATime), 0), f.ModTime()); err != nil {
		return fmt.Errorf("restore %s: %w", f.Path(), err)
	}
	if fi, serr := os.Lstat(target); serr == nil && fi.IsDir() {
		return fmt.Errorf("restore %s: %s exists and is a directory", f.Path(), target)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("restore %s: %w", f.Path(), err)
	}
	return nil
}

// fileSink writes a file's data with large contiguous writes and leaves
// zero runs as holes (the file is truncated to its size at the end).
type fileSink struct {
	f       *os.File
	buf     []byte
	bufOff  int64
	noAlloc bool // allocate failed once: the file system allocates as it writes
}

// minAllocate is the least run a fileSink allocates before writing it.
const minAllocate = 64 << 10

// writeAt writes b at off, allocating its blocks first when that helps.
func (s *fileSink) writeAt(b []byte, off int64) error {
	if len(b) >= minAllocate && !s.noAlloc {
		if err := allocate(s.f, off, int64(len(b))); err != nil {
			s.noAlloc = true // unsupported here, or no room: the write says which
		}
	}
	_, err := s.f.WriteAt(b, off)
	return err
}

func (s *fileSink) data(off int64, b []byte, n int) error {
	if len(b) == 0 {
		return s.zeros(off, int64(n))
	}
	if len(s.buf) > 0 && (s.bufOff+int64(len(s.buf)) != off || len(s.buf)+n > cap(s.buf)) {
		if err := s.flush(); err != nil {
			return err
		}
	}
	if len(s.buf) == 0 {
		s.bufOff = off
	}
	if len(b) == n && n >= directWrite {
		// A large run goes straight from the caller's buffer.
		if err := s.flush(); err != nil {
			return err
		}
		return s.writeAt(b, off)
	}
	if n > cap(s.buf) {
		return s.writeAt(b, off)
	}
	s.buf = append(s.buf, b...)
	if len(b) < n {
		s.buf = append(s.buf, make([]byte, n-len(b))...)
	}
	return nil
}

func (s *fileSink) zeros(off, n int64) error { return s.flush() }

func (s *fileSink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	err := s.writeAt(s.buf, s.bufOff)
	s.buf = s.buf[:0]
	return err
}

// Cat writes the data of the selected regular files of a to w, one after
// the other in walk order (unvac -c).
func Cat(ctx context.Context, a *Archive, w io.Writer, opts RestoreOptions) error {
	files, err := Select(ctx, a, opts.Patterns)
	if err != nil {
		return fmt.Errorf("cat vac:%v: %w", a.Score(), err)
	}
	p := &progress{fn: opts.Progress}
	var regular []*File
	for _, f := range files {
		if !f.IsDir() && f.dir.Mode&(ModeLink|ModeNamedPipe|ModeDevice|ModeExclusive) == 0 {
			regular = append(regular, f)
			p.total += f.Size()
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	for _, f := range regular {
		r, err := f.Open(ctx)
		if err != nil {
			return err
		}
		if _, err := r.sr.copyTo(ctx, &plainSink{w: bw, bw: bw, raw: w}, readOpts{workers: opts.Workers, progress: p.add}); err != nil {
			return fmt.Errorf("cat %s: %w", f.Path(), err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cat: %w", err)
	}
	p.final()
	return nil
}

// tempPattern names the temporary file a restore of target writes first:
// hidden, recognisable and short enough for any file name length.
func tempPattern(target string) string {
	base := filepath.Base(target)
	if len(base) > 40 {
		base = base[:40]
	}
	return "." + base + ".vac-*"
}
