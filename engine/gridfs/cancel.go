package gridfs

import "context"

// AttachedWord prefixes a command written to a ctl file (or /identity) to
// attach it to the connection that writes it: the engine runs it under a
// context that ends when that connection closes, so a client cancels it by
// closing its connection (Client does when the context of a Cancellable
// call ends). Without it a command outlives its client.
//
//	attached reset
//	attached seed import lab /tmp/lab.qcow2
const AttachedWord = "attached"

type cancellableKey struct{}

// Cancellable marks ctx so that the commands a Client writes under it are
// attached (AttachedWord) to a connection of their own: when ctx ends the
// client closes that connection and the engine cancels the command. The
// engine's side: the context its Ctl, NodeCtl or Identity gets for an
// attached command is marked too (IsCancellable), and ends when the
// client cancels.
func Cancellable(ctx context.Context) context.Context {
	return context.WithValue(ctx, cancellableKey{}, true)
}

// IsCancellable reports whether ctx is marked by Cancellable: on the
// engine's side, that a command's context ends when its client cancels it,
// so the command should stop then rather than outlive its client.
func IsCancellable(ctx context.Context) bool {
	v, _ := ctx.Value(cancellableKey{}).(bool)
	return v
}
