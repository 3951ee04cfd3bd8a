package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// processes is "bench vac -cli": the phases of "bench vac" run as the
// commands a user types, each its own process, against "gridlord venti
// serve" in another process on a new store in dir. The CPU figures are
// the client process's alone (the server's total is printed at the end).
func (b *vacBench) processes(ctx context.Context, env *cmdEnv, dir string, workers int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench vac -cli: find this executable: %w", err)
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			return fmt.Errorf("store %s is not empty: give an empty or new -store directory", dir)
		}
	}
	srv := exec.CommandContext(ctx, exe, "venti", "serve", "-store", dir, "-addr", "127.0.0.1:0", "-http", "off")
	srv.Stderr = io.Discard
	srv.Cancel = func() error { return srv.Process.Signal(os.Interrupt) }
	srv.WaitDelay = time.Minute
	out, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start venti serve: %w", err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		// An interrupt makes the server close its store cleanly.
		srv.Process.Signal(os.Interrupt)
		return srv.Wait()
	}
	defer stop()
	// The server's first line on stdout: "venti ADDR store DIR".
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) < 2 || f[0] != "venti" {
		return fmt.Errorf("venti serve did not say where it listens (%q, %v)", line, err)
	}
	addr := f[1]

	// run times one gridlord command, its stdout going to stdout (nil:
	// captured and returned).
	run := func(stdout *os.File, args ...string) (vacRate, string, error) {
		cmd := exec.CommandContext(ctx, exe, append(args[:1:1], append([]string{"-h", addr}, args[1:]...)...)...)
		var captured strings.Builder
		if stdout != nil {
			cmd.Stdout = stdout
		} else {
			cmd.Stdout = &captured
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return vacRate{}, "", fmt.Errorf("gridlord %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
		}
		r := vacRate{wall: float64(b.size) / time.Since(start).Seconds()}
		if cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(); cpu > 0 {
			r.cpu = float64(b.size) / cpu.Seconds()
		}
		return r, captured.String(), nil
	}
	wflag := func(args ...string) []string {
		if workers > 0 {
			return append(args[:1:1], append([]string{"-workers", strconv.Itoa(workers)}, args[1:]...)...)
		}
		return args
	}
	score := filepath.Join(b.outDir, "random.vac")
	vacR, printed, err := run(nil, wflag("vac", "-o", score, b.src)...)
	if err != nil {
		return err
	}
	revacR, _, err := run(nil, wflag("vac", b.src)...)
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	nullR, _, err := run(null, wflag("unvac", "-c", score)...)
	if err != nil {
		return err
	}
	cpR, err := b.cpBaseline()
	if err != nil {
		return err
	}
	fileR, _, err := run(nil, wflag("unvac", "-C", b.outDir, score)...)
	if err != nil {
		return err
	}
	if err := sameFile(b.src, filepath.Join(b.outDir, filepath.Base(b.src))); err != nil {
		return err
	}
	if err := stop(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("venti serve: %w", err)
		}
	}
	inFlight := "each command's default requests in flight"
	if workers > 0 {
		inFlight = fmt.Sprintf("-workers %d", workers)
	}
	fmt.Fprintf(env.stdout, "gridlord vac/unvac processes against a gridlord venti serve process (loopback TCP): %d MiB random file, 8 KiB blocks, %s; %s\n",
		b.size>>20, inFlight, strings.TrimSpace(printed))
	fmt.Fprintf(env.stdout, "rates: wall clock (ratio to SHA-1's wall-clock rate) and bytes per CPU-second of the client process alone\n"+
		"(the server's CPU is not in it; %.1f CPU-seconds for the whole run)\n",
		(srv.ProcessState.UserTime() + srv.ProcessState.SystemTime()).Seconds())
	return b.print(env.stdout, vacR, revacR, nullR, cpR, fileR)
}
