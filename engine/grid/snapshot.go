package grid

import (
	"fmt"

	"github.com/google/uuid"

	"gridlord/images"
)

// SpawnNode adds a node whose disk is the snapshot seed (see
// images.SnapshotInfo) or, for a file-system snapshot, a fossil node of the
// origin's seed whose fossil is to be formatted from the archive
// (Node.FossilFrom): the kind, memory and identity of the node the
// snapshot was taken from, and, when that node is still in the grid, its
// links (so a spawned fossil archives where its origin did). name "" picks
// the next free name of the kind.
func (g *Grid) SpawnNode(snapshot, name string) (*Node, error) {
	s, err := g.Seed(snapshot)
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	info := s.Snapshot
	if info == nil {
		return nil, fmt.Errorf("spawn: seed %s is not a snapshot (gridlord scores lists them)", snapshot)
	}
	spec := NodeSpec{Name: name, Kind: Kind(info.NodeKind), Seed: snapshot, MemoryMB: info.MemoryMB, User: info.User, AuthDom: info.AuthDom}
	if info.Kind == images.SnapshotFS {
		spec.Seed = info.Seed // its fossil is formatted from the archive at its first start
	}
	n, err := g.newNode(spec)
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", snapshot, err)
	}
	if info.Kind == images.SnapshotFS {
		n.FossilFrom = snapshot
	}
	g.Nodes = append(g.Nodes, n)
	if id, err := uuid.Parse(info.NodeID); err == nil && g.NodeByID(id) != nil {
		for _, l := range g.Links {
			if l.From == id {
				g.Links = append(g.Links, &Link{From: n.ID, To: l.To, Kind: l.Kind})
			}
		}
	}
	g.refresh()
	return n, nil
}
