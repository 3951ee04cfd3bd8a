package seedbuild

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/ninep"
	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/ini"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/qcow2"
)

// Files the 4e/9legacy recipe serves beside the distribution (under
// dist/replica, which every distribution has).
const (
	extraDir      = "dist/replica/gridlord"
	copyLog       = extraDir + "/copy.log"    // the profile's part of plan9.log
	replicaConfig = extraDir + "/replica"     // replica/pull's configuration
	ventiInstall  = extraDir + "/venti.conf"  // venti's config during the install
	ventiBoot     = extraDir + "/venti.boot"  // venti's config block (sdC0)
	fossilInstall = extraDir + "/fossil.conf" // fossil's commands during the install
	fossilBoot    = extraDir + "/fossil.boot" // fossil's config block (sdC0)
	newfs         = "/n/newfs"                // where the new fossil is mounted
)

// emptyVac is what fossil/last prints before the first archive.
const emptyVac = "vac:da39a3ee5e6b4b0d3255bfef95601890afd80709"

// Legacy4e is the recipe for Plan 9 4th edition and 9legacy: fossil on
// venti, installed by the distribution's own programs at the console of
// its cpu kernel (9pccpuf), whose root is the distribution served by the
// engine; then plan9.ini, nvram and the fossil listener written offline;
// then a first boot of the new disk as a cpu+auth server that makes the
// identity's keyfs entry and /cfg/SYSNAME/cpurc.
func Legacy4e() Recipe {
	return Recipe{
		Name: "9legacy",
		Check: func(d *Distribution) error {
			if d.Kernel != "386/9pccpuf" {
				return fmt.Errorf("the 9legacy recipe needs 386/9pccpuf (a cpu kernel with fossil and venti) to boot the new disk; the distribution has only %s", d.Kernel)
			}
			return nil
		},
		Steps: []Step{
			{"boot installer", bootInstaller},
			{"venti", formatVenti},
			{"fossil", formatFossil},
			{"users", addUsers},
			{"copy", copyTree},
			{"archive", archive},
			{"9fat", format9fat},
			{"halt", func(_ context.Context, b *Build) error { return b.StopVM() }},
			{"configure", configure},
			{"first boot", firstBoot},
		},
	}
}

// copyEntries is the log of what the copy installs: the profile's final
// entries, as additions, without the replica directory (the client's
// database lives there) and /adm/users (fossil writes it: copying it
// fails, "user 'adm' is mandatory").
func copyEntries(d *Distribution, p Profile) []LogEntry {
	var out []LogEntry
	for _, e := range p.Filter(Final(d.Log)) {
		if e.Path == "dist" || strings.HasPrefix(e.Path, "dist/") || e.Path == "adm/users" {
			continue
		}
		e.Verb = 'a'
		out = append(out, e)
	}
	return out
}

// extras are the files the recipe serves beside the distribution.
func extras(d *Distribution, p Profile) (map[string]ninep.Extra, error) {
	var logBuf bytes.Buffer
	if err := WriteLog(&logBuf, copyEntries(d, p)); err != nil {
		return nil, err
	}
	venti := func(disk string) []byte {
		return []byte(fmt.Sprintf("index main\nisect /dev/%s/isect\narenas /dev/%s/arenas\n", disk, disk))
	}
	x := map[string]ninep.Extra{
		extraDir: {Dir: true},
		copyLog:  {Data: logBuf.Bytes()},
		// replica/pull wants its configuration executable.
		replicaConfig: {Mode: 0o775, Data: []byte(strings.Join([]string{
			"#!/bin/rc",
			"serverroot=/",
			"serverlog=/" + copyLog,
			"serverproto=/dev/null",
			"clientroot=" + newfs,
			"clientproto=/dev/null",
			"clientdb=" + newfs + "/dist/replica/client/plan9.db",
			"clientlog=" + newfs + "/dist/replica/client/plan9.log",
			"clientexclude=(dist/replica/client)",
			// -u: the owners too, not only the groups.
			"applyopt=(-u)",
			"",
		}, "\n"))},
		ventiInstall: {Data: venti("sdC1")},
		ventiBoot:    {Data: venti("sdC0")},
		fossilInstall: {Data: []byte(strings.Join([]string{
			"fsys main config /dev/sdC1/fossil",
			"fsys main open -AWP",
			"srv -p fscons",
			"srv -APW fossil",
			"",
		}, "\n"))},
		fossilBoot: {Data: []byte(strings.Join([]string{
			"fsys main config /dev/sdC0/fossil",
			"fsys main open -c 3000",
			"fsys main snaptime -s 60 -a 0500 -t 2880",
			"",
		}, "\n"))},
	}
	if fi, err := fs.Stat(d.FS, strings.TrimPrefix(newfs, "/")); err != nil || !fi.IsDir() {
		x[strings.TrimPrefix(newfs, "/")] = ninep.Extra{Dir: true}
	}
	return x, nil
}

func bootInstaller(ctx context.Context, b *Build) error {
	x, err := extras(b.Dist, b.Opts.Profile)
	if err != nil {
		return err
	}
	in, err := StartInstaller(ctx, b.Dist, InstallerOptions{
		Dir: b.Dir, Target: b.Target, TargetSize: b.Opts.Size, Accel: b.Opts.Accel, Log: b.Log, Extra: x,
	})
	if err != nil {
		return err
	}
	b.SetVM(in)
	// A writable /tmp: the served root's is not.
	_, err = b.Run(ctx, "ramfs -m /tmp", time.Minute)
	return err
}

// startServer types lines, the last of which starts a server in the
// background logging to /tmp/NAME.log, and waits until the rc condition
// ready holds; if it never does, the error holds the server's log.
func startServer(ctx context.Context, b *Build, name, ready string, lines ...string) error {
	for _, l := range lines {
		if _, err := b.Run(ctx, l, b.Opts.StepTimeout); err != nil {
			return err
		}
	}
	if err := b.WaitFor(ctx, ready, 300); err != nil {
		out, _ := b.Run(ctx, "cat /tmp/"+name+".log", time.Minute)
		return fmt.Errorf("%s did not start (%s): %w\n%s's log:\n%s", name, ready, err, name, out)
	}
	return nil
}

func formatVenti(ctx context.Context, b *Build) error {
	return startServer(ctx, b, "venti", "grep -s '!17034' /net/tcp/*/local",
		"venti/fmtarenas arenas /dev/sdC1/arenas",
		"venti/fmtisect isect /dev/sdC1/isect",
		"venti/fmtindex /"+ventiInstall,
		"venti/conf -w /dev/sdC1/arenas /"+ventiBoot,
		"venti/venti -c /"+ventiInstall+" -a 'tcp!127.1!17034' -h 'tcp!127.1!8000' >/tmp/venti.log >[2=1] &")
}

func formatFossil(ctx context.Context, b *Build) error {
	if err := startServer(ctx, b, "fossil", "test -e /srv/fossil",
		"fossil/flfmt -y /dev/sdC1/fossil",
		"fossil/conf -w /dev/sdC1/fossil /"+fossilBoot,
		"venti='tcp!127.1!17034' fossil/fossil -c '. /"+fossilInstall+"' >/tmp/fossil.log >[2=1] &"); err != nil {
		return err
	}
	_, err := b.Run(ctx, "mount -c /srv/fossil "+newfs, time.Minute)
	return err
}

// fscons types a command at the installing fossil's console.
func fscons(ctx context.Context, b *Build, cmd string) error {
	if strings.Contains(cmd, "'") {
		return fmt.Errorf("fossil command %q holds a quote", cmd)
	}
	_, err := b.Run(ctx, "echo '"+cmd+"' >>/srv/fscons", time.Minute)
	return err
}

// usersCommands returns the fossil console commands that add the users
// and groups of a Plan 9 users file (id:name:leader:members), and user
// as a member of adm and sys, then write /adm/users.
func usersCommands(users []byte, user string) ([]string, error) {
	var adds, groups []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(users))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 4 || !identName.MatchString(f[0]) || f[0] != f[1] {
			return nil, fmt.Errorf("adm/users line %d %q: want NAME:NAME:LEADER:MEMBERS", n, line)
		}
		seen[f[1]] = true
		adds = append(adds, "uname "+f[1]+" :"+f[1])
		if f[2] != "" {
			groups = append(groups, "uname "+f[1]+" ="+f[2])
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == "" {
				continue
			}
			if !identName.MatchString(m) {
				return nil, fmt.Errorf("adm/users line %d: member %q", n, m)
			}
			groups = append(groups, "uname "+f[1]+" +"+m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !seen["adm"] || !seen["sys"] {
		return nil, fmt.Errorf("adm/users has no adm or sys group")
	}
	if !seen[user] {
		adds = append(adds, "uname "+user+" :"+user)
		groups = append(groups, "uname adm +"+user, "uname sys +"+user)
	}
	return append(append(adds, groups...), "users -w"), nil
}

func addUsers(ctx context.Context, b *Build) error {
	users, err := fs.ReadFile(b.Dist.FS, "adm/users")
	if err != nil {
		return fmt.Errorf("the distribution's users: %w", err)
	}
	cmds, err := usersCommands(users, b.Opts.Identity.User)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if err := fscons(ctx, b, c); err != nil {
			return err
		}
	}
	u := b.Opts.Identity.User
	if err := b.WaitFor(ctx, "grep -s '^"+u+":' "+newfs+"/adm/users", 60); err != nil {
		out, _ := b.Run(ctx, "cat "+newfs+"/adm/users /tmp/fossil.log", time.Minute)
		return fmt.Errorf("fossil's /adm/users lacks %s: %w\n%s", u, err, out)
	}
	return nil
}

// copyTree installs the profile's files with replica/pull, counting the
// bytes of the files it names on the console as it goes.
func copyTree(ctx context.Context, b *Build) error {
	entries := copyEntries(b.Dist, b.Opts.Profile)
	sizes := map[string]int64{}
	var total int64
	for _, e := range entries {
		if !e.IsDir() {
			sizes[e.Path] = e.Length
			total += e.Length
		}
	}
	b.Result.Files, b.Result.Bytes = len(entries), total
	b.Copied(0, total)
	if _, err := b.Run(ctx, "mkdir -p "+newfs+"/dist/replica/client && touch "+newfs+"/dist/replica/client/plan9.db", time.Minute); err != nil {
		return err
	}
	b.mu.Lock()
	hub := b.vm.Console
	b.mu.Unlock()
	stop := countCopied(hub, sizes, total, b)
	out, err := b.Run(ctx, "replica/pull -v /"+replicaConfig, b.Opts.StepTimeout)
	stop()
	if err != nil {
		return err
	}
	b.Log.Debug("replica/pull", "output", out)
	// Spot checks: the shell and the copied owners.
	ls, err := b.Run(ctx, "ls -l "+newfs+"/386/bin/rc "+newfs+"/adm/keys", time.Minute)
	if err != nil {
		return err
	}
	if !regexp.MustCompile(`(?m)sys +sys .*/386/bin/rc`).MatchString(ls) || !regexp.MustCompile(`(?m)adm +adm .*/adm/keys`).MatchString(ls) {
		return fmt.Errorf("the copy lost the files' owners:\n%s", ls)
	}
	return nil
}

// countCopied follows the console while replica/pull runs and reports the
// size of every file of sizes a line names, once; stop ends it.
func countCopied(h *console.Hub, sizes map[string]int64, total int64, b *Build) (stop func()) {
	r := h.Subscribe(false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		counted := map[string]bool{}
		var line []byte
		buf := make([]byte, 4096)
		for {
			n, err := r.ReadContext(context.Background(), buf)
			if err != nil {
				return
			}
			for _, c := range buf[:n] {
				if c != '\n' {
					line = append(line, c)
					continue
				}
				for _, w := range strings.Fields(string(line)) {
					p := strings.TrimPrefix(w, "/")
					if sz, ok := sizes[p]; ok && !counted[p] {
						counted[p] = true
						b.Copied(sz, total)
					}
				}
				line = line[:0]
			}
		}
	}()
	return func() { r.Close(); <-done }
}

// lastArchive returns fossil/last's score for the fossil partition.
func lastArchive(ctx context.Context, b *Build, part string) (string, error) {
	out, err := b.Run(ctx, "fossil/last "+part, time.Minute)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`vac:[0-9a-f]{40}`).FindString(out)
	if m == "" {
		return "", fmt.Errorf("fossil/last printed no score: %q", out)
	}
	return m, nil
}

// snapArchive makes an archival snapshot and waits until fossil/last
// shows one other than before.
func snapArchive(ctx context.Context, b *Build, part, before string) (string, error) {
	if err := fscons(ctx, b, "fsys main snap -a"); err != nil {
		return "", err
	}
	deadline := time.Now().Add(b.Opts.StepTimeout)
	for time.Now().Before(deadline) {
		s, err := lastArchive(ctx, b, part)
		if err != nil {
			return "", err
		}
		if s != before && s != emptyVac {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(3 * time.Second):
		}
	}
	return "", fmt.Errorf("no new archive in %s after %v", part, b.Opts.StepTimeout)
}

// syncVenti flushes venti's writes and its index cache (so that it does
// not re-index the arena at every boot).
func syncVenti(ctx context.Context, b *Build) error {
	if _, err := b.Run(ctx, "venti/sync -h 'tcp!127.1!17034'", b.Opts.StepTimeout); err != nil {
		return err
	}
	_, err := b.Run(ctx, "hget http://127.1:8000/flushicache >/dev/null", b.Opts.StepTimeout)
	return err
}

func archive(ctx context.Context, b *Build) error {
	s, err := snapArchive(ctx, b, "/dev/sdC1/fossil", emptyVac)
	if err != nil {
		return err
	}
	b.Result.Archive = s
	if err := syncVenti(ctx, b); err != nil {
		return err
	}
	// Unmount first: a halted fossil never answers the unmount's clunks.
	if _, err := b.Run(ctx, "unmount "+newfs, time.Minute); err != nil {
		return err
	}
	return fscons(ctx, b, "fsys all halt")
}

// kernels are the distribution's kernels that go in the 9fat (those it
// has), after 9load.
func kernels(d *Distribution) []string {
	var out []string
	for _, k := range []string{"386/9pccpuf", "386/9pccpu", "386/9pcf"} {
		if fi, err := fs.Stat(d.FS, k); err == nil && !fi.IsDir() {
			out = append(out, "/"+k)
		}
	}
	return out
}

func format9fat(ctx context.Context, b *Build) error {
	_, err := b.Run(ctx, "disk/format -r 2 -d -b /386/pbslba /dev/sdC1/9fat /386/9load "+strings.Join(kernels(b.Dist), " "), b.Opts.StepTimeout)
	return err
}

// SeedIni returns the plan9.ini of a seed disk booting kernel (a base
// name such as "9pccpuf") with its own fossil and venti.
func SeedIni(kernel, sysname string) string {
	return iniText("bootfile=sdC0!9fat!"+kernel, "bootargs=local!#S/sdC0/fossil", "nobootprompt=local!#S/sdC0/fossil", "venti=#S/sdC0/arenas", "sysname="+sysname)
}

// configure writes plan9.ini, the nvram identity and fossil's listener
// into the halted target disk.
func configure(_ context.Context, b *Build) error {
	im, err := qcow2.Open(b.Target)
	if err != nil {
		return err
	}
	werr := func() error {
		p9, err := plan9disk.Open(im)
		if err != nil {
			return err
		}
		f, err := ini.Parse([]byte(SeedIni(path.Base(b.Dist.Kernel), b.Opts.Sysname)))
		if err != nil {
			return err
		}
		if err := p9.WritePlan9Ini(f); err != nil {
			return fmt.Errorf("plan9.ini: %w", err)
		}
		id := b.Opts.Identity
		rec := &nvram.Record{Layout: nvram.Labs, AuthID: id.User, AuthDom: id.AuthDom}
		if err := rec.SetPassword(id.Password); err != nil {
			return err
		}
		if _, err := p9.WriteNvram(rec); err != nil {
			return fmt.Errorf("nvram: %w", err)
		}
		conf, err := p9.ReadConfig(plan9disk.FossilConfig())
		if err != nil {
			return fmt.Errorf("fossil config block (written by fossil/conf): %w", err)
		}
		if !strings.Contains(conf, "fsys main config /dev/sdC0/fossil") {
			return fmt.Errorf("fossil config block is %q, not the one fossil/conf was given", conf)
		}
		if !strings.Contains(conf, "listen tcp!*!564") {
			conf = strings.TrimRight(conf, "\n") + "\nlisten tcp!*!564\n"
		}
		if err := p9.WriteConfig(plan9disk.FossilConfig(), conf); err != nil {
			return fmt.Errorf("fossil config block: %w", err)
		}
		return im.Sync()
	}()
	if err := im.Close(); werr == nil {
		werr = err
	}
	return werr
}

// firstBoot boots the new disk alone as a cpu+auth server, writes its
// cpurc (keyfs, authsrv on 567), makes the identity's keyfs entry, lets
// its host owner speak for users, archives and halts it.
func firstBoot(ctx context.Context, b *Build) error {
	sys, id := b.Opts.Sysname, b.Opts.Identity
	dir := filepath.Join(b.Dir, "first")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	in, err := startVM(ctx, vmOptions{
		dir: dir, sysname: sys, bootTimeout: b.Opts.StepTimeout, accel: b.Opts.Accel, log: b.Log,
		target: b.Target, what: b.Dist.Kernel,
	})
	if err != nil {
		return err
	}
	rc := b.SetVM(in)
	t := time.Minute
	cpurc := "/cfg/" + sys + "/cpurc"
	for _, l := range []string{
		"mkdir -p /cfg/" + sys,
		"echo 'auth/keyfs -m /mnt/keys /adm/keys >/dev/null >[2=1]' >" + cpurc,
		"echo 'aux/listen1 -t tcp!*!567 /bin/auth/authsrv &' >>" + cpurc,
		// A fresh key file: the distribution's, if it holds keys, is
		// encrypted with another machine key.
		"cat /dev/null >/adm/keys",
		"grep -s '^hostid=" + id.User + "' /lib/ndb/auth || {echo 'hostid=" + id.User + "'; echo '    uid=!sys uid=!adm uid=*'} >>/lib/ndb/auth",
		"auth/keyfs -m /mnt/keys /adm/keys",
	} {
		if _, err := b.Run(ctx, l, t); err != nil {
			return err
		}
	}
	res, err := rc.Dialog(ctx, "auth/changeuser "+id.User, console.ChangeuserAnswers(id.Password), 5*time.Minute)
	if err != nil {
		return err
	}
	if !res.OK() || !strings.Contains(res.Output, "user "+id.User+" installed for Plan 9") {
		return fmt.Errorf("auth/changeuser %s: status %q:\n%s", id.User, res.Status, res.Output)
	}
	if _, err := b.Run(ctx, "ls /mnt/keys/"+id.User, t); err != nil {
		return fmt.Errorf("keyfs has no entry for %s: %w", id.User, err)
	}
	before, err := lastArchive(ctx, b, "/dev/sdC0/fossil")
	if err != nil {
		return err
	}
	if b.Result.Archive, err = snapArchive(ctx, b, "/dev/sdC0/fossil", before); err != nil {
		return err
	}
	if err := syncVenti(ctx, b); err != nil {
		return err
	}
	// fshalt halts fossil: the shell's markers may not print after it.
	ex := console.NewExpecter(in.Console, false)
	defer ex.Close()
	if err := ex.SendLine("fshalt"); err != nil {
		return err
	}
	if _, err := ex.Expect(ctx, regexp.MustCompile(`done halting`), 5*time.Minute); err != nil {
		return fmt.Errorf("fshalt: %w", err)
	}
	return b.StopVM()
}
