package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gridlord/engine/atomicfile"
	"gridlord/engine/grid"
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
	// Seed names a catalog seed for the fossil and cpu; with Image, the
	// catalog seed the image is a copy of.
	Seed string
	// Image is a local disk image (raw or qcow2) to use as the seed
	// instead: the engine stores it in the grid's venti.
	Image string
	// AuthDom and User are the nodes' auth domain and host owner.
	AuthDom, User string
}

// NewGrid creates the default grid (embedded venti, fossil+auth, cpu) in
// spec.Dir and opens it, as gridlord init does: the model (grid.Init), then
// the grid's engine (started for it), which imports a local image into the
// grid's venti ("seed import", so the first start finds it there).
func (a *App) NewGrid(ctx context.Context, spec NewGridSpec) error {
	if spec.Dir == "" {
		return errors.New("choose a directory for the new grid")
	}
	if _, err := os.Stat(filepath.Join(spec.Dir, grid.FileName)); err == nil {
		return fmt.Errorf("%s already holds a grid: choose another directory or open it", spec.Dir)
	}
	opts := grid.InitOptions{Seed: spec.Seed, User: spec.User, AuthDom: spec.AuthDom}
	if spec.Image != "" {
		abs, err := filepath.Abs(spec.Image)
		if err != nil {
			return fmt.Errorf("new grid: seed image %s: %w", spec.Image, err)
		}
		opts.SeedPath, opts.Seed, opts.Like = abs, grid.SeedNameFromFile(abs), spec.Seed
	}
	if _, err := grid.Init(spec.Dir, opts); err != nil {
		return fmt.Errorf("new grid in %s: %w", spec.Dir, err)
	}
	r, err := a.connect(ctx, spec.Dir)
	if err != nil {
		return fmt.Errorf("new grid in %s: start its engine: %w", spec.Dir, err)
	}
	if opts.SeedPath != "" {
		words := []string{"seed", "import", opts.Seed, opts.SeedPath}
		if opts.Like != "" {
			words = append(words, "like="+opts.Like)
		}
		if err := r.Ctl(ctx, words...); err != nil {
			r.Close()
			return fmt.Errorf("new grid in %s: store the seed image in its venti: %w", spec.Dir, err)
		}
	}
	return a.switchTo(r)
}

// OpenGrid makes the App show the grid in dir, through that grid's engine
// (started when none answers). The previous grid's engine keeps running.
func (a *App) OpenGrid(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, grid.FileName)); err != nil {
		return fmt.Errorf("open grid %s: %w", dir, err)
	}
	r, err := a.connect(ctx, dir)
	if err != nil {
		return fmt.Errorf("open grid %s: %w", dir, err)
	}
	return a.switchTo(r)
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
	g, err := a.engine().Grid(ctx)
	if err != nil {
		return nil, err
	}
	cmds, name, err := CloneCommands(g, spec)
	if err != nil {
		return nil, err
	}
	for _, c := range cmds {
		if err := grid.Apply(g, c); err != nil {
			return nil, err
		}
	}
	return g.Config(name)
}

// Clone carries out spec and returns the new node's name. The commands are
// checked on a copy first, so a spec the grid refuses changes nothing. A
// node source must be stopped: the engine copies its disk at once (and
// refuses a running one).
func (a *App) Clone(ctx context.Context, spec CloneSpec) (string, error) {
	if _, err := a.PreviewClone(ctx, spec); err != nil {
		return "", err
	}
	r := a.engine()
	g, err := r.Grid(ctx)
	if err != nil {
		return "", err
	}
	cmds, name, err := CloneCommands(g, spec)
	if err != nil {
		return "", err
	}
	for _, c := range cmds {
		if err := r.Ctl(ctx, c...); err != nil {
			return name, fmt.Errorf("clone: %s: %w", strings.Join(c, " "), err)
		}
	}
	return name, nil
}

// WriteFile replaces the file at path with data atomically (temp file,
// fsync, rename), as every file Gridlord writes is.
func WriteFile(path string, data []byte) error { return atomicfile.Write(path, data, 0o644) }
