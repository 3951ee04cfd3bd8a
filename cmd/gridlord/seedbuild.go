package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/seedbuild"
)

// runSeedBuild builds a seed from a Plan 9 CD image or directory by a real
// install in the grid's engine (started if none runs) and imports it into
// the grid, printing each step's progress as the engine logs it. Ctrl-C
// cancels the build in the engine, which removes what it made.
func runSeedBuild(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "seed build", "[-grid DIR] --from ISO|DIR --name NAME [--profile grid|full] [--identity USER@DOM:PASSWORD | -u USER -authdom DOM]")
	dirFlag := gridFlags(fs)
	from := fs.String("from", "", "the Plan 9 distribution: a 9legacy or 4e CD image (.iso) or a directory holding its tree")
	name := fs.String("name", "", "the new seed's name (default: the distribution's base name)")
	profile := fs.String("profile", string(seedbuild.ProfileGrid), "what to install: grid (what a running grid needs, ~67 MB) or full (everything but other architectures, ~280 MB)")
	identity := fs.String("identity", "", "the seed's host owner as USER@DOMAIN:PASSWORD (or -u and -authdom, the password from $PASS or asked)")
	user := fs.String("u", "bootes", "host owner, when --identity is not given")
	dom := fs.String("authdom", "grid", "auth domain, when --identity is not given")
	sysname := fs.String("sysname", "helix", "the seed's own system name (its /cfg directory and prompt)")
	sizeMiB := fs.Int64("size", 0, "disk size in MiB (default 1024, or 2048 for full)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *from == "" {
		fs.Usage()
		return fmt.Errorf("%w: give --from ISO|DIR", errUsage)
	}
	prof, err := seedbuild.ParseProfile(*profile)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var id seedbuild.Identity
	if *identity != "" {
		if id, err = seedbuild.ParseIdentity(*identity); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	} else {
		pw := os.Getenv("PASS")
		if pw == "" {
			if pw, err = readPassword(env, fmt.Sprintf("password for %s@%s: ", *user, *dom)); err != nil {
				return err
			}
		}
		id = seedbuild.Identity{User: *user, AuthDom: *dom, Password: pw}
		if err := id.Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	src, err := filepath.Abs(*from)
	if err != nil {
		return fmt.Errorf("seed build: %w", err)
	}
	if *name == "" {
		base := filepath.Base(src)
		*name = base[:len(base)-len(filepath.Ext(base))]
	}
	// A broken distribution is refused before an engine is started.
	fsys, closeFS, err := seedbuild.Open(src)
	if err != nil {
		return err
	}
	_, err = seedbuild.Check(fsys, src)
	closeFS()
	if err != nil {
		return err
	}
	dir, err := gridDir(*dirFlag)
	if err != nil {
		return err
	}
	c, err := dialEngine(ctx, env, dir)
	if err != nil {
		return err
	}
	defer c.Close()
	words := []string{"seed", "build", *name, src, "user=" + id.User, "authdom=" + id.AuthDom, "password=" + id.Password,
		"profile=" + string(prof), "sysname=" + *sysname}
	if *sizeMiB > 0 {
		words = append(words, fmt.Sprintf("size=%d", *sizeMiB))
	}
	pr := &progressPrinter{w: env.stdout}
	start := time.Now()
	if err := c.BuildSeed(gridfs.Cancellable(ctx), *name, words, pr.print); err != nil {
		return err
	}
	b, err := c.ReadFile(ctx, "grid.json")
	if err != nil {
		return err
	}
	g, err := grid.Parse(filepath.Join(dir, grid.FileName)+" (from the engine)", b)
	if err != nil {
		return err
	}
	seed, err := g.Seed(*name)
	if err != nil {
		return fmt.Errorf("seed build: the engine built %s but the grid has no record of it: %w", *name, err)
	}
	fmt.Fprintf(env.stdout, "seed %s built in %v: %s, %s@%s, sysname %s\n", seed.Name, time.Since(start).Round(time.Second), seed.Vac, seed.AuthID, seed.AuthDom, seed.LocalSysname)
	for _, s := range pr.times() {
		fmt.Fprintf(env.stdout, "  %-14s %v\n", s.Name, s.Duration.Round(100*time.Millisecond))
	}
	return nil
}

// progressPrinter prints a line when a step starts or ends, and the
// copy's bytes as they grow.
type progressPrinter struct {
	w     io.Writer
	mu    sync.Mutex
	last  string
	steps []seedbuild.StepTime
}

func (p *progressPrinter) print(ev gridfs.SeedBuildProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prefix := fmt.Sprintf("[%d/%d] %s", ev.Index, ev.Steps, ev.Step)
	var line string
	switch {
	case ev.Done:
		line = fmt.Sprintf("%s done in %v", prefix, ev.Took.Round(100*time.Millisecond))
		p.steps = append(p.steps, seedbuild.StepTime{Name: ev.Step, Duration: ev.Took})
	case ev.Total > 0:
		line = fmt.Sprintf("%s: %.1f of %.1f MB copied", prefix, float64(ev.Bytes)/1e6, float64(ev.Total)/1e6)
	default:
		line = prefix + " …"
	}
	if line != p.last {
		fmt.Fprintln(p.w, line)
		p.last = line
	}
}

func (p *progressPrinter) times() []seedbuild.StepTime {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seedbuild.StepTime(nil), p.steps...)
}
