package drawterm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	tgt := Target{CPU: "127.0.0.1:40019", Auth: "127.0.0.1:40567", User: "glenda", NoGraphics: true}
	got, err := Args(Binary{Flavor: Front9}, tgt)
	// The old cpu protocol (4e, 9legacy) needs -O with drawterm-9front.
	want := []string{"-h", "tcp!127.0.0.1!40019", "-O", "-G", "-a", "tcp!127.0.0.1!40567", "-u", "glenda"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("9front args = %q, %v; want %q", got, err, want)
	}
	rcpu := tgt
	rcpu.Proto, rcpu.Secstore = RCPU, "127.0.0.1:45356"
	got, err = Args(Binary{Flavor: Front9}, rcpu)
	want = []string{"-h", "tcp!127.0.0.1!40019", "-G", "-a", "tcp!127.0.0.1!40567", "-s", "tcp!127.0.0.1!45356", "-u", "glenda"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("9front rcpu args = %q, %v; want %q", got, err, want)
	}
	if _, err := Args(Binary{Flavor: Labs}, rcpu); err == nil || !strings.Contains(err.Error(), "drawterm-9front") {
		t.Errorf("labs drawterm for an rcpu node: %v, want a hint to install drawterm-9front", err)
	}
	got, err = Args(Binary{Flavor: Labs}, tgt)
	want = []string{"-c", "tcp!127.0.0.1!40019", "-a", "tcp!127.0.0.1!40567", "-u", "glenda"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("labs args = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:x", ":17019"} {
		if _, err := Args(Binary{Flavor: Front9}, Target{CPU: bad}); err == nil {
			t.Errorf("cpu %q accepted", bad)
		}
	}
}

func TestFlavorFromUsage(t *testing.T) {
	front := "usage: drawterm [-GBO] [-h host] [-u user] [-a authserver] [-s secstore] [-e 'crypt hash'] [-k keypattern] [-p] [-t timeout] [-r root] [-g geometry] [-c cmd ...]"
	labs := "usage: drawterm [-a authserver] [-c cpuserver] [-s secstore] [-u user]"
	if f, ok := FlavorFromUsage([]byte(front)); !ok || f != Front9 {
		t.Errorf("9front usage -> %q %v", f, ok)
	}
	if f, ok := FlavorFromUsage([]byte(labs)); !ok || f != Labs {
		t.Errorf("labs usage -> %q %v", f, ok)
	}
	if _, ok := FlavorFromUsage([]byte("ls: invalid option")); ok {
		t.Error("unrelated text recognised")
	}
}

func TestFindMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Find(context.Background(), "")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "install") {
		t.Fatalf("err = %v, want ErrNotFound with a hint", err)
	}
	if _, err := Find(context.Background(), "/nonexistent/drawterm"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("configured missing path: %v", err)
	}
}

// TestLaunchReportsExit runs a shell script standing in for drawterm: it
// prints the 9front usage for "-?" and otherwise records its arguments and
// exits 3, which Launch must report.
func TestLaunchReportsExit(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses a shell script")
	}
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	script := "#!/bin/sh\nif [ \"$1\" = '-?' ]; then echo 'usage: drawterm [-GBO] [-h host]' >&2; exit 1; fi\n" +
		"echo \"$@\" > " + argsFile + "\necho \"pass=$PASS\" >> " + argsFile + "\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, "drawterm-9front"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	b, err := Find(context.Background(), "")
	if err != nil || b.Flavor != Front9 {
		t.Fatalf("Find = %+v, %v", b, err)
	}
	s, err := Launch(context.Background(), b, Target{CPU: "127.0.0.1:1234", User: "glenda", Password: "secret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err == nil || s.ExitCode() != 3 {
		t.Fatalf("Wait = %v, exit %d; want exit status 3", err, s.ExitCode())
	}
	got, _ := os.ReadFile(argsFile)
	if string(got) != "-h tcp!127.0.0.1!1234 -O -u glenda\npass=secret\n" {
		t.Errorf("drawterm got %q", got)
	}
}

func TestTargetRoundTrip(t *testing.T) {
	in := Target{CPU: "127.0.0.1:1", Auth: "127.0.0.1:2", Secstore: "127.0.0.1:3", Proto: NCPU, User: "bootes", AuthDom: "grid", Password: "pass word"}
	out, err := ParseTarget(in.Marshal())
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v; want %+v", out, err, in)
	}
	for _, bad := range []string{"", "auth 127.0.0.1:2\n", "cpu 127.0.0.1:1\nproto xcpu\n", "cpu 127.0.0.1:1\nnokey\n", "cpu 127.0.0.1:1\ncolour red\n"} {
		if _, err := ParseTarget([]byte(bad)); err == nil {
			t.Errorf("ParseTarget(%q) accepted", bad)
		}
	}
}

// FuzzParseTarget: the target comes from the engine over gridfs; any bytes
// parse without panicking, and what parses marshals back to an equal target.
func FuzzParseTarget(f *testing.F) {
	f.Add([]byte("cpu 127.0.0.1:1\nproto ncpu\nauth 127.0.0.1:2\nuser bootes\npassword x y\n"))
	f.Add([]byte("cpu \n\n\nproto rcpu"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tg, err := ParseTarget(b)
		if err != nil {
			return
		}
		again, err := ParseTarget(tg.Marshal())
		if err != nil || again != tg {
			t.Fatalf("%q: parsed %+v, re-parsed %+v (%v)", b, tg, again, err)
		}
	})
}

// TestMarkerWriter: the status marker is taken off the output wherever
// the writes split it, and output that only looks like its start passes.
func TestMarkerWriter(t *testing.T) {
	full := "line one\nhalf a gridlord-exit-\ncpu1" + "\ngridlord-exit-abc: ls 12: error\n"
	for split := 0; split <= len(full); split++ {
		var out strings.Builder
		m := &markerWriter{w: &out, marker: []byte("\ngridlord-exit-abc:")}
		m.Write([]byte(full[:split]))
		m.Write([]byte(full[split:]))
		m.flush()
		if !m.found || out.String() != "line one\nhalf a gridlord-exit-\ncpu1" || strings.TrimSpace(string(m.status)) != "ls 12: error" {
			t.Fatalf("split %d: found=%v out=%q status=%q", split, m.found, out.String(), m.status)
		}
	}
	var out strings.Builder
	m := &markerWriter{w: &out, marker: []byte("\ngridlord-exit-abc:")}
	m.Write([]byte("no marker\ngridlord-exit"))
	m.flush()
	if m.found || out.String() != "no marker\ngridlord-exit" {
		t.Fatalf("without a marker: found=%v out=%q", m.found, out.String())
	}
}
