package app

import (
	"context"
	"fmt"

	"gridlord/engine/gridfs"
)

// SeedBuildSpec is what the "New seed from a Plan 9 CD" wizard asks.
type SeedBuildSpec struct {
	// Name is the new seed's name; From the distribution (a CD image or
	// a directory holding its tree), a path on the engine's host.
	Name, From string
	// Profile is "grid" (default) or "full".
	Profile string
	// Identity is the seed's host owner (User, AuthDom, Password).
	Identity Identity
	// Sysname is the seed's own system name (default: the engine's).
	Sysname string
}

// SeedBuildProgress is where a seed build is (gridfs.SeedBuildProgress).
type SeedBuildProgress = gridfs.SeedBuildProgress

// BuildSeed builds a seed from a Plan 9 distribution by a real install in
// the engine (the /identity command gridfs.SeedBuildUsage: it holds a
// password, so it is not logged) and imports it into the grid. It returns
// when the build has ended; progress (may be nil) gets each step's
// progress as the engine's event log reports it. Under a Cancellable ctx,
// ending ctx cancels the build in the engine, which removes what it made.
func (a *App) BuildSeed(ctx context.Context, spec SeedBuildSpec, progress func(SeedBuildProgress)) error {
	id := spec.Identity
	if spec.Name == "" || spec.From == "" {
		return fmt.Errorf("seed build: give the new seed a name and the Plan 9 CD image or directory to build it from")
	}
	if id.User == "" || id.AuthDom == "" || id.Password == "" {
		return fmt.Errorf("seed build %s: give the host owner, auth domain and password", spec.Name)
	}
	words := []string{"seed", "build", spec.Name, spec.From, "user=" + id.User, "authdom=" + id.AuthDom, "password=" + id.Password}
	if spec.Profile != "" {
		words = append(words, "profile="+spec.Profile)
	}
	if spec.Sysname != "" {
		words = append(words, "sysname="+spec.Sysname)
	}
	return a.engine().c.BuildSeed(ctx, spec.Name, words, progress)
}
