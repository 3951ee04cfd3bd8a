package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/qcow2"
	"gridlord/testing/testenv"
)

// runDiskCmd runs runMain in-process and returns its exit status and output.
func runDiskCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code := runMain(context.Background(), env, args)
	return code, out.String(), errOut.String()
}

func TestDiskCloneInfoFlatten(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.qcow2")
	if err := qcow2.Create(seed, qcow2.CreateOptions{Size: 10 << 30}); err != nil {
		t.Fatal(err)
	}
	im, err := qcow2.Open(seed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.WriteAt([]byte("plan9 seed"), 1<<20); err != nil {
		t.Fatal(err)
	}
	im.Close()

	clone := filepath.Join(dir, "vm", "disk.qcow2")
	if code, _, e := runDiskCmd(t, "disk", "clone", seed, clone); code != 1 || !strings.Contains(e, "disk.qcow2") {
		t.Fatalf("clone into a missing directory: exit %d, %q", code, e)
	}
	clone = filepath.Join(dir, "disk.qcow2")
	if code, _, e := runDiskCmd(t, "disk", "clone", "-relative", seed, clone); code != 0 {
		t.Fatalf("disk clone: exit %d: %s", code, e)
	}
	if code, _, e := runDiskCmd(t, "disk", "clone", seed, clone); code != 1 || !strings.Contains(e, "exists") {
		t.Fatalf("clone over an existing file: exit %d, %q", code, e)
	}
	code, out, e := runDiskCmd(t, "disk", "info", clone)
	if code != 0 {
		t.Fatalf("disk info: exit %d: %s", code, e)
	}
	for _, want := range []string{"format: qcow2 (version 3, compat 1.1)", "virtual size: 10 GiB (10737418240 bytes)",
		"backing file: seed.qcow2 (format qcow2)", "backing image 1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("disk info output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runDiskCmd(t, "disk", "info", "-json", clone)
	var info qcow2.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil || code != 0 {
		t.Fatalf("disk info -json: exit %d, %v\n%s", code, err, out)
	}
	if info.Backing == nil || info.Backing.Path != seed || info.VirtualSize != 10<<30 {
		t.Fatalf("disk info -json: %+v", info)
	}

	flat := filepath.Join(dir, "flat.qcow2")
	if code, _, e := runDiskCmd(t, "disk", "flatten", clone, flat); code != 0 || !strings.Contains(e, "100%") {
		t.Fatalf("disk flatten: exit %d: %s", code, e)
	}
	f, err := qcow2.OpenReadOnly(flat)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 10)
	f.ReadAt(buf, 1<<20)
	if string(buf) != "plan9 seed" || f.Info().Backing != nil {
		t.Fatalf("flattened image reads %q, backing %v", buf, f.Info().Backing)
	}
	if code, _, _ := runDiskCmd(t, "disk", "clone", seed); code != 2 {
		t.Fatalf("disk clone with one argument: exit %d, want 2", code)
	}

	if testenv.Enabled() {
		qemuImg := testenv.Tool(t, "qemu-img")
		for _, img := range []string{clone, flat} {
			if out, err := exec.Command(qemuImg, "check", img).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img check %s: %v\n%s", img, err, out)
			}
		}
	}
}
