package ninep

import (
	"io"
	"testing"
	"testing/fstest"

	"9fans.net/go/plan9"
)

// BenchmarkRead reads a 32 MiB file through the server over loopback TCP
// with the 9fans.net client (msize 64 KiB), and reports MB/s.
func BenchmarkRead(b *testing.B) {
	data := make([]byte, 32<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	c := serve(b, FromFS(fstest.MapFS{"big": {Data: data, Mode: 0o664}}, FSOptions{}))
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		fid, err := c.Open("/big", plan9.OREAD)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, fid)
		fid.Close()
		if err != nil || n != int64(len(data)) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}
