package seedbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"gridlord/engine/atomicfile"
	"gridlord/engine/console"
)

// A seed build runs a Recipe: named steps, each typed at a VM's console
// or done offline, with progress reported as it goes. The 4e/9legacy
// recipe (Legacy4e) installs fossil+venti with Plan 9's own programs; a
// 9front recipe (cwfs/hjfs/gefs, service= roles) would be another list of
// steps over the same Build.

// Step is one step of a recipe.
type Step struct {
	// Name is what progress and errors call the step ("copy", …).
	Name string
	// Run does the step. It reports the bytes it copied, if it copies,
	// with Build.Copied.
	Run func(ctx context.Context, b *Build) error
}

// Recipe is the list of steps that turns a distribution into a seed.
type Recipe struct {
	// Name names the recipe ("9legacy").
	Name string
	// Check refuses a distribution the recipe cannot install, before any
	// VM starts.
	Check func(d *Distribution) error
	Steps []Step
}

// Identity is the new seed's host owner: the user, auth domain and
// password in its nvram and its auth server's keyfs.
type Identity struct {
	User, AuthDom, Password string
}

var (
	identName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,27}$`)
	identDom  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,47}$`)
)

// ParseIdentity reads USER@DOMAIN:PASSWORD.
func ParseIdentity(s string) (Identity, error) {
	user, rest, ok1 := strings.Cut(s, "@")
	dom, pw, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return Identity{}, errors.New("identity: want USER@DOMAIN:PASSWORD")
	}
	id := Identity{User: user, AuthDom: dom, Password: pw}
	return id, id.Validate()
}

// Validate checks that the identity can be typed at a Plan 9 console and
// fits the nvram record.
func (id Identity) Validate() error {
	if !identName.MatchString(id.User) {
		return fmt.Errorf("identity: user %q: want up to 28 letters, digits, '.', '_' or '-'", id.User)
	}
	if !identDom.MatchString(id.AuthDom) {
		return fmt.Errorf("identity: auth domain %q: want up to 48 letters, digits, '.', '_' or '-'", id.AuthDom)
	}
	if len(id.Password) < 4 || len(id.Password) > 27 {
		return errors.New("identity: the password must be 4 to 27 characters")
	}
	for _, c := range id.Password {
		if c < ' ' || c > '~' {
			return errors.New("identity: the password must be printable ASCII (it is typed at a console)")
		}
	}
	return nil
}

// BuildOptions configures Run.
type BuildOptions struct {
	// Profile selects the files (default ProfileGrid).
	Profile Profile
	// Identity is the seed's host owner (required).
	Identity Identity
	// Sysname is the seed's system name, its console prompt and the
	// /cfg directory its cpurc is in (default "helix", as the shipped
	// seed's).
	Sysname string
	// Size is the target disk's size (default 1 GiB, or MinTargetSize
	// when larger).
	Size int64
	// Output is where the finished disk (qcow2) goes; it must not exist.
	Output string
	// ScratchDir holds the temporary disks and the VMs' sockets (default
	// a new directory under os.TempDir, removed at the end).
	ScratchDir string
	// Accel forces QEMU's accelerator; empty probes.
	Accel string
	// StepTimeout bounds each console step (default 20 minutes).
	StepTimeout time.Duration
	// Log receives the build's messages; nil discards them.
	Log *slog.Logger
	// Progress, if set, is called as steps start, advance (every few
	// seconds) and end. It must not block.
	Progress func(Progress)
}

// StepState is where a step is.
type StepState string

// The states of a step.
const (
	StepRunning StepState = "running"
	StepDone    StepState = "done"
	StepFailed  StepState = "failed"
)

// Progress reports a step.
type Progress struct {
	// Step is the step's name; Index counts from 1 of Steps.
	Step         string
	Index, Steps int
	State        StepState
	// Elapsed is the time since the step started.
	Elapsed time.Duration
	// Tail is the last lines of the console the step types at.
	Tail []string
	// Bytes of TotalBytes copied so far, for the copy step.
	Bytes, TotalBytes int64
	// Err is a failed step's error.
	Err error
}

// StepTime is how long a step took.
type StepTime struct {
	Name     string
	Duration time.Duration
}

// Result is a finished build.
type Result struct {
	// Path is the seed's disk (BuildOptions.Output).
	Path string
	// Identity and Sysname are the seed's.
	Identity Identity
	Sysname  string
	// Archive is the score of the seed fossil's last archive
	// ("vac:…").
	Archive string
	// Files and Bytes are what was copied.
	Files int
	Bytes int64
	// Steps are the steps' times, in order.
	Steps []StepTime
}

// StepError is a failed step: its name, the error and the console's
// last lines.
type StepError struct {
	Step string
	Err  error
	Tail []string
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("seed build: step %q failed: %v", e.Step, e.Err)
	if len(e.Tail) > 0 {
		msg += "\nconsole:\n" + strings.Join(e.Tail, "\n")
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// Build is a build in progress, handed to each step.
type Build struct {
	// Dist is the distribution; Opts the options, defaults filled in.
	Dist *Distribution
	Opts BuildOptions
	// Dir is the scratch directory; Target the disk being built in it.
	Dir, Target string
	// Log is the build's logger.
	Log *slog.Logger
	// Result is filled in by the steps.
	Result Result

	mu      sync.Mutex
	vm      *Installer // the VM the current step types at, if any
	rc      *console.RC
	copied  int64
	total   int64
	cleanup []func() error
}

// Copied records n more bytes copied of total.
func (b *Build) Copied(n, total int64) {
	b.mu.Lock()
	b.copied += n
	b.total = total
	b.mu.Unlock()
}

// SetVM makes in the VM the following steps type at (nil: none) and
// returns an RC for its prompt. The VM is stopped when the build ends.
func (b *Build) SetVM(in *Installer) *console.RC {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rc != nil {
		b.rc.Close()
		b.rc = nil
	}
	b.vm = in
	if in == nil {
		return nil
	}
	b.rc = console.NewRC(in.Console, in.Prompt)
	return b.rc
}

// StopVM stops the current VM.
func (b *Build) StopVM() error {
	b.mu.Lock()
	in := b.vm
	b.mu.Unlock()
	b.SetVM(nil)
	if in == nil {
		return nil
	}
	return in.Close()
}

// tail returns the current VM console's last lines.
func (b *Build) tail(n int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.vm == nil || b.vm.Console == nil {
		return nil
	}
	return b.vm.Console.LastLines(n)
}

// RC returns the current VM's shell.
func (b *Build) RC() (*console.RC, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rc == nil {
		return nil, errors.New("no VM is running for this step")
	}
	return b.rc, nil
}

// Run types line at the current VM's shell and fails unless it ends with
// an empty status; the error holds its output.
func (b *Build) Run(ctx context.Context, line string, timeout time.Duration) (string, error) {
	rc, err := b.RC()
	if err != nil {
		return "", err
	}
	b.Log.Debug("rc", "line", line)
	res, err := rc.Run(ctx, line, timeout)
	if err != nil {
		return "", err
	}
	if !res.OK() {
		return res.Output, fmt.Errorf("%s: status %q; output:\n%s", line, res.Status, strings.TrimSpace(res.Output))
	}
	return res.Output, nil
}

// WaitFor types an rc loop that succeeds as soon as the rc condition
// cond does, checked every second for up to secs seconds.
func (b *Build) WaitFor(ctx context.Context, cond string, secs int) error {
	line := fmt.Sprintf("for(i in `{seq 1 %d}){if(%s) exit ''; sleep 1}; exit 'gave up waiting'", secs, cond)
	_, err := b.Run(ctx, line, time.Duration(secs+60)*time.Second)
	return err
}

// Run builds a seed from d by recipe r. Before any VM starts it checks
// the options and that r can install d. A cancelled or failed build
// stops its VMs and removes its disks; a failed step's error is a
// *StepError naming it, with the console's last lines.
func Run(ctx context.Context, d *Distribution, r Recipe, opts BuildOptions) (res *Result, err error) {
	if opts.Profile == "" {
		opts.Profile = ProfileGrid
	}
	if _, err := ParseProfile(string(opts.Profile)); err != nil {
		return nil, err
	}
	if err := opts.Identity.Validate(); err != nil {
		return nil, err
	}
	if opts.Sysname == "" {
		opts.Sysname = "helix"
	}
	if !identName.MatchString(opts.Sysname) {
		return nil, fmt.Errorf("sysname %q: want letters, digits, '.', '_' or '-'", opts.Sysname)
	}
	if opts.Size == 0 {
		opts.Size = max(1<<30, MinTargetSize(opts.Profile))
	}
	if opts.Size < MinTargetSize(opts.Profile) {
		return nil, fmt.Errorf("a target of %d MiB is too small for the %s profile: give at least %d MiB", opts.Size>>20, opts.Profile, MinTargetSize(opts.Profile)>>20)
	}
	if opts.Output == "" {
		return nil, errors.New("seed build: no output file")
	}
	if _, err := os.Stat(opts.Output); err == nil {
		return nil, fmt.Errorf("seed build: %s already exists: remove it or choose another name", opts.Output)
	}
	if opts.StepTimeout == 0 {
		opts.StepTimeout = 20 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if r.Check != nil {
		if err := r.Check(d); err != nil {
			return nil, err
		}
	}
	dir := opts.ScratchDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "glsb"); err != nil {
			return nil, fmt.Errorf("seed build: scratch directory: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	b := &Build{Dist: d, Opts: opts, Dir: dir, Target: filepath.Join(dir, "target.qcow2"), Log: opts.Log}
	// Where its disks are made, so that a reader of the log can see them
	// go when the build ends.
	b.Log.Info("seed build started", "recipe", r.Name, "scratch", dir, "output", opts.Output)
	b.Result = Result{Identity: opts.Identity, Sysname: opts.Sysname}
	defer func() {
		if serr := b.StopVM(); serr != nil {
			b.Log.Warn("seed build: stopping the VM", "err", serr)
		}
		if err != nil {
			os.Remove(b.Target)
		}
	}()
	for i, st := range r.Steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("seed build cancelled before step %q: %w", st.Name, err)
		}
		if err := b.step(ctx, st, i+1, len(r.Steps)); err != nil {
			return nil, err
		}
	}
	if err := moveFile(b.Target, opts.Output); err != nil {
		return nil, fmt.Errorf("seed build: %w", err)
	}
	b.Result.Path = opts.Output
	return &b.Result, nil
}

// step runs one step, reporting it every few seconds while it runs.
func (b *Build) step(ctx context.Context, st Step, i, n int) error {
	start := time.Now()
	report := func(state StepState, err error) {
		if b.Opts.Progress == nil {
			return
		}
		b.mu.Lock()
		p := Progress{Step: st.Name, Index: i, Steps: n, State: state, Elapsed: time.Since(start), Bytes: b.copied, TotalBytes: b.total, Err: err}
		b.mu.Unlock()
		p.Tail = b.tail(8)
		b.Opts.Progress(p)
	}
	b.mu.Lock()
	b.copied, b.total = 0, 0
	b.mu.Unlock()
	b.Log.Info("seed build step", "step", st.Name, "n", i, "of", n)
	report(StepRunning, nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				report(StepRunning, nil)
			}
		}
	}()
	err := st.Run(ctx, b)
	close(done)
	wg.Wait()
	if err != nil {
		tail := b.tail(30)
		if ctx.Err() != nil {
			err = fmt.Errorf("cancelled: %w", err)
		}
		report(StepFailed, err)
		b.Log.Warn("seed build step failed", "step", st.Name, "err", err)
		return &StepError{Step: st.Name, Err: err, Tail: tail}
	}
	d := time.Since(start)
	b.Result.Steps = append(b.Result.Steps, StepTime{Name: st.Name, Duration: d})
	report(StepDone, nil)
	b.Log.Info("seed build step done", "step", st.Name, "n", i, "of", n, "took", d.Round(time.Millisecond))
	return nil
}

// moveFile renames src to dst, copying it (atomically) when they are on
// different file systems; dst is never left half-written.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := atomicfile.WriteFunc(dst, 0o644, func(f *os.File) error {
		_, err := io.Copy(f, in)
		return err
	}); err != nil {
		return fmt.Errorf("move %s to %s: %w", src, dst, err)
	}
	return os.Remove(src)
}
