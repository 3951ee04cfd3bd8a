//go:build !windows

package gridfs_test

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	"gridlord/engine/gridfs"
)

// TestLogFollows: a reader of /log gets the kept events, then each new one
// as it is logged.
func TestLogFollows(t *testing.T) {
	s := startServer(t)
	s.e.AddEvent(gridfs.Event{Time: time.Now(), Node: "cpu1", Level: "INFO", What: "starting node"})
	ctx := context.Background()
	r, err := dial(t, s).OpenLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasSuffix(line, " cpu1 INFO starting node\n") {
		t.Fatalf("first event %q, %v", line, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.e.AddEvent(gridfs.Event{Time: time.Now(), Node: "cpu1", Level: "INFO", What: "node ready"})
	}()
	line, err = br.ReadString('\n')
	if err != nil || !strings.HasSuffix(line, " cpu1 INFO node ready\n") {
		t.Fatalf("followed event %q, %v", line, err)
	}
}
