package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridlord/engine/venti"
	"gridlord/testing/p9pdata"
)

// TestVentiServeArenas serves the real plan9port arena partition read-only
// and reads every block plan9port's clients wrote back over the protocol.
func TestVentiServeArenas(t *testing.T) {
	raw, err := p9pdata.Arenas()
	if err != nil {
		t.Fatal(err)
	}
	arenas := filepath.Join(t.TempDir(), "arenas")
	if err := os.WriteFile(arenas, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: pw, stderr: &errOut, log: slog.New(slog.NewTextHandler(&errOut, nil))}
	done := make(chan int, 1)
	go func() {
		code := runMain(ctx, env, []string{"venti", "serve", "-addr", "127.0.0.1:0", "-arenas", arenas})
		pw.CloseWithError(fmt.Errorf("venti serve exited with status %d", code))
		done <- code
	}()
	defer func() {
		cancel()
		pr.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("venti serve -arenas did not stop when cancelled")
		}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no address line: %v; stderr: %s", err, errOut.String())
	}
	go io.Copy(io.Discard, pr)
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "venti" || !strings.Contains(line, "59 blocks, read-only") {
		t.Fatalf("address line %q", line)
	}
	c, err := venti.Dial(ctx, fields[1])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	blocks, err := p9pdata.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range blocks {
		got, err := c.Read(ctx, b.Score, b.Type, venti.MaxBlock)
		if err != nil {
			t.Fatalf("block %d: %v", n, err)
		}
		if !bytes.Equal(got, b.Data) {
			t.Fatalf("block %d (%v): served bytes differ", n, b.Score)
		}
	}
	if n := len(blocks); n != 59 {
		t.Fatalf("blocks.bin held %d blocks, want 59", n)
	}
	_, err = c.Write(ctx, venti.DataType, []byte("not stored"))
	var se *venti.ServerError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write to a read-only arenas server: %v, want a read-only error", err)
	}
}
