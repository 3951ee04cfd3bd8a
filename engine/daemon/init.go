package daemon

import "gridlord/engine/grid"

// InitOptions configures InitGrid (grid.InitOptions).
type InitOptions = grid.InitOptions

// InitGrid creates the default grid in dir (grid.Init).
func InitGrid(dir string, opts InitOptions) (*grid.Grid, error) { return grid.Init(dir, opts) }
