package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
	_, err := grid.Init(dir, grid.InitOptions{})
	return err
}

// runGUI opens the window, a gridfs client of the grid's engine: the one
// answering on GRIDDIR/engine.sock, or one it starts (the default grid is
// made first in a fresh data directory). No question is asked: the first
// click just works. With -engine detached (the default) the engine is a
// process of its own, so VMs outlive the window; with -engine inprocess it
// runs in this process, served on the same socket, and ends with the window
// (its VMs keep running for the next engine to re-adopt).
func runGUI(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "gui", "[-data DIR] [-grid DIR] [-venti-addr ADDR] [-engine detached|inprocess]")
	data := fs.String("data", "", "data directory (default $XDG_DATA_HOME/gridlord or ~/.local/share/gridlord)")
	gridFlag := fs.String("grid", "", "grid directory (default DATA/grids/default)")
	addr := fs.String("venti-addr", "", "listen address of the embedded venti of an engine started here (default "+grid.DefaultVentiAddr+", loopback unless you say otherwise)")
	mode := fs.String("engine", "detached", "detached: attach to the grid's engine or start one that outlives the window; inprocess: run the engine in this process")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *mode != "detached" && *mode != "inprocess" {
		return fmt.Errorf("%w: -engine must be detached or inprocess", errUsage)
	}
	if *data == "" {
		d, err := grid.DefaultDataDir()
		if err != nil {
			return err
		}
		*data = d
	}
	dir := *gridFlag
	if dir == "" {
		dir = grid.DefaultGridDir(*data)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to start the grid's engine with: %w", err)
	}
	var engineArgs []string
	if *addr != "" {
		engineArgs = []string{"-venti-addr", *addr}
	}
	connect := func(ctx context.Context, dir string) (*app.Remote, error) {
		r, err := app.Connect(ctx, app.ConnectOptions{GridDir: dir, Engine: exe, EngineArgs: engineArgs, Logger: env.log})
		if err == nil && r.EnginePID != 0 {
			env.log.Info("started the grid's engine", "grid", dir, "pid", r.EnginePID)
		}
		return r, err
	}
	if err := ensureGrid(dir); err != nil {
		return err
	}
	var r *app.Remote
	if *mode == "inprocess" {
		var stop func()
		if r, stop, err = serveInProcess(ctx, env, dir, *addr); err != nil {
			return err
		}
		defer stop()
	} else if r, err = connect(ctx, dir); err != nil {
		return err
	}
	a := app.New(r, app.Options{Logger: env.log, Connect: connect})
	defer a.Close()

	fa := fyneapp.NewWithID(appID)
	fa.SetIcon(fyne.NewStaticResource("icon.png", assets.AppIcon()))
	go func() {
		<-ctx.Done()
		fyne.Do(fa.Quit)
	}()
	ui.Run(fa, a)
	return nil
}

// serveInProcess opens the grid's engine in this process, serves it on
// the grid's socket and connects to it there; stop ends the engine (the
// VMs keep running).
func serveInProcess(ctx context.Context, env *cmdEnv, dir, ventiAddr string) (*app.Remote, func(), error) {
	e, err := daemon.Open(ctx, dir, daemon.Options{VentiAddr: ventiAddr, Log: env.log})
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- e.Serve(sctx) }()
	stop := func() {
		cancel()
		<-served
		e.Close()
	}
	// The socket answers once Serve listens.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := app.DialRemote(ctx, dir)
		if err == nil {
			return r, stop, nil
		}
		select {
		case serr := <-served:
			served <- serr
			err = errors.Join(err, serr)
		default:
			if time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		stop()
		return nil, nil, fmt.Errorf("serve the in-process engine on %s: %w", e.SocketPath(), err)
	}
}
