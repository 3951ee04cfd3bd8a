package main

import (
	"context"
	"fmt"
	"strings"

	"gridlord/images"
)

// runSeedDownload fetches a catalog seed image and verifies its checksum.
func runSeedDownload(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "seed download", "[-o DIR] [-unverified] NAME")
	dir := fs.String("o", ".", "`directory` to put the image in")
	unverified := fs.Bool("unverified", false, "download even when the catalog records no checksum")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: name one seed of the catalog: %s", errUsage, strings.Join(images.Builtin().Names(), ", "))
	}
	s, ok := images.Builtin().Lookup(fs.Arg(0))
	if !ok {
		return fmt.Errorf("%w: no seed %q in the catalog; known: %s", errUsage, fs.Arg(0), strings.Join(images.Builtin().Names(), ", "))
	}
	bar := newProgressBar(env.stderr, "download "+s.Name)
	path, err := images.Download(ctx, nil, s, *dir, *unverified, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s\nimport it with: gridlord seed import %s %s\n", path, s.Name, path)
	return nil
}
