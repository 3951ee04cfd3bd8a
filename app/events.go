package app

import (
	"context"
	"io"

	"gridlord/engine/gridfs"
)

// Event is one event of the engine's log (gridfs /log): its time, node
// ("" for none), level (INFO, WARN, ERROR) and what happened.
type Event = gridfs.Event

// ParseEvent reads one line of the event log.
func ParseEvent(line string) (Event, error) { return gridfs.ParseEvent(line) }

// OpenEvents follows the engine's event log: reads return the events it
// keeps, one line each (ParseEvent), then block for the next. Close ends it.
func (a *App) OpenEvents(ctx context.Context) (io.ReadCloser, error) {
	return a.engine().c.OpenLog(ctx)
}

// Cancellable marks ctx so that the engine commands run under it are
// cancelled in the engine when ctx ends (gridfs.Cancellable): for the
// window's long jobs and their Cancel button. Without it a command keeps
// running in the engine after its caller gave up.
func Cancellable(ctx context.Context) context.Context { return gridfs.Cancellable(ctx) }
