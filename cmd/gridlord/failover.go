package main

import (
	"context"
	"fmt"

	"gridlord/engine/gridfs"
)

// runFailover switches the grid's fossils to a mirror venti (or back).
func runFailover(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "failover", "[-grid DIR] MIRROR-ADDR|off")
	return withEngine(ctx, env, fs, args, 1, 1, func(c *gridfs.Client, _ string, a []string) error {
		if err := c.Ctl(ctx, gridfs.QuoteWords([]string{"failover", a[0]})); err != nil {
			return err
		}
		if a[0] == "off" {
			fmt.Fprintln(env.stdout, "the fossils archive to the grid's own venti again from their next boot")
		} else {
			fmt.Fprintf(env.stdout, "the fossils that archive to the grid's venti use the mirror %s from their next boot (stopped ones are rewritten now)\n", a[0])
		}
		return nil
	})
}

// runVentiPower starts or stops the grid's embedded venti server.
func runVentiPower(verb string) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		fs := newFlags(env, "venti "+verb, "[-grid DIR]")
		return withEngine(ctx, env, fs, args, 0, 0, func(c *gridfs.Client, _ string, _ []string) error {
			if err := c.Ctl(ctx, gridfs.QuoteWords([]string{"venti", verb})); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "the grid's venti server is %s\n", map[string]string{"start": "serving", "stop": "stopped (the engine keeps its store and mirrors)"}[verb])
			return nil
		})
	}
}
