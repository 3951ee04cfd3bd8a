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
	want := []string{"-h", "tcp!127.0.0.1!40019", "-G", "-a", "tcp!127.0.0.1!40567", "-u", "glenda"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("9front args = %q, %v; want %q", got, err, want)
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
	if string(got) != "-h tcp!127.0.0.1!1234 -u glenda\npass=secret\n" {
		t.Errorf("drawterm got %q", got)
	}
}
