package app

import (
	"gridlord/engine/atomicfile"

	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gridlord/engine/grid"
	"gridlord/engine/qcow2"
	"gridlord/images"
)

// SeedsFor returns the catalog seeds (plus the grid's own records, when g
// is not nil) that can play kind, by name. kind "" returns every seed.
func SeedsFor(g *grid.Grid, kind string) []string {
	var names []string
	add := func(s images.Seed) {
		if (kind == "" || s.CanPlay(kind)) && !slices.Contains(names, s.Name) {
			names = append(names, s.Name)
		}
	}
	if g != nil {
		for _, r := range g.Seeds {
			add(r.Seed)
		}
	}
	for _, s := range images.Builtin().Seeds {
		add(s)
	}
	return names
}

// NewGridSpec is what the New grid wizard asks for.
type NewGridSpec struct {
	// Dir is the new grid's directory (must not hold a grid yet).
	Dir string
	// Seed names a catalog seed for the fossil and cpu; ignored when
	// Local is set.
	Seed string
	// Local is an imported local image (ImportSeed) to use instead.
	Local *images.Seed
	// AuthDom and User are the nodes' auth domain and host owner.
	AuthDom, User string
}

// NewGrid creates the default grid (embedded venti, fossil+auth, cpu) in
// spec.Dir and saves it. It does not open it: see OpenGrid.
func NewGrid(spec NewGridSpec) error {
	if spec.Dir == "" {
		return errors.New("choose a directory for the new grid")
	}
	if _, err := os.Stat(filepath.Join(spec.Dir, grid.FileName)); err == nil {
		return fmt.Errorf("%s already holds a grid: choose another directory or open it", spec.Dir)
	}
	opts := []grid.Option{grid.WithIdentity(spec.User, spec.AuthDom)}
	seed := spec.Seed
	if spec.Local != nil {
		cat := images.Builtin()
		c := &images.Catalog{Version: cat.Version, Seeds: append(slices.Clone(cat.Seeds), *spec.Local)}
		opts = append(opts, grid.WithCatalog(c))
		seed = spec.Local.Name
	}
	if seed != "" {
		opts = append(opts, grid.WithSeed(seed))
	}
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		return fmt.Errorf("new grid: %w", err)
	}
	g, err := grid.New(spec.Dir, opts...)
	if err != nil {
		return fmt.Errorf("new grid in %s: %w", spec.Dir, err)
	}
	if spec.Local != nil {
		// Record the local seed in the grid itself, so the grid loads
		// without it being in any catalog.
		if err := g.AddSeed(*spec.Local); err != nil {
			return err
		}
		return g.Save()
	}
	return nil
}

// Progress reports done of total bytes.
type Progress func(done, total int64)

// ImportSeed makes a seed record for the local disk image at path (raw or
// qcow2), reading the whole file for its SHA-256 and reporting progress;
// like is the catalog seed it is a copy of (family, roles, kernels). Cancel
// ctx to stop it.
func ImportSeed(ctx context.Context, path, name, like string, progress Progress) (images.Seed, error) {
	tmpl, ok := images.Builtin().Lookup(like)
	if !ok {
		return images.Seed{}, fmt.Errorf("import %s: no catalog seed %q to take its family and kernels from", path, like)
	}
	d, err := qcow2.OpenReadOnly(path)
	if err != nil {
		return images.Seed{}, fmt.Errorf("import %s: %w", path, err)
	}
	size := d.Size()
	d.Close()
	f, err := os.Open(path)
	if err != nil {
		return images.Seed{}, fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return images.Seed{}, err
	}
	header := make([]byte, 512)
	n, err := io.ReadFull(f, header)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return images.Seed{}, fmt.Errorf("import %s: %w", path, err)
	}
	header = header[:n]
	h := sha256.New()
	h.Write(header)
	buf := make([]byte, 1<<20)
	done := int64(n)
	for {
		if err := ctx.Err(); err != nil {
			return images.Seed{}, fmt.Errorf("import %s: %w", path, err)
		}
		m, err := f.Read(buf)
		h.Write(buf[:m])
		done += int64(m)
		if progress != nil {
			progress(done, fi.Size())
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return images.Seed{}, fmt.Errorf("import %s: %w", path, err)
		}
	}
	if name == "" {
		name = strings.ToLower(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	}
	return images.Local(name, path, size, header, hex.EncodeToString(h.Sum(nil)), tmpl)
}

// GridOpener is a backend that can switch to another grid directory.
type GridOpener interface {
	OpenGrid(ctx context.Context, dir string) error
}

// OpenGrid switches the backend to the grid in dir.
func (a *App) OpenGrid(ctx context.Context, dir string) error {
	o, ok := a.Backend().(GridOpener)
	if !ok {
		return fmt.Errorf("open %s: this engine serves one grid; start another engine with \"gridlord engine -grid %s\"", dir, dir)
	}
	if err := o.OpenGrid(ctx, dir); err != nil {
		return err
	}
	a.setBackend(a.Backend())
	return nil
}

// OpenGrid implements GridOpener: it loads the grid in dir (which must
// exist) in place of the current one. Nodes of the old grid must be stopped.
func (l *Local) OpenGrid(ctx context.Context, dir string) error {
	g, err := grid.Load(dir)
	if err != nil {
		return fmt.Errorf("open grid: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.grid.Nodes {
		if n.HasVM() && l.state(n) != "stopped" && l.state(n) != "failed" {
			return fmt.Errorf("open grid %s: %s of the current grid is %s; stop the grid first", dir, n.Name, l.state(n))
		}
	}
	l.grid = g
	l.notes.Notify()
	return nil
}

// CloneSpec is what the Clone machine wizard asks for.
type CloneSpec struct {
	// Source is a stopped node to clone (its disk is copied), or "seed:"
	// followed by a seed name to start from that seed.
	Source string
	// Name is the new node's name ("" picks the next free one).
	Name string
	// Kind is the new node's role; for a node source it must be the
	// source's kind ("" means that).
	Kind string
	// MemoryMB is the guest memory (0 keeps the default).
	MemoryMB int
	// WireTo lists the nodes the new node is wired to; nil keeps what a
	// clone inherits (none for a seed).
	WireTo []string
}

// CloneCommands turns spec into the grid commands that carry it out, given
// the grid as it is; it also returns the new node's name.
func CloneCommands(g *grid.Grid, spec CloneSpec) ([][]string, string, error) {
	var cmds [][]string
	name := spec.Name
	var inherited []string
	if seed, ok := strings.CutPrefix(spec.Source, "seed:"); ok {
		if spec.Kind == "" {
			return nil, "", errors.New("choose the new node's role")
		}
		if name == "" {
			name = g.NextName(grid.Kind(spec.Kind))
		}
		cmds = append(cmds, []string{"add", spec.Kind, name, seed})
	} else {
		src := g.Node(spec.Source)
		if src == nil {
			return nil, "", fmt.Errorf("no node %q to clone", spec.Source)
		}
		if !src.HasVM() {
			return nil, "", fmt.Errorf("%s is the embedded venti: it cannot be cloned", src.Name)
		}
		if spec.Kind != "" && spec.Kind != string(src.Kind) {
			return nil, "", fmt.Errorf("a clone of %s is a %s: to make a %s, start from a seed", src.Name, src.Kind, spec.Kind)
		}
		if name == "" {
			name = g.NextName(src.Kind)
		}
		cmds = append(cmds, []string{"clone", src.Name, name})
		for _, t := range g.Dependencies(src) {
			inherited = append(inherited, t.Name)
		}
	}
	if spec.WireTo != nil {
		for _, t := range inherited {
			if !slices.Contains(spec.WireTo, t) {
				cmds = append(cmds, []string{"unwire", name, t})
			}
		}
		for _, t := range spec.WireTo {
			if !slices.Contains(inherited, t) {
				cmds = append(cmds, []string{"wire", name, t})
			}
		}
	}
	if spec.MemoryMB > 0 {
		// Last: an engine without the memory verb still leaves a wired node.
		cmds = append(cmds, []string{"memory", name, strconv.Itoa(spec.MemoryMB)})
	}
	return cmds, name, nil
}

// PreviewClone returns the configuration the clone will get, computed on a
// copy of the grid: nothing is changed.
func (a *App) PreviewClone(ctx context.Context, spec CloneSpec) (*grid.NodeConfig, error) {
	g, err := a.Backend().Grid(ctx)
	if err != nil {
		return nil, err
	}
	cmds, name, err := CloneCommands(g, spec)
	if err != nil {
		return nil, err
	}
	for _, c := range cmds {
		if err := ApplyCtl(g, c...); err != nil {
			return nil, err
		}
	}
	return g.Config(name)
}

// Clone carries out spec and returns the new node's name. A node source
// must be stopped (its disk is copied). The commands are checked on a copy
// first, so a spec the grid refuses changes nothing.
func (a *App) Clone(ctx context.Context, spec CloneSpec) (string, error) {
	if _, err := a.PreviewClone(ctx, spec); err != nil {
		return "", err
	}
	b := a.Backend()
	if !strings.HasPrefix(spec.Source, "seed:") {
		st, err := b.NodeStatus(ctx, spec.Source)
		if err != nil {
			return "", err
		}
		if s := firstWord(st); s != "stopped" && s != "failed" {
			return "", fmt.Errorf("%s is %s: stop it before cloning (its disk is copied)", spec.Source, s)
		}
	}
	g, err := b.Grid(ctx)
	if err != nil {
		return "", err
	}
	cmds, name, err := CloneCommands(g, spec)
	if err != nil {
		return "", err
	}
	for _, c := range cmds {
		if err := b.Ctl(ctx, c...); err != nil {
			return name, fmt.Errorf("clone: %s: %w", strings.Join(c, " "), err)
		}
	}
	return name, nil
}

// WriteFile replaces the file at path with data atomically (temp file,
// fsync, rename), as every file Gridlord writes is.
func WriteFile(path string, data []byte) error { return atomicfile.Write(path, data, 0o644) }
