package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"gridlord/app"
	"gridlord/assets"
	"gridlord/engine/daemon"
	"gridlord/engine/grid"
	"gridlord/ui"
)

// appID matches FyneApp.toml's Details.ID.
const appID = "dev.gridlord.app"

// ensureGrid makes the default grid in dir unless dir holds one.
func ensureGrid(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, grid.FileName)); err == nil {
		return nil
	}
	_, err := daemon.InitGrid(dir, daemon.InitOptions{})
	return err
}

// runGUI opens the window. With -engine auto (the default) it talks to the
// grid's engine daemon: the one answering on GRIDDIR/engine.sock, or one it
// starts detached, making the default grid first in a fresh data
// directory; only if that fails, or with -engine local, it opens the grid
// in-process (model, embedded venti).
func runGUI(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "gui", "[-data DIR] [-grid DIR] [-venti-addr ADDR] [-engine auto|local]")
	data := fs.String("data", "", "data directory (default $XDG_DATA_HOME/gridlord or ~/.local/share/gridlord)")
	gridFlag := fs.String("grid", "", "grid directory (default DATA/grids/default)")
	addr := fs.String("venti-addr", app.DefaultVentiAddr, "listen address of the embedded venti (loopback unless you say otherwise)")
	mode := fs.String("engine", "auto", "auto: attach to the grid's engine daemon, or offer to start it when needed; local: never use a daemon")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *mode != "auto" && *mode != "local" {
		return fmt.Errorf("%w: -engine must be auto or local", errUsage)
	}
	if *data == "" {
		d, err := app.DefaultDataDir()
		if err != nil {
			return err
		}
		*data = d
	}
	dir := *gridFlag
	if dir == "" {
		dir = filepath.Join(*data, "grids", "default")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	local := func(ctx context.Context) (app.Backend, error) {
		return app.OpenLocal(ctx, app.LocalOptions{DataDir: *data, GridDir: dir, VentiAddr: *addr, Logger: env.log})
	}
	var engineArgs []string
	if fs.Lookup("venti-addr").Value.String() != app.DefaultVentiAddr {
		engineArgs = []string{"-venti-addr", *addr}
	}
	exe, exeErr := os.Executable()
	var b app.Backend
	if *mode == "auto" {
		// The window talks to the grid's engine: the one serving it, or
		// one started now (detached: VMs outlive the window), with the
		// default grid (the shipped Plan 9 seed) made on first use. No
		// question is asked: the first click just works.
		if r, err := app.DialRemote(ctx, dir); err == nil {
			env.log.Info("attached to the engine daemon", "grid", dir)
			b = r
		} else if exeErr == nil {
			if err := ensureGrid(dir); err != nil {
				return err
			}
			r, err := app.Connect(ctx, app.ConnectOptions{GridDir: dir, Engine: exe, EngineArgs: engineArgs, Logger: env.log})
			if err != nil {
				env.log.Warn("could not start the grid's engine; the window opens the grid in-process", "grid", dir, "err", err)
			} else {
				env.log.Info("started the grid's engine", "grid", dir, "pid", r.EnginePID)
				b = r
			}
		}
	}
	if b == nil {
		if b, err = local(ctx); err != nil {
			return err
		}
	}
	a := app.New(b, env.log)
	defer a.Close()

	var opts ui.Options
	if *mode == "auto" && exeErr == nil {
		opts.StartEngine = func(ctx context.Context) error {
			return a.StartEngine(ctx, app.ConnectOptions{GridDir: dir, Engine: exe, EngineArgs: engineArgs, Logger: env.log}, local)
		}
	}
	fa := fyneapp.NewWithID(appID)
	fa.SetIcon(fyne.NewStaticResource("icon.png", assets.AppIcon()))
	go func() {
		<-ctx.Done()
		fyne.Do(fa.Quit)
	}()
	ui.Run(fa, a, opts)
	return nil
}
