package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"gridlord/engine/qcow2"
)

// runDiskClone implements "gridlord disk clone SEED NEW".
func runDiskClone(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "disk clone", "[-relative] SEED NEW\n"+
		"Creates NEW as a qcow2 linked clone (overlay) of SEED: instant, whatever SEED's size.\n"+
		"SEED is read, never written; do not change it while clones use it.")
	relative := fs.Bool("relative", false, "record SEED's path relative to NEW's directory (default: absolute)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("%w: need SEED and NEW", errUsage)
	}
	seed, dst := fs.Arg(0), fs.Arg(1)
	backing, err := filepath.Abs(seed)
	if err != nil {
		return err
	}
	if *relative {
		dstAbs, err := filepath.Abs(dst)
		if err != nil {
			return err
		}
		if backing, err = filepath.Rel(filepath.Dir(dstAbs), backing); err != nil {
			return fmt.Errorf("relative path from %s to %s: %w", dst, seed, err)
		}
	}
	if err := qcow2.CreateOverlay(dst, backing); err != nil {
		return err
	}
	env.log.Debug("disk clone", "seed", seed, "clone", dst, "backing", backing)
	return nil
}

// runDiskFlatten implements "gridlord disk flatten IMG OUT".
func runDiskFlatten(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "disk flatten", "[-q] IMG OUT\n"+
		"Writes OUT as a standalone qcow2 copy of IMG with its backing chain merged in.")
	quiet := fs.Bool("q", false, "do not report progress on standard error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("%w: need IMG and OUT", errUsage)
	}
	var progress qcow2.Progress
	if !*quiet {
		last := int64(-1)
		progress = func(done, total int64) {
			if pct := done * 100 / max(total, 1); pct/5 != last/5 {
				last = pct
				fmt.Fprintf(env.stderr, "flatten: %3d%% (%s of %s)\n", pct, humanSize(done), humanSize(total))
			}
		}
	}
	return qcow2.Flatten(ctx, fs.Arg(0), fs.Arg(1), progress)
}

// runDiskInfo implements "gridlord disk info IMG".
func runDiskInfo(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "disk info", "[-json] IMG\n"+
		"Prints the image format, virtual size and backing chain of a raw or qcow2 image.")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: need IMG", errUsage)
	}
	im, err := qcow2.OpenReadOnly(fs.Arg(0))
	if err != nil {
		return err
	}
	info := im.Info()
	if err := im.Close(); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	return writeImageInfo(env.stdout, &info)
}

// writeImageInfo prints the image part of "disk info": format, sizes and the
// backing chain, one block per image, top first.
func writeImageInfo(w io.Writer, info *qcow2.Info) error {
	for i, in := range info.Chain() {
		if i > 0 {
			if _, err := fmt.Fprintf(w, "backing image %d:\n", i); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "image: %s\n", in.Path)
		if in.Format == qcow2.FormatQcow2 {
			fmt.Fprintf(w, "format: qcow2 (version %d, compat %s)\n", in.Version, in.Compat)
		} else {
			fmt.Fprintf(w, "format: %s\n", in.Format)
		}
		fmt.Fprintf(w, "virtual size: %s (%d bytes)\n", humanSize(in.VirtualSize), in.VirtualSize)
		fmt.Fprintf(w, "file size: %s\n", humanSize(in.FileSize))
		if in.Format == qcow2.FormatQcow2 {
			fmt.Fprintf(w, "cluster size: %d\nrefcount bits: %d\n", in.ClusterSize, in.RefcountBits)
			if in.LazyRefcounts {
				fmt.Fprintln(w, "lazy refcounts: true")
			}
		}
		if in.BackingFile != "" {
			f := in.BackingFormat
			if f == "" {
				f = "not recorded"
			}
			fmt.Fprintf(w, "backing file: %s (format %s)\n", in.BackingFile, f)
		}
	}
	return nil
}

// humanSize formats n bytes with a binary unit, as qemu-img does.
func humanSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[u])
	}
	return fmt.Sprintf("%.3g %s", v, units[u])
}
