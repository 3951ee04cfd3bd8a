package daemon

import (
	"context"
	"fmt"
	"time"

	"gridlord/engine/seedstore"
	"gridlord/engine/vac"
	"gridlord/images"
)

// Save saves the disk of the stopped node as the snapshot name: an
// immutable seed of the grid whose disk is the node's (engine/seedstore),
// so only the blocks that differ from what the venti already holds cost
// space. Of a running fossil it saves the file system instead: an archival
// snapshot into the venti (saveFS), from which spawned fossils are
// formatted. A name, once saved, never changes meaning: saving under a name a
// seed or snapshot has is refused.
func (e *Engine) Save(ctx context.Context, node, name string) (images.Seed, error) {
	r, st, err := e.ref(node)
	if err != nil {
		return images.Seed{}, err
	}
	if !r.hasVM {
		return images.Seed{}, fmt.Errorf("save %s: it is the embedded venti, the store snapshots live in (mirror it instead: gridlord mirror add)", node)
	}
	st.op.Lock()
	defer st.op.Unlock()
	running := e.vmNode(r.id)
	if running != nil && !r.kind.IsFossil() {
		return images.Seed{}, fmt.Errorf("save %s: the node is running; stop it first (its whole disk is saved while it is stopped; a running fossil's file system can be saved)", node)
	}
	e.mu.Lock()
	if _, err := e.g.Seed(name); err == nil {
		e.mu.Unlock()
		return images.Seed{}, fmt.Errorf("save %s: a snapshot or seed named %s exists, and a saved name never changes meaning; pick another name", node, name)
	}
	n := e.g.NodeByID(r.id)
	tmpl, err := e.g.Seed(n.Seed)
	info := images.SnapshotInfo{Kind: images.SnapshotDisk, Node: n.Name, NodeID: n.ID.String(), NodeKind: string(n.Kind),
		MemoryMB: n.MemoryMB, User: n.User, AuthDom: n.AuthDom}
	e.mu.Unlock()
	if err != nil {
		return images.Seed{}, fmt.Errorf("save %s: its seed: %w", node, err)
	}
	if running != nil {
		return e.saveFS(ctx, r, running, name, tmpl, info)
	}
	if err := e.prepareDisk(ctx, r.id, false); err != nil { // a node never started has no disk yet
		return images.Seed{}, fmt.Errorf("save %s: %w", node, err)
	}
	disk, err := e.diskPath(r.id)
	if err != nil {
		return images.Seed{}, err
	}
	before := e.store.Stats().LogBytes
	start := time.Now()
	res, err := seedstore.Import(ctx, e.store, disk, seedstore.ImportOptions{Name: name, TempDir: e.opts.CacheDir, AnyDisk: true, Log: e.log})
	if err != nil {
		return images.Seed{}, fmt.Errorf("save %s as %s: %w", node, name, err)
	}
	if err := e.store.Sync(ctx); err != nil {
		return images.Seed{}, fmt.Errorf("save %s as %s: %w", node, name, err)
	}
	info.Saved = time.Now().UTC().Truncate(time.Second)
	info.NewBytes = e.store.Stats().LogBytes - before
	seed := tmpl
	seed.Name, seed.Description = name, fmt.Sprintf("snapshot of %s's disk, saved %s", info.Node, info.Saved.Format(time.RFC3339))
	seed.URL, seed.SHA256, seed.Path, seed.Shipped, seed.Unverified = "", "", "", "", nil
	seed.Format, seed.Size = images.FormatQcow2, res.DiskSize
	seed.Vac, seed.VacForm, seed.DiskSHA256 = vac.FormatScore(res.Vac), images.VacFormDisk, res.DiskSHA256
	seed.Snapshot = &info
	info.Seed = tmpl.Name
	if err := e.addSnapshot(seed); err != nil {
		return images.Seed{}, fmt.Errorf("save %s as %s: %w", node, name, err)
	}
	e.log.Info("snapshot saved", "node", node, "snapshot", name, "vac", seed.Vac, "new_bytes", info.NewBytes,
		"took", time.Since(start).Round(time.Millisecond))
	return seed, nil
}

// Spawn adds a node whose disk is the snapshot's (see grid.SpawnNode),
// configured for its place in the grid (name, address, MAC, links), and
// returns its name. newName "" picks the next free name of its kind.
func (e *Engine) Spawn(ctx context.Context, snapshot, newName string) (string, error) {
	e.mu.Lock()
	n, err := e.g.SpawnNode(snapshot, newName)
	if err == nil {
		err = e.saveLocked()
	}
	e.mu.Unlock()
	if err != nil {
		return "", err
	}
	e.refreshSwitch()
	_, st, err := e.ref(n.Name)
	if err != nil {
		return n.Name, err
	}
	st.op.Lock()
	defer st.op.Unlock()
	if err := e.prepareDisk(ctx, n.ID, false); err != nil {
		return n.Name, fmt.Errorf("spawn %s as %s: %w", snapshot, n.Name, err)
	}
	e.log.Info("node spawned", "snapshot", snapshot, "node", n.Name)
	return n.Name, nil
}

// Boom destroys a node spawned from a snapshot: its VM is powered off, the
// node and its directory go; the snapshot stays in the venti. Other nodes
// are refused (remove them instead, knowing their disk goes).
func (e *Engine) Boom(ctx context.Context, node string) error {
	e.mu.Lock()
	n := e.g.Node(node)
	var snap *images.SnapshotInfo
	if n != nil {
		if s, err := e.g.Seed(n.Seed); err == nil {
			snap = s.Snapshot
		}
		if s, err := e.g.Seed(n.FossilFrom); err == nil && n.FossilFrom != "" {
			snap = s.Snapshot
		}
	}
	e.mu.Unlock()
	switch {
	case n == nil:
		return fmt.Errorf("boom: no node %s in the grid", node)
	case snap == nil:
		return fmt.Errorf("boom %s: it was not spawned from a snapshot (its seed is %s); boom destroys spawned nodes only, use remove for others", node, n.Seed)
	}
	if e.vmNode(n.ID) != nil {
		if err := e.Stop(ctx, true, node); err != nil {
			return fmt.Errorf("boom %s: power off: %w", node, err)
		}
	}
	if err := e.remove(node); err != nil {
		return fmt.Errorf("boom %s: %w", node, err)
	}
	e.log.Info("spawned node destroyed", "node", node)
	return nil
}
