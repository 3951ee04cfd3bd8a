package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"gridlord/engine/console"
	"gridlord/engine/grid"
	"gridlord/engine/qcow2"
	"gridlord/images"
)

// File-system snapshots: the archive a running fossil writes to the venti
// ("fsys main snap -a"), and fossil nodes formatted from one
// ("fossil/flfmt -v SCORE").

// FossilFormattedName is the file in a node's directory that records the
// archive its fossil was formatted from (Node.FossilFrom), so that it is
// formatted once; it goes with the disk.
const FossilFormattedName = "fossil-formatted"

// archiveWait bounds how long an archival snapshot may take.
var archiveWait = 10 * time.Minute

// fossilDev is the fossil partition's file on a node of seed s, from its
// local root ("local!#S/sdC0/fossil" gives /dev/sdC0/fossil).
func fossilDev(s images.Seed) (string, error) {
	root := strings.TrimPrefix(s.LocalRoot, "local!")
	if !strings.HasPrefix(root, "#S/") {
		return "", fmt.Errorf("seed %s boots no local fossil (localRoot %q)", s.Name, s.LocalRoot)
	}
	return "/dev/" + strings.TrimPrefix(root, "#S/"), nil
}

// archiveFossil makes the running fossil vn take an archival snapshot into
// its venti and returns the new archive's score, typed at its console:
// "fsys main snap -a" to its fossil console, then its super block (see
// fossilSuper) until the snapshot is taken and the archiver has nothing
// left to write. Waiting for fossil/last merely to change is not enough:
// an archive fossil started by itself (at boot, or at its daily archive
// time) can end first, and it lacks what was written since.
func (e *Engine) archiveFossil(ctx context.Context, node string, vn VM, dev string) (string, error) {
	rc := console.NewRC(vn.Console(), plan9Prompt)
	defer rc.Close()
	sr := &fossilSuperReader{rc: rc, dev: dev}
	before, err := sr.read(ctx)
	if err != nil {
		return "", fmt.Errorf("archive %s's fossil: %w", node, err)
	}
	res, err := rc.Run(ctx, "echo fsys main snap -a >>/srv/fscons", time.Minute)
	if err == nil && !res.OK() {
		err = fmt.Errorf("status %s: %s", res.Status, strings.TrimSpace(res.Output))
	}
	if err != nil {
		return "", fmt.Errorf("archive %s's fossil: snap -a: %w", node, err)
	}
	deadline := time.Now().Add(archiveWait)
	seen := before.last
	for {
		s, err := sr.read(ctx)
		if err != nil {
			return "", fmt.Errorf("archive %s's fossil: %w", node, err)
		}
		if s.epochHigh > before.epochHigh && !s.archiving() && s.last != before.last {
			return s.last, nil
		}
		if s.last != seen {
			seen = s.last
			e.log.Info("fossil finished an earlier archive; waiting for the one asked for", "node", node, "archive", s.last)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("archive %s's fossil: no new archive %v after snap -a (last %s, snapshot taken %v, archiving %v; is its venti reachable? see its console)",
				node, archiveWait, s.last, s.epochHigh > before.epochHigh, s.archiving())
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(3 * time.Second):
		}
	}
}

// saveFS saves the file system of the running fossil node (r, vn) as the
// snapshot name: its archive, recorded as a seed of form VacFormFossil.
// tmpl is its seed; info is filled in.
func (e *Engine) saveFS(ctx context.Context, r nodeRef, vn VM, name string, tmpl images.Seed, info images.SnapshotInfo) (images.Seed, error) {
	dev, err := fossilDev(tmpl)
	if err != nil {
		return images.Seed{}, fmt.Errorf("save %s: %w", r.name, err)
	}
	before := e.store.Stats().LogBytes
	start := time.Now()
	score, err := e.archiveFossil(ctx, r.name, vn, dev)
	if err != nil {
		return images.Seed{}, fmt.Errorf("save %s: %w", r.name, err)
	}
	info.Kind, info.Seed = images.SnapshotFS, tmpl.Name
	info.Saved = time.Now().UTC().Truncate(time.Second)
	info.NewBytes = e.store.Stats().LogBytes - before
	seed := tmpl
	seed.Name, seed.Description = name, fmt.Sprintf("snapshot of %s's file system (its archive %s), saved %s", info.Node, score, info.Saved.Format(time.RFC3339))
	seed.URL, seed.SHA256, seed.Path, seed.Shipped, seed.Unverified, seed.DiskSHA256 = "", "", "", "", nil, ""
	seed.Vac, seed.VacForm = score, images.VacFormFossil
	seed.Snapshot = &info
	if err := e.addSnapshot(seed); err != nil {
		return images.Seed{}, fmt.Errorf("save %s: %w", r.name, err)
	}
	e.log.Info("file-system snapshot saved", "node", r.name, "snapshot", name, "vac", score, "new_bytes", info.NewBytes,
		"took", time.Since(start).Round(time.Millisecond))
	return seed, nil
}

// addSnapshot records a new snapshot seed, refusing a name taken meanwhile.
func (e *Engine) addSnapshot(seed images.Seed) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.g.Seed(seed.Name); err == nil {
		return fmt.Errorf("a snapshot named %s was saved meanwhile; pick another name", seed.Name)
	}
	if err := e.g.AddSeed(seed); err != nil {
		return err
	}
	return e.saveLocked()
}

// formatFossil formats the fossil of node id from its Node.FossilFrom
// snapshot, once, before its first boot: the node is booted as a cpu
// server rooted on a running fossil of the grid, "fossil/flfmt -v SCORE"
// is typed at its console, and it is powered off; its own configuration
// is written back after. Its st.op lock is held by the caller.
func (e *Engine) formatFossil(ctx context.Context, id uuid.UUID) error {
	e.mu.Lock()
	n := e.g.NodeByID(id)
	if n == nil || n.FossilFrom == "" {
		e.mu.Unlock()
		return nil
	}
	name, from := n.Name, n.FossilFrom
	marker := filepath.Join(e.g.NodeDir(n), FossilFormattedName)
	snap, err := e.g.Seed(from)
	if err == nil && snap.VacForm != images.VacFormFossil {
		err = fmt.Errorf("seed %s is not a file-system snapshot", from)
	}
	var seed images.Seed
	if err == nil {
		seed, err = e.g.Seed(n.Seed)
	}
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("format %s's fossil: %w", name, err)
	}
	if b, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(b)) == snap.Vac {
		return nil
	}
	dev, err := fossilDev(seed)
	if err != nil {
		return fmt.Errorf("format %s's fossil: %w", name, err)
	}
	cpuCfg, root, err := e.formatConfig(id)
	if err != nil {
		return fmt.Errorf("format %s's fossil from %s: %w", name, from, err)
	}
	disk, err := e.diskPath(id)
	if err != nil {
		return err
	}
	if err := writeDiskConfig(disk, cpuCfg); err != nil {
		return fmt.Errorf("format %s's fossil: %w", name, err)
	}
	spec, _, err := e.vmSpec(id)
	if err != nil {
		return err
	}
	e.log.Info("formatting a spawned fossil from its snapshot: booting it from another fossil's root", "node", name, "snapshot", from, "root", root)
	vn, err := e.vms.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("format %s's fossil: start: %w", name, err)
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		e.vms.Stop(sctx, id.String(), 0)
		for e.vmNode(id) != nil && sctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	fail := func(what string, err error) error {
		tail := strings.Join(vn.Console().LastLines(15), "\n")
		stop()
		return fmt.Errorf("format %s's fossil from %s: %s: %w; console tail:\n%s", name, from, what, err, tail)
	}
	ex := console.NewExpecter(vn.Console(), true)
	_, err = ex.Expect(ctx, plan9Prompt, e.opts.ReadyTimeout)
	ex.Close()
	if err != nil {
		return fail("boot from "+root, err)
	}
	e.mu.Lock()
	venti := fmt.Sprintf("tcp!%s!%d", e.g.Network.Host, grid.VentiPort)
	e.mu.Unlock()
	rc := console.NewRC(vn.Console(), plan9Prompt)
	line := fmt.Sprintf("fossil/flfmt -y -h %s -v %s %s", venti, strings.TrimPrefix(snap.Vac, "vac:"), dev)
	res, err := rc.Run(ctx, line, 10*time.Minute)
	rc.Close()
	if err == nil && !res.OK() {
		err = fmt.Errorf("status %s: %s", res.Status, strings.TrimSpace(res.Output))
	}
	if err != nil {
		return fail(line, err)
	}
	stop()
	// Its own configuration again, without the cpu keys the format boot
	// had.
	e.mu.Lock()
	cfg, err := e.g.Config(name)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	cfg.Owned = append(cfg.Owned, "fs", "auth")
	if err := writeDiskConfig(disk, cfg); err != nil {
		return fmt.Errorf("format %s's fossil: %w", name, err)
	}
	if err := os.WriteFile(marker, []byte(snap.Vac+"\n"), 0o644); err != nil {
		return fmt.Errorf("format %s's fossil: %w", name, err)
	}
	e.log.Info("spawned fossil formatted from its snapshot", "node", name, "snapshot", from, "vac", snap.Vac)
	return nil
}

// formatConfig is the configuration node id boots with to format its
// fossil: a cpu server's, rooted on a running fossil of the grid (and
// authenticated by its auth server). root names that fossil.
func (e *Engine) formatConfig(id uuid.UUID) (cfg *grid.NodeConfig, root string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.g.NodeByID(id)
	if n == nil {
		return nil, "", errors.New("the node is no longer in the grid")
	}
	var f *grid.Node
	for _, m := range e.g.Nodes {
		if m.ID != id && m.Kind.IsFossil() && e.vmNode(m.ID) != nil {
			if st := e.states[m.ID]; st != nil && st.state == StateRunning {
				f = m
				break
			}
		}
	}
	if f == nil {
		return nil, "", fmt.Errorf("no fossil of the grid is running to boot it from: start one first (gridlord start %s)", e.firstFossilLocked())
	}
	c, err := e.g.Copy()
	if err != nil {
		return nil, "", err
	}
	cn := c.NodeByID(id)
	cn.Kind = grid.KindCPU
	var keep []*grid.Link
	for _, l := range c.Links {
		if l.From != id && l.To != id {
			keep = append(keep, l)
		}
	}
	c.Links = keep
	if _, err := c.Wire(cn.Name, f.Name); err != nil {
		return nil, "", err
	}
	if c.AuthServer(cn) == nil {
		if a := e.g.AuthServer(f); a != nil {
			if _, err := c.WireAs(cn.Name, a.Name, grid.LinkAuth); err != nil {
				return nil, "", err
			}
		}
	}
	cfg, err = c.Config(cn.Name)
	return cfg, f.Name, err
}

// firstFossilLocked names a fossil of the grid, for messages.
func (e *Engine) firstFossilLocked() string {
	for _, m := range e.g.Nodes {
		if m.Kind.IsFossil() && m.FossilFrom == "" {
			return m.Name
		}
	}
	return "FOSSIL"
}

// writeDiskConfig writes cfg to the qcow2 disk at path.
func writeDiskConfig(path string, cfg *grid.NodeConfig) error {
	im, err := qcow2.Open(path)
	if err != nil {
		return fmt.Errorf("open disk: %w", err)
	}
	werr := writeConfig(im, cfg)
	if err := im.Close(); werr == nil {
		werr = err
	}
	return werr
}

// Invite adds user, with password, to the file system of snapshot: at the
// console of a running fossil+auth node spawned from it, a fossil user
// with a home directory (uname and create on the fossil console) and a
// keyfs entry (auth/changeuser); then that file system is saved as the
// snapshot newName (the ANTS "invite USER NAME").
func (e *Engine) Invite(ctx context.Context, user, snapshot, newName, password string) error {
	if err := grid.CheckPassword(user, password); err != nil {
		return fmt.Errorf("invite %s: %w", user, err)
	}
	if !inviteUserRE.MatchString(user) {
		return fmt.Errorf("invite %q: a Plan 9 user name is a letter, then letters, digits, '-' or '_'", user)
	}
	e.mu.Lock()
	var node string
	var tmpl images.Seed
	var info images.SnapshotInfo
	for _, n := range e.g.Nodes {
		if (n.FossilFrom == snapshot || n.Seed == snapshot) && n.Kind.ServesAuth() && n.Kind.IsFossil() && e.vmNode(n.ID) != nil {
			node = n.Name
			tmpl, _ = e.g.Seed(n.Seed)
			info = images.SnapshotInfo{Node: n.Name, NodeID: n.ID.String(), NodeKind: string(n.Kind), MemoryMB: n.MemoryMB, User: n.User, AuthDom: n.AuthDom}
			break
		}
	}
	_, taken := e.g.Seed(newName)
	e.mu.Unlock()
	switch {
	case taken == nil:
		return fmt.Errorf("invite %s: a snapshot or seed named %s exists, and a saved name never changes meaning; pick another name", user, newName)
	case node == "":
		return fmt.Errorf("invite %s: no fossil+auth node spawned from %s is running: spawn one (gridlord spawn %s) and start it", user, snapshot, snapshot)
	}
	r, vn, unlock, err := e.lockRunning(node)
	if err != nil {
		return fmt.Errorf("invite %s: %w", user, err)
	}
	defer unlock()
	if err := addFossilUser(ctx, vn, user); err != nil {
		return fmt.Errorf("invite %s on %s: %w", user, node, err)
	}
	ex := console.NewExpecter(vn.Console(), false)
	err = consoleDialog(ctx, ex, "auth/changeuser "+user, regexp.MustCompile(`user \S+ installed for Plan 9`), console.ChangeuserAnswers(password))
	ex.Close()
	if err != nil {
		return fmt.Errorf("invite %s on %s: auth/changeuser: %w; console tail:\n%s", user, node, err, strings.Join(vn.Console().LastLines(15), "\n"))
	}
	e.log.Info("user invited", "user", user, "node", node, "snapshot", snapshot)
	if _, err := e.saveFS(ctx, r, vn, newName, tmpl, info); err != nil {
		return fmt.Errorf("invite %s: %w", user, err)
	}
	return nil
}

// addFossilUser makes user, unless /adm/users has it, a user of the file
// system of the fossil node whose VM is vn, with a home directory: uname
// and create typed to /srv/fscons at its console. A host owner the fossil
// does not know cannot attach to it (fossil's "auth protocol not
// finished").
func addFossilUser(ctx context.Context, vn VM, user string) error {
	rc := console.NewRC(vn.Console(), plan9Prompt)
	defer rc.Close()
	// || and not if(! …): rc's if leaves a false condition's status.
	line := fmt.Sprintf("grep -s '^%s:' /adm/users || {echo uname %s %s >>/srv/fscons; echo create /active/usr/%s %s %s d775 >>/srv/fscons}", user, user, user, user, user, user)
	res, err := rc.Run(ctx, line, time.Minute)
	if err == nil && !res.OK() {
		err = fmt.Errorf("status %s: %s", res.Status, strings.TrimSpace(res.Output))
	}
	if err != nil {
		return fmt.Errorf("add fossil user %s: %w", user, err)
	}
	return nil
}

// inviteUserRE is what Invite accepts as a user name.
var inviteUserRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,27}$`)

// lockRunning takes the lifecycle lock of the running node name and
// returns its VM; unlock releases the lock.
func (e *Engine) lockRunning(name string) (r nodeRef, vn VM, unlock func(), err error) {
	r, st, err := e.ref(name)
	if err != nil {
		return r, nil, nil, err
	}
	st.op.Lock()
	if vn = e.vmNode(r.id); vn == nil {
		st.op.Unlock()
		return r, nil, nil, fmt.Errorf("node %s is not running", name)
	}
	return r, vn, st.op.Unlock, nil
}
