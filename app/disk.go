package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/qcow2"
)

// DiskNames returns the file names, in a node's directory (grid.NodeDir), that
// the engine gives a node's disk, in the order they are looked for: the
// qcow2 linked clone of its seed, or a raw copy.
func DiskNames() []string { return []string{"disk.qcow2", "disk.img", "disk.raw"} }

// NodeDir is node n's directory in the grid directory gridDir (what
// grid.NodeDir says for a grid loaded from there).
func NodeDir(gridDir string, n *grid.Node) string {
	return filepath.Join(gridDir, grid.NodesDir, n.ID.String())
}

// NodeDisk returns the path of node n's disk in grid directory gridDir, or
// "" if it has none yet (a node gets its disk from its seed when it is
// first started).
func NodeDisk(gridDir string, n *grid.Node) string {
	if !n.HasVM() || gridDir == "" {
		return ""
	}
	for _, name := range DiskNames() {
		p := filepath.Join(NodeDir(gridDir, n), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// openDisk opens a raw or qcow2 Plan 9 disk image.
func openDisk(path string, writable bool) (*plan9disk.Image, func() error, error) {
	open := qcow2.OpenReadOnly
	if writable {
		open = qcow2.Open
	}
	d, err := open(path)
	if err != nil {
		return nil, nil, err
	}
	im, err := plan9disk.Open(d)
	if err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, d.Close, nil
}

// readDiskIni returns plan9.ini from a disk's 9fat.
func readDiskIni(path string) ([]byte, error) {
	im, closeDisk, err := openDisk(path, false)
	if err != nil {
		return nil, err
	}
	defer closeDisk()
	f, err := im.ReadPlan9Ini()
	if err != nil {
		return nil, fmt.Errorf("read plan9.ini of %s: %w", path, err)
	}
	return f.Bytes(), nil
}

// CheckPassword refuses passwords too weak for a host owner's key (see
// grid.CheckPassword, which the engine applies too).
func CheckPassword(user, password string) error { return grid.CheckPassword(user, password) }

// Identity is a new host owner, auth domain and password for
// ResetIdentity.
type Identity struct {
	User, AuthDom, Password string
	// FreshDisk first recreates each node's disk from its seed (the
	// engine's "reset"; everything written to the disk is lost).
	FreshDisk bool
	// Keyfs also changes the user in the auth servers' keyfs (typed at
	// their consoles by the engine): the nvram holds only the machine's
	// own key, the users' keys live in the auth server's file system, and
	// logins fail until both agree.
	Keyfs bool
}

// ResetResult says what Reset did to each node.
type ResetResult struct {
	// Written lists nodes whose disk nvram was rewritten.
	Written []string
	// Deferred lists nodes without a disk yet: their identity is in the
	// grid model and is written with the key when the engine creates the
	// disk.
	Deferred []string
}

// ResetIdentity gives the named nodes (every VM node when names is empty)
// a new host owner, auth domain and password (the old confighelper "r"):
// the grid model first (through the backend, so a running engine agrees),
// then the nvram record on each node's disk, with the machine keys derived
// from the password. With the engine daemon the engine does it (stopping
// the nodes, and with Keyfs changing the auth servers' keyfs too); the
// in-process backend writes the nvram of stopped nodes itself.
func ResetIdentity(ctx context.Context, b Backend, id Identity, names ...string) (ResetResult, error) {
	var res ResetResult
	if err := CheckPassword(id.User, id.Password); err != nil {
		return res, err
	}
	if id.User == "" || id.AuthDom == "" {
		return res, errors.New("give both a host owner and an auth domain")
	}
	g, err := b.Grid(ctx)
	if err != nil {
		return res, err
	}
	var nodes []*grid.Node
	if len(names) == 0 {
		for _, n := range g.Nodes {
			if n.HasVM() {
				nodes = append(nodes, n)
			}
		}
	}
	for _, name := range names {
		n := g.Node(name)
		if n == nil {
			return res, fmt.Errorf("no node %q", name)
		}
		if !n.HasVM() {
			return res, fmt.Errorf("%s is the embedded venti: it has no nvram", name)
		}
		nodes = append(nodes, n)
	}
	if id.FreshDisk {
		for _, n := range nodes {
			if err := b.NodeCtl(ctx, n.Name, "reset"); err != nil {
				return res, fmt.Errorf("recreate the disk of %s: %w", n.Name, err)
			}
		}
	}
	// The engine does it all, under its node locks: it stops the nodes,
	// writes their nvram and, with Keyfs, changes the auth servers' keyfs.
	words := []string{"set", "user=" + id.User, "authdom=" + id.AuthDom, "password=" + id.Password}
	if id.Keyfs {
		words = append(words, "keyfs=yes")
	}
	for _, n := range nodes {
		words = append(words, n.Name)
	}
	err = b.Identity(ctx, gridfs.QuoteWords(words))
	if err == nil {
		for _, n := range nodes {
			res.Written = append(res.Written, n.Name)
		}
		return res, nil
	}
	if !errors.Is(err, ErrEngineNotRunning) {
		return res, err
	}
	// In-process: only the nvram of stopped nodes, written here.
	for _, n := range nodes {
		st, err := b.NodeStatus(ctx, n.Name)
		if err != nil {
			return res, err
		}
		if s := firstWord(st); s != "stopped" && s != "failed" {
			return res, fmt.Errorf("%s is %s: stop it before resetting its identity (its disk is in use)", n.Name, s)
		}
	}
	for _, n := range nodes {
		if err := b.Ctl(ctx, "identity", n.Name, id.User, id.AuthDom); err != nil {
			return res, fmt.Errorf("set identity of %s: %w", n.Name, err)
		}
		disk := NodeDisk(b.GridDir(), n)
		if disk == "" {
			res.Deferred = append(res.Deferred, n.Name)
			continue
		}
		if err := writeNvram(disk, id); err != nil {
			return res, fmt.Errorf("write nvram of %s: %w", n.Name, err)
		}
		res.Written = append(res.Written, n.Name)
	}
	return res, nil
}

// writeNvram writes a fresh nvram record for id to the disk at path,
// keeping the layout already there (9front's, readable by 4e, if none).
func writeNvram(path string, id Identity) error {
	im, closeDisk, err := openDisk(path, true)
	if err != nil {
		return err
	}
	r := &nvram.Record{Layout: nvram.NineFront}
	if old, _, err := im.ReadNvram(); err == nil {
		r.Layout = old.Layout
		r.Config = old.Config
	}
	r.AuthID, r.AuthDom = id.User, id.AuthDom
	err = r.SetPassword(id.Password)
	if err == nil {
		_, err = im.WriteNvram(r)
	}
	return errors.Join(err, closeDisk())
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	return w
}
