package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"gridlord/engine/atomicfile"
	"gridlord/engine/grid"
	"gridlord/engine/seedstore"
	"gridlord/engine/vac"
	"gridlord/engine/venti/arena"
	"gridlord/images"
	"gridlord/images/seeds"
)

// DirectBoot makes a seed's nodes boot a kernel given on QEMU's command line
// (-kernel/-initrd/-append) instead of the disk's own boot loader; the node's
// disk (the configured linked clone) is still attached. It exists for
// stand-in guests (testing/standin: Linux + busybox) that play Plan 9 nodes
// in tests, where no Plan 9 image is available. The grid model knows nothing
// about it; the engine keeps the records in GRIDDIR/boot.json.
type DirectBoot struct {
	// Kernel and Initrd are host paths.
	Kernel string `json:"kernel"`
	Initrd string `json:"initrd,omitempty"`
	// Append is the kernel command line; "{name}" is replaced by the node's
	// name.
	Append string `json:"append,omitempty"`
	// Ready is a regexp the console shows once the guest has booted.
	Ready string `json:"ready"`
	// Setup maps a node kind to console lines typed once Ready was seen
	// (for example, a stand-in fossil starts a listener on 564).
	Setup map[string][]string `json:"setup,omitempty"`
	// Arch overrides the seed's architecture ("amd64" or "386").
	Arch string `json:"arch,omitempty"`
	// NIC overrides the seed's network card model (the stand-in drives an
	// e1000).
	NIC string `json:"nic,omitempty"`
}

// validate checks the record.
func (b *DirectBoot) validate() error {
	if b.Kernel == "" {
		return errors.New("direct boot needs a kernel")
	}
	if _, err := regexp.Compile(b.Ready); err != nil || b.Ready == "" {
		return fmt.Errorf("direct boot ready pattern %q: must be a non-empty regexp", b.Ready)
	}
	return nil
}

// loadBoot reads GRIDDIR/boot.json (absent: none).
func loadBoot(dir string) (map[string]DirectBoot, error) {
	m := map[string]DirectBoot{}
	b, err := os.ReadFile(filepath.Join(dir, grid.BootName))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read boot records: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w (fix or remove the file)", filepath.Join(dir, grid.BootName), err)
	}
	return m, nil
}

// saveBootLocked writes boot.json atomically; e.mu must be held.
func (e *Engine) saveBootLocked() error {
	b, err := json.MarshalIndent(e.boot, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(e.dir, grid.BootName), append(b, '\n'), 0o644)
}

// ImportOptions configures ImportSeed.
type ImportOptions struct {
	// Like names the seed (catalog or grid) the image is a copy of, which
	// says its family, roles and kernels; default: the seed of the same
	// name if the grid or catalog has one (importing a catalog seed's
	// file), else grid.DefaultSeed.
	Like string
	// Boot, if set, boots the seed's nodes directly (see DirectBoot).
	Boot *DirectBoot
}

// ImportSeed stores the disk image at path in the embedded venti as a vac
// archive, records the seed (with its vac score and SHA-256) in the grid and
// returns the record. Blocks already stored (an earlier version of the same
// image, another seed) are deduplicated by the venti.
func (e *Engine) ImportSeed(ctx context.Context, name, path string, opts ImportOptions) (images.Seed, error) {
	if opts.Boot != nil {
		if err := opts.Boot.validate(); err != nil {
			return images.Seed{}, fmt.Errorf("import seed %s: %w", name, err)
		}
	}
	var err error
	e.mu.Lock()
	var tmpl images.Seed
	if opts.Like != "" {
		tmpl, err = e.g.Seed(opts.Like)
	} else if s, serr := e.g.Seed(name); serr == nil {
		// The catalog entry being imported, or an earlier import: its
		// family, roles and kernels stay.
		tmpl = s
	} else {
		tmpl, err = e.g.Seed(grid.DefaultSeed)
	}
	e.mu.Unlock()
	if err != nil {
		return images.Seed{}, fmt.Errorf("import seed %s: template: %w", name, err)
	}
	seed, err := grid.LocalSeed(name, path, tmpl)
	if err != nil {
		return images.Seed{}, err
	}
	abs, sum := seed.Path, seed.SHA256
	// A disk with its own venti shares its blocks with the grid's venti
	// (engine/seedstore); any other image is archived as its file.
	res, err := seedstore.Import(ctx, e.store, abs, seedstore.ImportOptions{
		Name:    name,
		TempDir: e.opts.CacheDir,
		Arena: arena.ImportOptions{
			StateDir: filepath.Join(e.opts.CacheDir, "arenas-"+sum),
			Problem: func(pe *arena.Error) {
				e.log.Warn("seed arenas: corrupt clump skipped", "seed", name, "err", pe)
			},
		},
		Log: e.log,
	})
	switch {
	case err == nil:
		seed.Vac, seed.VacForm, seed.DiskSHA256 = vac.FormatScore(res.Vac), images.VacFormDisk, res.DiskSHA256
		seed.VentiImported = true
		e.log.Info("seed arenas imported", "seed", name, "blocks", res.Arena.Written, "corrupt", res.Arena.Corrupt)
	case errors.Is(err, seedstore.ErrNoArenas):
		score, err := vac.Create(ctx, e.store, []string{abs}, vac.Options{Logger: e.log})
		if err != nil {
			return images.Seed{}, fmt.Errorf("import seed %s: store %s in venti: %w", name, abs, err)
		}
		seed.Vac = vac.FormatScore(score)
	default:
		return images.Seed{}, fmt.Errorf("import seed %s: %w", name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.g.AddSeed(seed); err != nil {
		return images.Seed{}, err
	}
	if opts.Boot != nil {
		e.boot[name] = *opts.Boot
		if err := e.saveBootLocked(); err != nil {
			return images.Seed{}, err
		}
	}
	if err := e.saveLocked(); err != nil {
		return images.Seed{}, err
	}
	e.log.Info("seed imported", "seed", name, "vac", seed.Vac, "sha256", sum)
	return seed, nil
}

// Materialize returns the path of the seed's image in the cache, restoring
// it from its vac archive in the venti first if it is not there yet. The
// cached file is read-only; node disks are linked clones of it.
func (e *Engine) Materialize(ctx context.Context, seedName string) (string, error) {
	e.mu.Lock()
	seed, err := e.g.Seed(seedName)
	e.mu.Unlock()
	if err != nil {
		return "", err
	}
	if seed.Vac == "" && seed.Shipped != "" {
		if seed, err = e.importShipped(ctx, seed); err != nil {
			return "", err
		}
	}
	if seed.Vac == "" {
		return "", fmt.Errorf("seed %s is not stored in the grid's venti yet: import it (gridlord seed import %s FILE)", seedName, seedName)
	}
	if seed.VacForm == images.VacFormFossil {
		return "", fmt.Errorf("seed %s is a file-system snapshot, not a disk: make nodes of it with gridlord spawn %s", seedName, seedName)
	}
	score, err := vac.ParseScore(seed.Vac)
	if err != nil {
		return "", fmt.Errorf("seed %s: %w", seedName, err)
	}
	e.seedMu.Lock()
	defer e.seedMu.Unlock()
	dir := filepath.Join(e.opts.CacheDir, score.String())
	if p, err := singleFile(dir); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(e.opts.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("seed cache: %w", err)
	}
	tmp, err := os.MkdirTemp(e.opts.CacheDir, "."+score.String()+".tmp")
	if err != nil {
		return "", fmt.Errorf("seed cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	e.log.Info("materialising seed", "seed", seedName, "vac", seed.Vac)
	if seed.VacForm == images.VacFormDisk {
		err = seedstore.Restore(ctx, e.store, score, filepath.Join(tmp, seedName+".qcow2"), seed.DiskSHA256, e.log)
	} else {
		var a *vac.Archive
		if a, err = vac.Open(ctx, e.store, score); err == nil {
			err = vac.Restore(ctx, a, tmp, vac.RestoreOptions{Logger: e.log})
		}
	}
	if err != nil {
		return "", fmt.Errorf("materialise seed %s from %s: %w", seedName, seed.Vac, err)
	}
	p, err := singleFile(tmp)
	if err != nil {
		return "", fmt.Errorf("materialise seed %s: %w", seedName, err)
	}
	os.Chmod(p, 0o444)
	if err := os.Rename(tmp, dir); err != nil {
		if q, err2 := singleFile(dir); err2 == nil { // another engine won the race
			return q, nil
		}
		return "", fmt.Errorf("materialise seed %s: %w", seedName, err)
	}
	return filepath.Join(dir, filepath.Base(p)), nil
}

// ShippedDir is where shipped seed images are unpacked (under the cache)
// while they are imported.
const ShippedDir = "shipped"

// importShipped stores a seed that ships with Gridlord (images/seeds) in the
// grid's venti, once: the first start of a node of the default grid needs
// no file and no network. The unpacked file is removed afterwards; the
// venti keeps the image.
func (e *Engine) importShipped(ctx context.Context, seed images.Seed) (images.Seed, error) {
	e.shippedMu.Lock()
	defer e.shippedMu.Unlock()
	e.mu.Lock()
	cur, err := e.g.Seed(seed.Name)
	e.mu.Unlock()
	if err == nil && cur.Vac != "" {
		return cur, nil // another start imported it meanwhile
	}
	dir := filepath.Join(e.opts.CacheDir, ShippedDir)
	e.log.Info("importing the seed that ships with Gridlord", "seed", seed.Name, "file", seed.Shipped)
	path, err := seeds.Extract(dir, seed.Shipped, seed.SHA256)
	if err != nil {
		return seed, fmt.Errorf("seed %s: %w", seed.Name, err)
	}
	defer os.Remove(path)
	return e.ImportSeed(ctx, seed.Name, path, ImportOptions{})
}

// singleFile returns the one regular file in dir.
func singleFile(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if len(ents) != 1 || !ents[0].Type().IsRegular() {
		return "", fmt.Errorf("%s should hold exactly one image file", dir)
	}
	return filepath.Join(dir, ents[0].Name()), nil
}

// Seeds returns one line per seed the grid knows (its own records, then the
// catalog's): "NAME vac:SCORE SIZE FORMAT" ("-" for a missing score).
func (e *Engine) Seeds() ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var lines []string
	seen := map[string]bool{}
	add := func(s images.Seed) {
		if seen[s.Name] {
			return
		}
		seen[s.Name] = true
		v := s.Vac
		if v == "" {
			v = "-"
		}
		line := fmt.Sprintf("%s %s %d %s", s.Name, v, s.Size, s.Format)
		if _, ok := e.boot[s.Name]; ok {
			line += " direct-boot"
		}
		lines = append(lines, line)
	}
	own := make([]images.Seed, 0, len(e.g.Seeds))
	for _, r := range e.g.Seeds {
		own = append(own, r.Seed)
	}
	sort.Slice(own, func(i, j int) bool { return own[i].Name < own[j].Name })
	for _, s := range own {
		add(s)
	}
	cat := e.g.Catalog()
	for _, n := range cat.Names() {
		s, _ := cat.Lookup(n)
		add(s)
	}
	return lines, nil
}
