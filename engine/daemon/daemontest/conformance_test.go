package daemontest_test

import (
	"context"
	"testing"

	"gridlord/engine/daemon/daemontest"
	"gridlord/engine/gridfs"
	"gridlord/engine/gridfs/gridfstest"
)

// TestConformance runs the gridfs conformance suite against the real
// engine with fake VMs.
func TestConformance(t *testing.T) {
	gridfstest.Run(t, func(t *testing.T) *gridfs.Client {
		g := daemontest.Open(t, daemontest.Options{})
		c, err := gridfs.Dial(context.Background(), g.Engine.SocketPath())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	})
}
