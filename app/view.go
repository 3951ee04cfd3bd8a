// Package app connects the Gridlord window to the engine. The window holds
// an App, which is a gridfs client of the grid's engine (Remote): the one
// engine implementation, engine/daemon, serving the grid, or one started for
// it. App turns engine state into plain view values and has one method per
// user action; wizards' logic (new grid, reset identity, clone preview)
// lives here too, so it is tested without a window. It never imports Fyne
// nor the engine's runtime: package ui renders what app describes.
package app

import "time"

// NodeView is what the window shows of one node.
type NodeView struct {
	ID      string // stable identity (the node's UUID)
	Name    string // "fossil1"
	Kind    string // venti, fossil, cpu, auth or fossil+auth
	IP      string // address on the grid's network, "" if none
	State   string // stopped, starting, running, stopping, failed
	Pending bool   // its VM runs an older configuration than the grid's; the next start applies it
	PID     int    // its VM's process id, 0 when none runs (a new one is a new boot)
	// Measured: Uptime, CPU and RSS are the live figures of its VM's QEMU
	// process (how long it has run, CPU in percent of one core, resident
	// memory in bytes); false when none runs or they are not measured.
	Measured bool
	Uptime   time.Duration
	CPU      float64
	RSS      int64
	X, Y     float32 // position on the canvas

	Seed     string // seed image name ("" for the embedded venti)
	MemoryMB int    // guest memory
	User     string // host owner in its nvram
	AuthDom  string // auth domain in its nvram
	Embedded bool   // the engine's own venti (no VM)
	// DefaultPassword: its host owner still has the seed's well-known
	// password.
	DefaultPassword bool
	Problems        []string // what grid.Check says is wrong with it
}

// Up reports whether the node's VM is up: starting, running or stopping.
func (n NodeView) Up() bool {
	return n.State == "starting" || n.State == "running" || n.State == "stopping"
}

// LinkView is a directed link: From depends on To (cpu → fossil → venti,
// cpu → auth).
type LinkView struct {
	From, To string // node IDs
	Kind     string // root, archive or auth
}

// GridView is a snapshot of the grid for drawing.
type GridView struct {
	Name  string
	Dir   string // the grid directory
	Nodes []NodeView
	Links []LinkView
}

// Node returns the node with the given ID.
func (g GridView) Node(id string) (NodeView, bool) {
	for _, n := range g.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return NodeView{}, false
}

// NodeByName returns the node called name.
func (g GridView) NodeByName(name string) (NodeView, bool) {
	for _, n := range g.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return NodeView{}, false
}

// VentiStatus is the status-bar summary of the embedded venti.
type VentiStatus struct {
	Addr         string // where it listens, "127.0.0.1:17034"
	Blocks       int64  // blocks stored
	StoredBytes  int64  // bytes of block data stored
	WrittenBytes int64  // bytes clients wrote, duplicates included
	Err          string // why it is not serving, "" when it is
}

// DedupRatio is bytes written by clients over bytes stored (1 when nothing
// is stored).
func (v VentiStatus) DedupRatio() float64 {
	if v.StoredBytes == 0 {
		return 1
	}
	return float64(v.WrittenBytes) / float64(v.StoredBytes)
}
