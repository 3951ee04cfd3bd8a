//go:build !unix

package standin

// lockFile is a no-op where flock is unavailable; the stand-in guest is
// built only on Debian-like hosts anyway.
func lockFile(string) (func(), error) { return func() {}, nil }
