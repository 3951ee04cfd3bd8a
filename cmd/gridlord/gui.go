package main

import (
	"context"

	fyneapp "fyne.io/fyne/v2/app"

	"gridlord/app"
	"gridlord/assets"
	"gridlord/ui"

	"fyne.io/fyne/v2"
)

// appID matches FyneApp.toml's Details.ID.
const appID = "dev.gridlord.app"

func runGUI(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "gui", "[-data DIR] [-venti-addr ADDR]")
	data := fs.String("data", "", "data directory (default $XDG_DATA_HOME/gridlord or ~/.local/share/gridlord)")
	addr := fs.String("venti-addr", app.DefaultVentiAddr, "listen address of the embedded venti (loopback unless you say otherwise)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a, err := app.Open(ctx, app.Options{DataDir: *data, VentiAddr: *addr, Logger: env.log})
	if err != nil {
		return err
	}
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
