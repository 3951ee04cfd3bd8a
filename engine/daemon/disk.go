package daemon

import (
	"github.com/google/uuid"

	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gridlord/engine/grid"
	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/ini"
	"gridlord/engine/qcow2"
)

// DiskPath returns the path of a node's disk: a qcow2 linked clone of its
// materialised seed (or a copy of the disk it was cloned from).
func (e *Engine) DiskPath(node string) (string, error) {
	r, _, err := e.ref(node)
	if err != nil {
		return "", err
	}
	return e.diskPath(r.id)
}

// diskPath is DiskPath by node ID.
func (e *Engine) diskPath(id uuid.UUID) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.g.NodeByID(id)
	if n == nil {
		return "", fmt.Errorf("node %s is no longer in the grid", id)
	}
	return filepath.Join(e.g.NodeDir(n), grid.DiskName), nil
}

// prepareDisk makes sure node id's disk exists (recreated when fresh is
// set) and carries the node's current configuration. The node must be
// stopped. It follows the node by ID, so a rename meanwhile does no harm.
func (e *Engine) prepareDisk(ctx context.Context, id uuid.UUID, fresh bool) error {
	e.mu.Lock()
	n := e.g.NodeByID(id)
	if n == nil {
		e.mu.Unlock()
		return fmt.Errorf("node %s is no longer in the grid", id)
	}
	node := n.Name
	if !n.HasVM() {
		e.mu.Unlock()
		return nil
	}
	dir := e.g.NodeDir(n)
	disk := filepath.Join(dir, grid.DiskName)
	seedName := n.Seed
	var cloneSrc string
	if n.CloneOf != nil {
		if src := e.g.NodeByID(*n.CloneOf); src != nil {
			cloneSrc = filepath.Join(e.g.NodeDir(src), grid.DiskName)
		}
	}
	pending := n.Pending()
	e.mu.Unlock()

	_, statErr := os.Stat(disk)
	create := fresh || errors.Is(statErr, os.ErrNotExist)
	if !create && statErr != nil {
		return fmt.Errorf("node %s disk: %w", node, statErr)
	}
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("node %s: %w", node, err)
		}
		tmp := disk + ".new"
		os.Remove(tmp)
		if cloneSrc != "" && !fresh {
			if _, err := os.Stat(cloneSrc); err == nil {
				e.log.Info("copying disk for clone", "node", node, "from", cloneSrc)
				if err := copyFile(ctx, cloneSrc, tmp); err != nil {
					return fmt.Errorf("node %s: copy the disk it is cloned from: %w", node, err)
				}
			} else {
				cloneSrc = ""
			}
		} else {
			cloneSrc = ""
		}
		if cloneSrc == "" {
			seedPath, err := e.Materialize(ctx, seedName)
			if err != nil {
				return fmt.Errorf("node %s: %w", node, err)
			}
			if err := qcow2.CreateOverlay(tmp, seedPath); err != nil {
				return fmt.Errorf("node %s: linked clone of %s: %w", node, seedPath, err)
			}
		}
		if err := os.Rename(tmp, disk); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("node %s disk: %w", node, err)
		}
		os.Remove(filepath.Join(dir, FossilFormattedName)) // a new disk's fossil is the seed's
		pending = true
	}
	if !pending {
		return nil
	}
	return e.applyConfig(id, disk)
}

// applyConfig writes the node's derived configuration to its disk: the owned
// plan9.ini keys (other keys stay as the user left them), the fossil and
// venti config block lines and the nvram identity; then records the
// generation as applied and saves the grid.
func (e *Engine) applyConfig(id uuid.UUID, disk string) error {
	e.mu.Lock()
	n := e.g.NodeByID(id)
	if n == nil {
		e.mu.Unlock()
		return fmt.Errorf("node %s is no longer in the grid", id)
	}
	node := n.Name
	cfg, err := e.g.Config(node)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	im, err := qcow2.Open(disk)
	if err != nil {
		return fmt.Errorf("node %s: open disk: %w", node, err)
	}
	werr := writeConfig(im, cfg)
	if err := im.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("node %s: configure disk %s: %w", node, disk, werr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n = e.g.NodeByID(id)
	if n == nil {
		return fmt.Errorf("node %s was removed while its disk was configured", node)
	}
	if err := e.g.MarkApplied(n.Name, cfg.Gen); err != nil {
		return err
	}
	e.log.Info("configured node disk", "node", node, "gen", cfg.Gen)
	return e.saveLocked()
}

// writeConfig applies cfg to a Plan 9 disk.
func writeConfig(d plan9disk.Disk, cfg *grid.NodeConfig) error {
	p9, err := plan9disk.Open(d)
	if err != nil {
		return fmt.Errorf("not a Plan 9 disk: %w", err)
	}
	if err := p9.EditPlan9Ini(func(f *ini.File) error {
		for _, ed := range grid.MergeIni(topKVs(f), cfg) {
			if ed.Delete {
				f.Delete(ed.Key)
			} else if err := f.Set(ed.Key, ed.Value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("plan9.ini: %w", err)
	}
	if cfg.FossilConfig != nil {
		if err := mergeBlock(p9, plan9disk.FossilConfig(), grid.FossilConfigHeader, grid.FossilConfigMax, cfg.FossilConfig, false); err != nil {
			return err
		}
	}
	if cfg.VentiConfig != nil {
		if err := mergeBlock(p9, plan9disk.VentiConfig(), grid.VentiConfigHeader, grid.VentiConfigMax, cfg.VentiConfig, true); err != nil {
			return err
		}
	}
	if cfg.Identity != nil {
		// A disk without a readable nvram record is left alone: writing a
		// record of a guessed layout could stop it booting.
		rec, _, err := p9.ReadNvram()
		if err == nil && (rec.AuthID != cfg.Identity.AuthID || rec.AuthDom != cfg.Identity.AuthDom) {
			rec.AuthID, rec.AuthDom = cfg.Identity.AuthID, cfg.Identity.AuthDom
			if _, err := p9.WriteNvram(rec); err != nil {
				return fmt.Errorf("nvram: %w", err)
			}
		}
	}
	return nil
}

// mergeBlock adds the wanted lines to a config block.
func mergeBlock(p9 *plan9disk.Image, b plan9disk.ConfigBlock, header string, max int, want []string, byVerb bool) error {
	body, err := p9.ReadConfig(b)
	if err != nil {
		return fmt.Errorf("%s config block: %w", b.Partition, err)
	}
	text, changed, err := grid.MergeConfigBlock([]byte(header+body), header, max, want, byVerb)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	if err := p9.WriteConfig(b, strings.TrimPrefix(text, header)); err != nil {
		return fmt.Errorf("%s config block: %w", b.Partition, err)
	}
	return nil
}

// topKVs returns the key=value lines before plan9.ini's first block.
func topKVs(f *ini.File) []grid.KV {
	var kvs []grid.KV
	for _, l := range f.Lines {
		if l.Kind == ini.Section {
			break
		}
		if l.Kind == ini.KeyValue {
			kvs = append(kvs, grid.KV{Key: l.Key, Value: l.Value})
		}
	}
	return kvs
}

// ReadDiskIni reads plan9.ini from a disk image (qcow2 or raw).
func ReadDiskIni(path string) ([]byte, error) {
	im, err := qcow2.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	p9, err := plan9disk.Open(im)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := p9.ReadPlan9Ini()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.Bytes(), nil
}

// copyFile copies src to dst (created, fsynced).
func copyFile(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	// In chunks (each still copied by the kernel when it can: an
	// *io.LimitedReader of a file keeps os.File.ReadFrom's fast path),
	// checking ctx between them, so a cancelled clone stops.
	for {
		if err = ctx.Err(); err != nil {
			break
		}
		var n int64
		if n, err = io.Copy(out, io.LimitReader(in, 64<<20)); err != nil || n == 0 {
			break
		}
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
