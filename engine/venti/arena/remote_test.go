package arena

import (
	"bytes"
	"context"
	"net"
	"testing"

	"gridlord/engine/venti"
)

// TestImportOverProtocol imports the real arenas into a venti server on a
// loopback socket through the venti protocol client (gridlord venti
// import -h), then serves the arenas read-only over the protocol and
// reads every block back through a client.
func TestImportOverProtocol(t *testing.T) {
	b, _ := realArenas(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := func(st venti.Store) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { venti.NewServer(st).Serve(ctx, ln); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return ln.Addr().String()
	}

	mem := venti.NewMemStore()
	c, err := venti.Dial(ctx, serve(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := Import(ctx, openBytes(t, b), c, ImportOptions{StateDir: t.TempDir(), CheckpointEvery: 10})
	if err != nil || res.Written != 59 {
		t.Fatalf("%+v, %v", res, err)
	}
	checkStore(t, mem)

	rs, err := OpenStore(ctx, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := venti.Dial(ctx, serve(rs))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, bl := range realBlocks(t) {
		got, err := rc.Read(ctx, venti.Sum(bl.data), bl.t, venti.MaxBlock)
		if err != nil || !bytes.Equal(got, bl.data) {
			t.Errorf("block %v/%v over the protocol: %v", venti.Sum(bl.data), bl.t, err)
		}
	}
	if _, err := rc.Write(ctx, venti.DataType, []byte("new")); err == nil {
		t.Error("write to the read-only arenas succeeded over the protocol")
	} else {
		t.Logf("write refused over the protocol: %v", err)
	}
}
