package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gridlord/engine/grid"
	"gridlord/images"
)

// InitOptions configures InitGrid.
type InitOptions struct {
	// Seed names the seed of the default fossil and cpu: a catalog seed,
	// or, with SeedPath, the name of a local image to import.
	Seed string
	// SeedPath is a local disk image to use as the seed (recorded now; its
	// vac archive is stored by the engine's seed import).
	SeedPath string
	// Like names the catalog seed the local image is a copy of (default
	// grid.DefaultSeed).
	Like string
	// Subnet is the grid's network ("" for grid.DefaultSubnet).
	Subnet string
}

// InitGrid creates the default grid (embedded venti, fossil1, cpu1) in dir.
// With a local seed image, its seed record is added to the grid (without a
// vac score: ImportSeed stores the image in the venti).
func InitGrid(dir string, opts InitOptions) (*grid.Grid, error) {
	if _, err := os.Stat(filepath.Join(dir, grid.FileName)); err == nil {
		return nil, fmt.Errorf("%s already holds a grid", dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var gopts []grid.Option
	if opts.Subnet != "" {
		gopts = append(gopts, grid.WithSubnet(opts.Subnet))
	}
	var local *images.Seed
	if opts.SeedPath != "" {
		name := opts.Seed
		if name == "" {
			return nil, errors.New("a local seed image needs a seed name")
		}
		cat := images.Builtin()
		likeName := opts.Like
		if likeName == "" {
			likeName = grid.DefaultSeed
		}
		like, ok := cat.Lookup(likeName)
		if !ok {
			return nil, fmt.Errorf("no catalog seed %s to describe %s", likeName, opts.SeedPath)
		}
		s, err := localSeed(name, opts.SeedPath, like)
		if err != nil {
			return nil, err
		}
		cat.Seeds = append(cat.Seeds, s)
		local = &s
		gopts = append(gopts, grid.WithCatalog(cat))
	}
	if opts.Seed != "" {
		gopts = append(gopts, grid.WithSeed(opts.Seed))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("grid directory: %w", err)
	}
	g, err := grid.New(dir, gopts...)
	if err != nil {
		return nil, err
	}
	if local != nil {
		if err := g.AddSeed(*local); err != nil {
			return nil, err
		}
		if err := g.Save(); err != nil {
			return nil, err
		}
	}
	return grid.Load(dir)
}
