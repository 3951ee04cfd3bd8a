package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/ini"
	"gridlord/engine/plan9disk/nvram"
)

// runDiskIni implements "gridlord disk ini IMG [key[=value]...]".
func runDiskIni(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "disk ini", "[-section NAME] [-d KEY]... IMG [key[=value]...]\n"+
		"Prints plan9.ini from the 9fat of a Plan 9 disk image (raw or qcow2); with\n"+
		"\"key\" prints that value; with \"key=value\" sets it; -d deletes a key.")
	section := fs.String("section", "", "work inside this [block] instead of the top of the file")
	var dels iniKeyList
	fs.Var(&dels, "d", "delete `KEY` (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return fmt.Errorf("%w: missing image", errUsage)
	}
	path, kvs := fs.Arg(0), fs.Args()[1:]
	var gets []string
	sets := map[string]string{}
	var order []string
	for _, kv := range kvs {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, dup := sets[k]; !dup {
				order = append(order, k)
			}
			sets[k] = v
		} else {
			gets = append(gets, kv)
		}
	}
	if len(gets) > 0 && (len(sets) > 0 || len(dels) > 0) {
		return fmt.Errorf("%w: either print keys or change them, not both", errUsage)
	}
	writing := len(sets) > 0 || len(dels) > 0
	im, closeDisk, err := plan9disk.OpenImage(path, writing)
	if err != nil {
		return err
	}
	if !writing {
		defer closeDisk()
		f, err := im.ReadPlan9Ini()
		if err != nil {
			return err
		}
		if len(gets) == 0 {
			_, err := env.stdout.Write(f.Bytes())
			return err
		}
		var missing []string
		for _, k := range gets {
			if v, ok := f.GetIn(*section, k); ok {
				fmt.Fprintln(env.stdout, v)
			} else {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("plan9.ini has no %s", strings.Join(missing, ", "))
		}
		return nil
	}
	err = im.EditPlan9Ini(func(f *ini.File) error {
		for _, k := range dels {
			if !f.DeleteIn(*section, k) {
				return fmt.Errorf("plan9.ini has no key %q to delete (nothing was changed)", k)
			}
		}
		for _, k := range order {
			if err := f.SetIn(*section, k, sets[k]); err != nil {
				return err
			}
		}
		return nil
	})
	return errors.Join(err, closeDisk())
}

// runDiskNvram implements "gridlord disk nvram IMG [-authid u -authdom d -password-stdin]".
func runDiskNvram(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "disk nvram", "[-authid USER] [-authdom DOMAIN] [-password-stdin] [-layout 9front|labs] IMG\n"+
		"Prints or writes the nvram record (host owner, auth domain, machine key)\n"+
		"of a Plan 9 disk image: the nvram partition, else plan9.nvr in 9fat.")
	authid := fs.String("authid", "", "host owner (authid), e.g. bootes")
	authdom := fs.String("authdom", "", "authentication domain, e.g. grid")
	pwStdin := fs.Bool("password-stdin", false, "read the host owner's password from the first line of stdin and set the machine key(s)")
	layout := fs.String("layout", "", "record layout to write: 9front (DES+AES keys, read by 4e too) or labs (4e/9legacy); default: keep the existing one, else 9front")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want exactly one image", errUsage)
	}
	writing := *authid != "" || *authdom != "" || *pwStdin || *layout != ""
	im, closeDisk, err := plan9disk.OpenImage(fs.Arg(0), writing)
	if err != nil {
		return err
	}
	old, where, rerr := im.ReadNvram()
	if !writing {
		defer closeDisk()
		if rerr != nil {
			return rerr
		}
		fmt.Fprintf(env.stdout, "location\t%s\nlayout\t%s\nauthid\t%s\nauthdom\t%s\ndes key\t%s\naes key\t%s\n",
			where, old.Layout, old.AuthID, old.AuthDom, keyState(old.MachKey[:]), keyState(old.AESMachKey[:]))
		return nil
	}
	err = writeNvram(env, im, old, rerr, *authid, *authdom, *pwStdin, *layout)
	return errors.Join(err, closeDisk())
}

func writeNvram(env *cmdEnv, im *plan9disk.Image, old *nvram.Record, rerr error, authid, authdom string, pwStdin bool, layout string) error {
	r := &nvram.Record{Layout: nvram.NineFront}
	if rerr == nil {
		r = old
	} else if !pwStdin || authid == "" || authdom == "" {
		return fmt.Errorf("the image has no valid nvram record (%v): give -authid, -authdom and -password-stdin to write a new one", rerr)
	}
	switch layout {
	case "":
	case "9front":
		r.Layout = nvram.NineFront
	case "labs":
		r.Layout = nvram.Labs
	default:
		return fmt.Errorf("%w: -layout must be 9front or labs", errUsage)
	}
	if authid != "" {
		r.AuthID = authid
	}
	if authdom != "" {
		r.AuthDom = authdom
	}
	if pwStdin {
		line, err := bufio.NewReader(env.stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return errors.New("empty password on stdin")
		}
		if err := r.SetPassword(pw); err != nil {
			return err
		}
	} else if r.Layout == nvram.NineFront && keyState(r.AESMachKey[:]) == "unset" {
		return errors.New("the 9front layout needs the AES key: give -password-stdin")
	}
	where, err := im.WriteNvram(r)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "wrote %s nvram record for %s@%s to %s\n", r.Layout, r.AuthID, r.AuthDom, where)
	return nil
}

func keyState(k []byte) string {
	for _, c := range k {
		if c != 0 {
			return "set"
		}
	}
	return "unset"
}

// iniKeyList collects a repeatable string flag.
type iniKeyList []string

func (m *iniKeyList) String() string     { return strings.Join(*m, ",") }
func (m *iniKeyList) Set(v string) error { *m = append(*m, v); return nil }
