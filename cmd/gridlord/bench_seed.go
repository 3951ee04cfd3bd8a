package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"gridlord/engine/vac"
	"gridlord/engine/venti/arena"
	"gridlord/engine/venti/store"
)

// benchSeed is "bench venti -seed FILE": what a seed costs the grid's
// venti. It stores the disk image at path into an empty store in dir as
// "seed import" does (the image file as a vac archive, then the blocks of
// the image's own venti arenas, if it has any), closes the store and
// prints the bytes the store directory takes against the image file's
// size.
func benchSeed(ctx context.Context, env *cmdEnv, path, dir string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	st, err := store.Open(dir, store.WithLogger(env.log))
	if err != nil {
		return err
	}
	defer st.Close()
	if st.Stats().Blocks != 0 {
		return fmt.Errorf("store %s is not empty: give an empty or new -store directory", dir)
	}
	start := time.Now()
	if _, err := vac.Create(ctx, st, []string{path}, vac.Options{Logger: env.log}); err != nil {
		return fmt.Errorf("vac of %s: %w", path, err)
	}
	vacTime := time.Since(start)
	afterVac := st.Stats()
	var clumps int64
	// As seed import does: an image without arenas stores only the vac.
	src, err := arena.OpenSource(path)
	var p *arena.Partition
	if err == nil {
		defer src.Close()
		p, err = arena.Open(src, src.Size)
	}
	if err != nil {
		fmt.Fprintf(env.stdout, "%s holds no venti arenas (%v): only the vac archive is stored\n", path, err)
	} else {
		res, err := arena.Import(ctx, p, st, arena.ImportOptions{Log: env.log})
		if err != nil {
			return fmt.Errorf("import the arenas of %s: %w", path, err)
		}
		clumps = res.Written
	}
	total := time.Since(start)
	s := st.Stats()
	if err := st.Close(); err != nil {
		return err
	}
	du, err := dirBytes(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "seed %s (%d bytes) imported into an empty store in %v (vac %v): %d blocks, %d of them arena clumps\n",
		path, fi.Size(), total.Round(time.Millisecond), vacTime.Round(time.Millisecond), s.Blocks, clumps)
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, n int64, logical int64) {
		fmt.Fprintf(tw, "%s\t%d bytes\t%.3f× the seed file\t", name, n, float64(n)/float64(fi.Size()))
		if logical > 0 {
			fmt.Fprintf(tw, "%.2f× smaller than its blocks\t", float64(logical)/float64(n))
		}
		fmt.Fprintln(tw)
	}
	row("log after the vac of the file", afterVac.LogBytes, afterVac.StoredBytes)
	row("log for the arena clumps", s.LogBytes-afterVac.LogBytes, s.StoredBytes-afterVac.StoredBytes)
	row("store directory (du, target ≤ 1.0×)", du, s.StoredBytes)
	return tw.Flush()
}

// dirBytes is the disk space the files under dir take (allocated blocks,
// as du counts them, where the system says; else their sizes).
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += allocatedBytes(fi)
		return nil
	})
	return n, err
}
