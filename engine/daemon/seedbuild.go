package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/seedbuild"
	"gridlord/images"
)

// BuiltDir is where built seed images are kept (under the cache).
const BuiltDir = "built"

// BuildSeedOptions configures BuildSeed.
type BuildSeedOptions struct {
	// From is a Plan 9 distribution: a CD image (ISO 9660) or a
	// directory holding its tree.
	From string
	// Name is the new seed's name in the grid.
	Name string
	// Profile selects the files (default seedbuild.ProfileGrid).
	Profile seedbuild.Profile
	// Identity is the seed's host owner and the one account its keyfs
	// holds.
	Identity seedbuild.Identity
	// Sysname is the seed's own system name (default "helix").
	Sysname string
	// Size is the disk's size in bytes (default: the recipe's).
	Size int64
	// Progress, if set, receives each step's progress (see
	// seedbuild.Progress); it must not block.
	Progress func(seedbuild.Progress)
}

// ParseSeedBuild reads the /identity command that builds a seed
// (gridfs.SeedBuildUsage), already split into words.
func ParseSeedBuild(words []string) (BuildSeedOptions, error) {
	var o BuildSeedOptions
	if len(words) < 4 || words[0] != "seed" || words[1] != "build" {
		return o, fmt.Errorf("seed build: want %q", gridfs.SeedBuildUsage)
	}
	o.Name, o.From = words[2], words[3]
	if o.From == "" {
		return o, fmt.Errorf("seed build %s: give the distribution (a CD image or a directory) after the name", o.Name)
	}
	var pw bool
	for _, kv := range words[4:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return o, fmt.Errorf("seed build %s: %q is not key=value (%s)", o.Name, kv, gridfs.SeedBuildUsage)
		}
		switch k {
		case "user":
			o.Identity.User = v
		case "authdom":
			o.Identity.AuthDom = v
		case "password":
			o.Identity.Password, pw = v, true
		case "profile":
			p, err := seedbuild.ParseProfile(v)
			if err != nil {
				return o, fmt.Errorf("seed build %s: %w", o.Name, err)
			}
			o.Profile = p
		case "sysname":
			o.Sysname = v
		case "size":
			mib, err := strconv.ParseInt(v, 10, 64)
			if err != nil || mib <= 0 {
				return o, fmt.Errorf("seed build %s: size=%q: want a size in MiB", o.Name, v)
			}
			o.Size = mib << 20
		default:
			return o, fmt.Errorf("seed build %s: unknown setting %q (user, authdom, password, profile, sysname, size)", o.Name, k)
		}
	}
	if o.Identity.User == "" || o.Identity.AuthDom == "" || !pw {
		return o, fmt.Errorf("seed build %s: give user=, authdom= and password= (the new seed's host owner)", o.Name)
	}
	if err := o.Identity.Validate(); err != nil {
		return o, fmt.Errorf("seed build %s: %w", o.Name, err)
	}
	return o, nil
}

// BuildSeed builds a seed from a Plan 9 distribution by the 9legacy
// recipe (a real install at an installer VM's console, on a switch of its
// own) and imports it into the grid (its image and its venti's arenas).
// The distribution is checked before any VM starts; a failed or cancelled
// build leaves no disk behind and no seed recorded. The seed's record
// carries the build's identity and sysname, so nodes made from it log in
// with them.
func (e *Engine) BuildSeed(ctx context.Context, opts BuildSeedOptions) (images.Seed, error) {
	name := opts.Name
	if name == "" {
		return images.Seed{}, errors.New("seed build: give the new seed a name")
	}
	e.mu.Lock()
	_, exists := e.g.Seed(name)
	e.mu.Unlock()
	if exists == nil {
		return images.Seed{}, fmt.Errorf("seed build: the grid already has a seed %s: choose another name", name)
	}
	fsys, closeFS, err := seedbuild.Open(opts.From)
	if err != nil {
		return images.Seed{}, fmt.Errorf("seed build: %w", err)
	}
	defer closeFS()
	d, err := seedbuild.Check(fsys, opts.From)
	if err != nil {
		return images.Seed{}, fmt.Errorf("seed build: %w", err)
	}
	dir := filepath.Join(e.opts.CacheDir, BuiltDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return images.Seed{}, fmt.Errorf("seed build: %w", err)
	}
	out := filepath.Join(dir, name+".qcow2")
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return images.Seed{}, fmt.Errorf("seed build: an old build of %s is in the way: %w", name, err)
	}
	log := e.log.With("seed", name)
	log.Info("building a seed", "from", opts.From, "profile", opts.Profile)
	res, err := seedbuild.Run(ctx, d, seedbuild.Legacy4e(), seedbuild.BuildOptions{
		Profile: opts.Profile, Identity: opts.Identity, Sysname: opts.Sysname, Size: opts.Size,
		Output: out, Accel: e.opts.Accel, Log: log, Progress: copyLogger(log, opts.Progress),
	})
	if err != nil {
		return images.Seed{}, err
	}
	seed, err := e.ImportSeed(ctx, name, res.Path, ImportOptions{Like: grid.DefaultSeed})
	if err != nil {
		os.Remove(res.Path)
		return images.Seed{}, err
	}
	// The record says what the build made, not what the template's image
	// holds.
	id := res.Identity
	seed.Description = fmt.Sprintf("built from %s (%s profile, 9legacy recipe)", opts.From, d.Kernel)
	seed.AuthID, seed.AuthDom, seed.LocalSysname = id.User, id.AuthDom, res.Sysname
	seed.Users = []images.Credential{{User: id.User, Password: id.Password}}
	seed.Notes = fmt.Sprintf("%d files, %d bytes; fossil archive %s", res.Files, res.Bytes, res.Archive)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.g.AddSeed(seed); err != nil {
		return images.Seed{}, fmt.Errorf("seed build: record %s: %w", name, err)
	}
	if err := e.saveLocked(); err != nil {
		return images.Seed{}, fmt.Errorf("seed build: record %s: %w", name, err)
	}
	log.Info("seed built", "vac", seed.Vac, "archive", res.Archive)
	return seed, nil
}

// copyLogInterval is how often a build's copy logs its bytes.
const copyLogInterval = 2 * time.Second

// copyLogger returns a Progress function that logs the copy step's bytes
// ("seed build copied", at most every copyLogInterval and when it is
// complete), so that clients following the event log see them, then
// passes every report on to next (may be nil).
func copyLogger(log *slog.Logger, next func(seedbuild.Progress)) func(seedbuild.Progress) {
	var mu sync.Mutex
	var last time.Time
	return func(p seedbuild.Progress) {
		if p.State == seedbuild.StepRunning && p.TotalBytes > 0 {
			mu.Lock()
			due := time.Since(last) >= copyLogInterval || p.Bytes == p.TotalBytes
			if due {
				last = time.Now()
			}
			mu.Unlock()
			if due {
				log.Info("seed build copied", "step", p.Step, "n", p.Index, "of", p.Steps, "bytes", p.Bytes, "total", p.TotalBytes)
			}
		}
		if next != nil {
			next(p)
		}
	}
}
