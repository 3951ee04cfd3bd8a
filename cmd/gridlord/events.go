package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"gridlord/engine/gridfs"
)

// runGridEvents prints the engine's event log (gridfs /log): the events
// it keeps, and with -f each new one until interrupted; NODE keeps only
// that node's events.
func runGridEvents(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "events", "[-grid DIR] [-f] [NODE]")
	follow := fs.Bool("f", false, "follow: print new events as they come, until interrupted")
	return withEngine(ctx, env, fs, args, 0, 1, func(c *gridfs.Client, _ string, a []string) error {
		node := ""
		if len(a) == 1 {
			node = a[0]
		}
		var r io.Reader
		if *follow {
			rc, err := c.OpenLog(ctx)
			if err != nil {
				return err
			}
			defer rc.Close()
			stop := context.AfterFunc(ctx, func() { rc.Close() })
			defer stop()
			r = rc
		} else {
			b, err := c.ReadFile(ctx, "log")
			if err != nil {
				return err
			}
			r = strings.NewReader(string(b))
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if node != "" {
				if e, err := gridfs.ParseEvent(sc.Text()); err != nil || e.Node != node {
					continue
				}
			}
			fmt.Fprintln(env.stdout, sc.Text())
		}
		if ctx.Err() != nil {
			return nil
		}
		return sc.Err()
	})
}
