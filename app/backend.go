package app

import (
	"context"
	"errors"
	"io"

	"gridlord/engine/drawterm"
	"gridlord/engine/grid"
)

// ErrEngineNotRunning is returned for operations only a running engine can
// do (start, stop, consoles) when the window has no engine to ask.
var ErrEngineNotRunning = errors.New("the engine is not running: start it with \"gridlord engine -grid DIR\" (or reopen Gridlord so it starts one)")

// Backend is the engine as the window sees it: the grid model, node control,
// consoles, venti statistics and change events. Commands are the words of
// the engine's gridfs ctl files (see engine/gridfs), so every backend speaks
// the same language. Implementations are safe for concurrent use.
//
// Two implementations exist: Local runs the grid in this process (used when
// no engine daemon answers, and by tests), and Remote talks to the engine
// daemon over its gridfs socket.
type Backend interface {
	// Grid returns a private copy of the grid model.
	Grid(ctx context.Context) (*grid.Grid, error)
	// GridDir is the grid's directory on this machine.
	GridDir() string
	// NodeStatus is a node's one-line state, "running ip=10.0.9.11 ...",
	// whose first word is stopped, starting, running, stopping or failed.
	NodeStatus(ctx context.Context, node string) (string, error)
	// Ctl runs one grid command: up, down, add KIND NAME SEED, remove NAME,
	// clone SRC NEW, wire FROM TO, unwire FROM TO, move NAME X Y, arrange,
	// identity NAME USER AUTHDOM, memory NAME MB, ip NAME ADDR, rename OLD NEW.
	Ctl(ctx context.Context, words ...string) error
	// NodeCtl runs one node command: start (with its dependencies), stop
	// or poweroff (with its dependants), or reset (recreate a stopped
	// node's disk from its seed).
	NodeCtl(ctx context.Context, node string, words ...string) error
	// NodeIni is the node's plan9.ini: from its disk, or the one it will get.
	NodeIni(ctx context.Context, node string) ([]byte, error)
	// Identity writes one command to the engine's /identity (a new host
	// owner identity: nvram on the nodes' disks and, with keyfs=yes, the
	// auth servers' keyfs); see gridfs.IdentityVerbs.
	Identity(ctx context.Context, line string) error
	// Drawterm says how drawterm reaches a running node (the engine's
	// /nodes/NAME/drawterm).
	Drawterm(ctx context.Context, node string) (drawterm.Target, error)
	// OpenConsole attaches to a node's serial console: reads stream its
	// output (scrollback first), writes type into it. Closing the stream
	// never affects the VM.
	OpenConsole(ctx context.Context, node string) (io.ReadWriteCloser, error)
	// Venti returns the venti's statistics.
	Venti(ctx context.Context) (VentiStatus, error)
	// Changes subscribes to changes of the grid and of node states: the
	// channel receives after every change from now on (changes that come
	// while the receiver is busy merge into one). It is closed when ctx
	// ends or the engine's event stream fails (see Err).
	Changes(ctx context.Context) <-chan struct{}
	// Err is why the event stream failed, nil while it works.
	Err() error
	// Close releases what the backend holds (not the VMs of a daemon).
	Close() error
}
