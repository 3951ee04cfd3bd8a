package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"gridlord/engine/gridfs"
	"gridlord/images"
)

// runSave saves a stopped node's disk as a named snapshot.
func runSave(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "save", "[-grid DIR] NODE SNAPSHOT")
	return withEngine(ctx, env, fs, args, 2, 2, func(c *gridfs.Client, _ string, a []string) error {
		if err := c.Ctl(ctx, gridfs.QuoteWords([]string{"save", a[0], a[1]})); err != nil {
			return err
		}
		g, err := readGrid(ctx, c)
		if err != nil {
			return err
		}
		s, err := g.Seed(a[1])
		if err != nil || s.Snapshot == nil {
			return fmt.Errorf("snapshot %s was saved but is not in the grid: %v", a[1], err)
		}
		fmt.Fprintf(env.stdout, "saved %s as %s (%s): %d new bytes in the venti\n", a[0], a[1], s.Vac, s.Snapshot.NewBytes)
		return nil
	})
}

// runScores lists the grid's snapshots, newest first, with the nodes that
// run from each.
func runScores(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "scores", "[-grid DIR]")
	return withEngine(ctx, env, fs, args, 0, 0, func(c *gridfs.Client, _ string, _ []string) error {
		g, err := readGrid(ctx, c)
		if err != nil {
			return err
		}
		var snaps []images.Seed
		for _, r := range g.Seeds {
			if r.Snapshot != nil {
				snaps = append(snaps, r.Seed)
			}
		}
		sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].Snapshot.Saved.After(snaps[j].Snapshot.Saved) })
		tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tNODE\tSAVED\tNEW BYTES\tSPAWNED\tSCORE")
		for _, s := range snaps {
			var spawned []string
			for _, n := range g.Nodes {
				if n.Seed == s.Name || n.FossilFrom == s.Name {
					spawned = append(spawned, n.Name)
				}
			}
			sp := strings.Join(spawned, ",")
			if sp == "" {
				sp = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.Snapshot.Kind, s.Snapshot.Node,
				s.Snapshot.Saved.Local().Format(time.DateTime), s.Snapshot.NewBytes, sp, s.Vac)
		}
		return tw.Flush()
	})
}

// runSpawn adds a node whose disk is a snapshot's.
func runSpawn(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "spawn", "[-grid DIR] SNAPSHOT [as NEWNODE]")
	return withEngine(ctx, env, fs, args, 1, 3, func(c *gridfs.Client, _ string, a []string) error {
		if len(a) == 2 || (len(a) == 3 && a[1] != "as") {
			fs.Usage()
			return fmt.Errorf("%w: want SNAPSHOT [as NEWNODE]", errUsage)
		}
		g0, err := readGrid(ctx, c)
		if err != nil {
			return err
		}
		if err := c.Ctl(ctx, gridfs.QuoteWords(append([]string{"spawn"}, a...))); err != nil {
			return err
		}
		g, err := readGrid(ctx, c)
		if err != nil {
			return err
		}
		for _, n := range g.Nodes {
			if g0.Node(n.Name) == nil {
				fmt.Fprintf(env.stdout, "spawned %s (%s, %s) from %s; start it with: gridlord start %s\n", n.Name, n.Kind, n.IP, a[0], n.Name)
			}
		}
		return nil
	})
}

// runBoom destroys a node spawned from a snapshot.
func runBoom(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "boom", "[-grid DIR] NODE")
	return withEngine(ctx, env, fs, args, 1, 1, func(c *gridfs.Client, _ string, a []string) error {
		if err := c.Ctl(ctx, gridfs.QuoteWords([]string{"boom", a[0]})); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s destroyed; its snapshot stays in the venti\n", a[0])
		return nil
	})
}

// runInvite adds a user to a file-system snapshot (at the console of a
// running fossil spawned from it) and saves the result under a new name.
// The user's password comes from $PASS or is asked for twice.
func runInvite(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "invite", "[-grid DIR] USER SNAPSHOT NEWNAME")
	return withEngine(ctx, env, fs, args, 3, 3, func(c *gridfs.Client, _ string, a []string) error {
		pw, err := newPassword(env, fmt.Sprintf("password for %s: ", a[0]))
		if err != nil {
			return err
		}
		if err := c.Identity(ctx, gridfs.QuoteWords([]string{"invite", a[0], a[1], a[2], "password=" + pw})); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s invited: saved as %s (spawn it with: gridlord spawn %s)\n", a[0], a[2], a[2])
		return nil
	})
}
