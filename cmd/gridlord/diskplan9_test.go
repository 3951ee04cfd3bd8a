package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/plan9disk/plan9disktest"
	"gridlord/testing/testenv"
)

// runPlan9DiskCmd runs the CLI in-process and returns stdout, stderr and the exit status.
func runPlan9DiskCmd(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code := runMain(context.Background(), env, args)
	return out.String(), errb.String(), code
}

func TestDiskIniCommand(t *testing.T) {
	img := plan9disktest.BuildNativeSmall(t)
	out, _, code := runPlan9DiskCmd(t, "", "disk", "ini", img)
	if code != 0 || out != plan9disktest.Plan9Ini {
		t.Fatalf("print: %d %q", code, out)
	}
	if _, errs, code := runPlan9DiskCmd(t, "", "disk", "ini", img, "venti=tcp!10.0.2.20!17034", "sysname=cpu", "-d", "x"); code != 2 {
		t.Fatalf("flag after args should be a usage error... got %d %s", code, errs)
	}
	if _, errs, code := runPlan9DiskCmd(t, "", "disk", "ini", "-d", "installmode", "-d", "monitor", img, "venti=tcp!10.0.2.20!17034", "sysname=cpu"); code != 0 {
		t.Fatalf("edit: %d %s", code, errs)
	}
	out, _, code = runPlan9DiskCmd(t, "", "disk", "ini", img, "venti", "sysname")
	if code != 0 || out != "tcp!10.0.2.20!17034\ncpu\n" {
		t.Fatalf("get: %d %q", code, out)
	}
	out, _, _ = runPlan9DiskCmd(t, "", "disk", "ini", img)
	if strings.Contains(out, "installmode") || strings.Contains(out, "monitor") {
		t.Fatalf("deleted keys still there:\n%s", out)
	}
	if _, errs, code := runPlan9DiskCmd(t, "", "disk", "ini", img, "nosuchkey"); code != 1 || !strings.Contains(errs, "nosuchkey") {
		t.Fatalf("missing key: %d %s", code, errs)
	}
	if _, errs, code := runPlan9DiskCmd(t, "", "disk", "ini", "-d", "nosuchkey", img); code != 1 || !strings.Contains(errs, "nothing was changed") {
		t.Fatalf("delete missing: %d %s", code, errs)
	}
}

func TestDiskNvramCommand(t *testing.T) {
	img := plan9disktest.BuildNativeSmall(t)
	if _, errs, code := runPlan9DiskCmd(t, "", "disk", "nvram", img); code != 1 || !strings.Contains(errs, "blank") {
		t.Fatalf("blank: %d %s", code, errs)
	}
	out, errs, code := runPlan9DiskCmd(t, "password\n", "disk", "nvram", "-authid", "bootes", "-authdom", "grid", "-password-stdin", img)
	if code != 0 {
		t.Fatalf("write: %d %s", code, errs)
	}
	t.Log(out)
	out, _, code = runPlan9DiskCmd(t, "", "disk", "nvram", img)
	want := "location\tpartition nvram\nlayout\t9front\nauthid\tbootes\nauthdom\tgrid\ndes key\tset\naes key\tset\n"
	if code != 0 || out != want {
		t.Fatalf("print: %d %q", code, out)
	}
	// Change only the domain: keys are kept.
	if _, errs, code := runPlan9DiskCmd(t, "", "disk", "nvram", "-authdom", "lab", img); code != 0 {
		t.Fatalf("authdom: %d %s", code, errs)
	}
	f, _ := plan9disk.OpenFile(img, false)
	defer f.Close()
	im, _ := plan9disk.Open(f)
	r, _, err := im.ReadNvram()
	if err != nil || r.AuthDom != "lab" || r.MachKey != nvram.PassToDESKey("password") {
		t.Fatalf("record %+v, %v", r, err)
	}
}

// TestDiskIniQcow2 edits plan9.ini inside a qcow2 overlay of a raw fixture
// and checks the result with qemu-img and mtools.
func TestDiskIniQcow2(t *testing.T) {
	qemuImg := testenv.Tool(t, "qemu-img")
	mtype := testenv.Tool(t, "mtype")
	raw := plan9disktest.BuildNativeSmall(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	top := filepath.Join(dir, "top.qcow2")
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run(qemuImg, "convert", "-O", "qcow2", raw, base)
	run(qemuImg, "create", "-f", "qcow2", "-F", "qcow2", "-b", base, top)
	baseBefore, _ := os.ReadFile(base)
	if _, errs, code := runPlan9DiskCmd(t, "", "disk", "ini", top, "venti=tcp!10.0.2.20!17034"); code != 0 {
		t.Fatalf("edit qcow2: %d %s", code, errs)
	}
	if baseAfter, _ := os.ReadFile(base); !bytes.Equal(baseBefore, baseAfter) {
		t.Fatal("backing image changed")
	}
	run(qemuImg, "check", top)
	flat := filepath.Join(dir, "flat.raw")
	run(qemuImg, "convert", "-O", "raw", top, flat)
	got := run(mtype, "-i", flat+"@@32256", "::plan9.ini")
	want := strings.Replace(plan9disktest.Plan9Ini, "venti=#S/sdC0/arenas", "venti=tcp!10.0.2.20!17034", 1)
	if got != want {
		t.Fatalf("plan9.ini in qcow2:\n%s", got)
	}
}
