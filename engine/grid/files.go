package grid

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// The files of a grid directory besides the model (FileName, BackupName,
// BadName, NodesDir), in one place for the engine, the CLI and the window
// (as Lima keeps its instance files in one package):
//
//	engine.lock     flock held by the running engine; holds its pid
//	engine.sock     the engine's gridfs socket (unix, mode 0600; on Windows
//	                a file holding its loopback address)
//	engine.log      a detached engine's log (its records at level info and
//	                above are also the engine's event log, served live as
//	                gridfs /log: gridlord events, the window's events pane)
//	boot.json       direct-kernel boot records of seeds
//	passwords.json  passwords set for the grid's users (mode 0600)
//	venti/          the embedded venti's store (default)
//	mirrors/        the venti's mirrors and how far each got
//	cache/          materialised seeds (default)
//	nodes/UUID/     per node: DiskName and the VM runner's files
const (
	LockName      = "engine.lock"
	SocketName    = "engine.sock"
	LogName       = "engine.log"
	BootName      = "boot.json"
	PasswordsName = "passwords.json"
	VentiDir      = "venti"
	MirrorsDir    = "mirrors"
	CacheDir      = "cache"
	// DiskName is a node's disk in its directory: a qcow2 linked clone of
	// its materialised seed, or a copy of the disk it was cloned from.
	DiskName = "disk.qcow2"
)

// DefaultVentiAddr is where the embedded venti listens on the host unless
// told otherwise: loopback only. Guests reach it at the grid's host address
// on VentiPort whatever the host address.
const DefaultVentiAddr = "127.0.0.1:17034"

// DefaultDataDir is where Gridlord keeps its grids on this OS:
// $XDG_DATA_HOME/gridlord, else ~/.local/share/gridlord on Unix other than
// macOS, else the user configuration directory plus gridlord (macOS:
// ~/Library/Application Support, Windows: %AppData%).
func DefaultDataDir() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "gridlord"), nil
	}
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, ".local", "share", "gridlord"), nil
		}
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no default data directory (%v): give -grid DIR", err)
	}
	return filepath.Join(d, "gridlord"), nil
}

// DefaultGridDir is the default grid's directory in data directory data.
func DefaultGridDir(data string) string { return filepath.Join(data, "grids", "default") }
