package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func vmTestEnv() (*cmdEnv, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}, &out, &errb
}

func TestVMRunSpecErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"name":"x","memroyMiB":64}`), 0o644)
	env, _, _ := vmTestEnv()
	if err := runVMRun(context.Background(), env, []string{bad}); err == nil || !strings.Contains(err.Error(), "memroyMiB") {
		t.Errorf("misspelt field: %v", err)
	}
	if err := runVMRun(context.Background(), env, nil); err == nil {
		t.Error("no spec accepted")
	}
}

func TestVMRunWithoutQEMU(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "s.json")
	os.WriteFile(spec, []byte(`{"name":"x"}`), 0o644)
	t.Setenv("PATH", t.TempDir())
	env, _, _ := vmTestEnv()
	state := filepath.Join(dir, "state")
	err := runVMRun(context.Background(), env, []string{"-state", state, spec})
	if err == nil || !strings.Contains(err.Error(), "not installed") || !strings.Contains(err.Error(), "install it with") {
		t.Fatalf("err = %v, want the not-installed message with a hint", err)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
