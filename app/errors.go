package app

import (
	"errors"
	"strings"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
)

// NodeConfig is the configuration the engine derives for a node (plan9.ini
// keys, nvram identity, config blocks); the clone wizard previews it.
type NodeConfig = grid.NodeConfig

// Defaults the wizards start from, as the engine's grid model has them.
const (
	DefaultSeed    = grid.DefaultSeed
	DefaultAuthDom = grid.DefaultAuthDom
	DefaultUser    = grid.DefaultUser
)

// ErrorReason is the one-line reason of err for a person: a refused
// link's reason, the engine's message for a refused command, else the
// first line. refused reports a refused link, which changed nothing.
func ErrorReason(err error) (reason string, refused bool) {
	var we *grid.WiringError
	if errors.As(err, &we) {
		return we.Reason, true
	}
	var ce *gridfs.CtlError
	if errors.As(err, &ce) {
		return ce.Msg, false
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s, false
}
