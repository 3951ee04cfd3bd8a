package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gridlord/engine/network"
	"gridlord/engine/qemu"
)

// runVMRun boots one node from a JSON qemu.Spec in the foreground: the
// console goes to stdout, stdin goes to the console, and an interrupt stops
// the VM by the power-button ladder.
func runVMRun(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "vm run", "[flags] SPEC.json")
	state := fs.String("state", "", "state directory for the node's sockets and logs (default: a new temporary directory, removed at exit)")
	grace := fs.Duration("grace", 30*time.Second, "how long the guest gets to power off after the power button before QEMU is told to quit")
	forward := fs.Bool("forward", true, "forward the drawterm and 9fs ports (17010, 17019, 567, 564) from loopback to the node")
	subnet := fs.String("subnet", "", "subnet of the node's private network (default 192.168.127.0/24)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want one SPEC.json", errUsage)
	}
	spec, err := readVMSpec(fs.Arg(0))
	if err != nil {
		return err
	}
	dir := *state
	if dir == "" {
		if dir, err = os.MkdirTemp("", "gridlord-vm-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	var sw *network.Switch
	if len(spec.NICs) > 0 {
		uuid := spec.UUID
		members, err := network.Plan(network.Config{Subnet: *subnet}, []string{spec.Name}, map[string]string{spec.Name: uuid})
		if err != nil {
			return fmt.Errorf("node %s network (give the spec a uuid): %w", spec.Name, err)
		}
		for i := range spec.NICs {
			if spec.NICs[i].MAC == "" {
				spec.NICs[i].MAC = members[0].MAC
			}
		}
		members[0].MAC = spec.NICs[0].MAC
		if sw, err = network.New(network.Config{Subnet: *subnet}, members, env.log); err != nil {
			return err
		}
		defer sw.Close()
		fmt.Fprintf(env.stderr, "gridlord: %s is %s on %s; the host (no services exposed) is %s\n",
			spec.Name, members[0].IP, sw.Config().Subnet, sw.Config().HostIP)
	}
	cache := ""
	if d, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(d, "gridlord")
	}
	var swi qemu.Switch
	if sw != nil {
		swi = sw
	}
	sup, err := qemu.NewSupervisor(dir, swi, qemu.SupervisorOptions{CacheDir: cache, Log: env.log})
	if err != nil {
		return err
	}
	defer sup.Close()
	node, err := sup.Start(ctx, spec)
	if err != nil {
		return err
	}
	info := node.VM.Info()
	fmt.Fprintf(env.stderr, "gridlord: %s running (pid %d, accel %s); state in %s; interrupt to stop\n",
		info.Name, info.PID, info.Accel, dir)
	if sw != nil && *forward {
		fwds, err := sw.ForwardStandard(spec.Name, 0)
		if err != nil {
			env.log.Warn("port forwards", "err", err)
		}
		for _, f := range fwds {
			fmt.Fprintf(env.stderr, "gridlord: forward %s -> %s:%d\n", f.Host, spec.Name, f.GuestPort)
		}
	}
	out := node.Console.Subscribe(true)
	defer out.Close()
	go io.Copy(env.stdout, out)
	go io.Copy(node.Console, env.stdin)

	select {
	case <-node.VM.Done():
	case <-ctx.Done():
		fmt.Fprintf(env.stderr, "\ngridlord: stopping %s\n", spec.Name)
		sctx, cancel := context.WithTimeout(context.Background(), *grace+15*time.Second)
		defer cancel()
		if err := sup.Stop(sctx, spec.Name, *grace); err != nil {
			return err
		}
	}
	info = node.VM.Info()
	time.Sleep(100 * time.Millisecond) // let the last console bytes reach stdout
	if info.State == qemu.Failed {
		return fmt.Errorf("%s failed: %s; last lines:\n%s", info.Name, info.Err, strings.Join(info.LastLines, "\n"))
	}
	fmt.Fprintf(env.stderr, "gridlord: %s stopped (%s)\n", info.Name, info.Exit)
	return nil
}

// readVMSpec reads a qemu.Spec from a JSON file, rejecting unknown fields.
func readVMSpec(path string) (qemu.Spec, error) {
	var spec qemu.Spec
	b, err := os.ReadFile(path)
	if err != nil {
		return spec, fmt.Errorf("read VM spec: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("VM spec %s: %w", path, err)
	}
	if spec.Name == "" {
		return spec, errors.New("VM spec " + path + ": no name")
	}
	return spec, nil
}
