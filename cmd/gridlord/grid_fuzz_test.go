package main

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseForward(t *testing.T) {
	st := "running kind=cpu ip=10.0.9.11 pid=7 pending=false fwd=564:127.0.0.1:4000,17010:127.0.0.1:4001"
	if h, ok := parseForward(st, 17010); !ok || h != "127.0.0.1:4001" {
		t.Fatalf("17010: %q %v", h, ok)
	}
	if _, ok := parseForward(st, 567); ok {
		t.Fatal("found a forward of 567 that is not there")
	}
	if _, ok := parseForward("stopped kind=cpu pid=0", 564); ok {
		t.Fatal("forward in a stopped node's status")
	}
}

// FuzzParseForward: status lines come from the engine over gridfs; any
// line is parsed without panicking, and a found host is one of the line's
// words.
func FuzzParseForward(f *testing.F) {
	f.Add("running kind=cpu ip=10.0.9.11 pid=7 pending=false fwd=564:127.0.0.1:4000,17010:127.0.0.1:4001", 17010)
	f.Add("fwd=,,:,564:", 564)
	f.Add("fwd=564:", 564)
	f.Fuzz(func(t *testing.T, line string, port int) {
		h, ok := parseForward(line, port)
		if ok && (h == "" || !strings.Contains(line, strconv.Itoa(port)+":"+h)) {
			t.Fatalf("parseForward(%q, %d) = %q", line, port, h)
		}
	})
}
