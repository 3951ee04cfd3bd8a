package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gridlord/engine/seedstore"
	"gridlord/engine/vac"
	"gridlord/engine/venti"
	"gridlord/engine/venti/store"
)

// benchSeed is "bench venti -seed FILE": what a seed costs the grid's
// venti. It stores the disk image at path into an empty store in dir as
// "seed import" does (engine/seedstore: the blocks of the image's own venti
// arenas, then the disk with those blocks left out; an image without arenas
// is stored as its file), closes the store, prints the bytes the store
// directory takes against the image file's size, and times rebuilding the
// disk from the store alone.
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
	tmp, err := os.MkdirTemp("", "gridlord-bench-seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	res, err := seedstore.Import(ctx, st, path, seedstore.ImportOptions{TempDir: tmp, Log: env.log})
	var score venti.Score
	var clumps, blanked int64
	form := "its virtual disk with the clumps of its own venti left out (engine/seedstore)"
	switch {
	case err == nil:
		score, clumps, blanked = res.Vac, res.Clumps, res.Blanked
	case errors.Is(err, seedstore.ErrNoArenas):
		form = "its file (the image holds no venti arenas)"
		if score, err = vac.Create(ctx, st, []string{path}, vac.Options{Logger: env.log}); err != nil {
			return fmt.Errorf("vac of %s: %w", path, err)
		}
	default:
		return err
	}
	if err := st.Sync(ctx); err != nil {
		return err
	}
	importTime := time.Since(start)
	var restoreTime time.Duration
	if res != nil {
		start = time.Now()
		if err := seedstore.Restore(ctx, st, score, filepath.Join(tmp, "restored.qcow2"), res.DiskSHA256, env.log); err != nil {
			return err
		}
		restoreTime = time.Since(start)
	}
	s := st.Stats()
	if err := st.Close(); err != nil {
		return err
	}
	du, err := dirBytes(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "seed %s (%d bytes) imported into an empty store in %v as %s: vac:%v, %d blocks (%d logical bytes); %d clumps of its venti, %d of them left out of the disk\n",
		path, fi.Size(), importTime.Round(time.Millisecond), form, score, s.Blocks, s.StoredBytes, clumps, blanked)
	if restoreTime > 0 {
		fmt.Fprintf(env.stdout, "disk rebuilt from the store alone (SHA-256 checked) in %v\n", restoreTime.Round(time.Millisecond))
	}
	fmt.Fprintf(env.stdout, "store directory (du): %d bytes = %.3f× the seed file (target ≤ 1.0×); %.2f× smaller than its blocks\n",
		du, float64(du)/float64(fi.Size()), float64(s.StoredBytes)/float64(du))
	return nil
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
