package ninep

import (
	"context"
	"io"
	"testing"
	"testing/fstest"

	"9fans.net/go/plan9"
)

// TestOverlay: extra files shadow and join the tree below, listings hold
// each name once, writes are refused and an extra without a parent is
// refused up front.
func TestOverlay(t *testing.T) {
	ctx := context.Background()
	base := FromFS(fstest.MapFS{
		"dist/replica/plan9.log": {Data: []byte("the CD's log\n")},
		"n/a/x":                  {Data: []byte("x")},
	}, FSOptions{})
	o, err := Overlay(base, map[string]Extra{
		"dist/replica/plan9.log": {Data: []byte("filtered\n")},
		"dist/replica/gridlord":  {Data: []byte("#!/bin/rc\n"), Mode: 0o775},
		"n/newfs":                {Dir: true},
		"n/newfs/inside":         {Data: []byte("i"), Owner: "adm"},
	})
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		t.Helper()
		f, err := o.Open(ctx, name, plan9.OREAD)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("dist/replica/plan9.log"); got != "filtered\n" {
		t.Errorf("shadowed file reads %q", got)
	}
	if got := read("n/a/x"); got != "x" {
		t.Errorf("base file reads %q", got)
	}
	d, err := o.Stat(ctx, "dist/replica/gridlord")
	if err != nil || d.Mode != 0o775 || d.Length != 10 || d.Uid != "sys" {
		t.Errorf("stat of an extra: %+v %v", d, err)
	}
	if d, err := o.Stat(ctx, "n/newfs"); err != nil || d.Mode&plan9.DMDIR == 0 || d.Qid.Type&plan9.QTDIR == 0 {
		t.Errorf("stat of an extra directory: %+v %v", d, err)
	}
	ents, err := o.ReadDir(ctx, "dist/replica")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, e := range ents {
		names[e.Name]++
	}
	if len(ents) != 2 || names["plan9.log"] != 1 || names["gridlord"] != 1 {
		t.Errorf("listing %v", names)
	}
	if ents, err := o.ReadDir(ctx, "n/newfs"); err != nil || len(ents) != 1 || ents[0].Uid != "adm" {
		t.Errorf("listing of an extra directory: %+v %v", ents, err)
	}
	if _, err := o.Open(ctx, "dist/replica/gridlord", plan9.OWRITE); err == nil {
		t.Error("an extra opened for writing")
	}
	if _, err := Overlay(base, map[string]Extra{"nodir/f": {Data: []byte{}}}); err == nil {
		t.Error("an extra without a parent directory was accepted")
	}
	if _, err := Overlay(base, map[string]Extra{"../f": {Data: []byte{}}}); err == nil {
		t.Error("an unclean path was accepted")
	}
}
