package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gridlord/engine/atomicfile"
	"gridlord/engine/console"
	"gridlord/engine/drawterm"
	"gridlord/engine/grid"
	"gridlord/engine/network"
	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/qcow2"
)

// Passwords of the grid's users. The engine needs them to log in to nodes
// (drawterm, exec) and to write nvram keys; the model does not hold them.
// A grid made from a seed starts with the seed's own accounts (its catalog
// record lists them, images.Seed.Users: visible defaults); every password
// set since (reset identity) is kept in GRIDDIR/passwords.json (grid.PasswordsName),
// readable by the grid's owner only.

// loadPasswords reads the grid's password file (none yet is no error).
func loadPasswords(dir string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, grid.PasswordsName))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("grid passwords: %w", err)
	}
	pw := map[string]string{}
	if err := json.Unmarshal(b, &pw); err != nil {
		return nil, fmt.Errorf("grid passwords %s: %w (fix or remove the file; the seeds' default passwords apply without it)", filepath.Join(dir, grid.PasswordsName), err)
	}
	return pw, nil
}

// setPasswordLocked records user@dom's password and saves the file; e.mu
// must be held.
func (e *Engine) setPasswordLocked(user, dom, password string) error {
	next := make(map[string]string, len(e.passwords)+1)
	for k, v := range e.passwords {
		next[k] = v
	}
	next[user+"@"+dom] = password
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(e.dir, grid.PasswordsName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the grid's passwords: %w", err)
	}
	e.passwords = next
	return nil
}

// passwordLocked returns the known password of node n's host owner: the
// one set for the grid, else its seed's default; "" when unknown. e.mu
// must be held.
func (e *Engine) passwordLocked(user, dom string, n *grid.Node) string {
	if p, ok := e.passwords[user+"@"+dom]; ok {
		return p
	}
	if seed, err := e.g.Seed(n.Seed); err == nil {
		return seed.Password(user, dom)
	}
	return ""
}

// DefaultPasswords lists the nodes whose host owner still has its seed's
// well-known default password ("fossil1: bootes@grid"), for warnings: such
// a grid must not be opened beyond this machine.
func (e *Engine) DefaultPasswords() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, n := range e.g.Nodes {
		if e.defaultPasswordLocked(n) {
			out = append(out, fmt.Sprintf("%s: %s@%s", n.Name, n.User, n.AuthDom))
		}
	}
	return out
}

// defaultPasswordLocked reports whether n's host owner still has its seed's
// well-known password (none was set for the grid); e.mu must be held.
func (e *Engine) defaultPasswordLocked(n *grid.Node) bool {
	if !n.HasVM() {
		return false
	}
	if _, set := e.passwords[n.User+"@"+n.AuthDom]; set {
		return false
	}
	seed, err := e.g.Seed(n.Seed)
	return err == nil && seed.Password(n.User, n.AuthDom) != ""
}

// DrawtermTarget returns how drawterm reaches the running node name as its
// host owner: the loopback forwards of its cpu port (17010, or rcpu 17019
// on 9front) and of its auth server's ticket (567) and secstore (5356)
// ports, the protocol, the user and, when known, the password. The CLI's
// drawterm and exec and the window's drawterm all use it.
func (e *Engine) DrawtermTarget(name string) (drawterm.Target, error) {
	e.mu.Lock()
	n := e.g.Node(name)
	if n == nil {
		e.mu.Unlock()
		return drawterm.Target{}, fmt.Errorf("no node %s in the grid (nodes: %s)", name, strings.Join(e.namesLocked(), ", "))
	}
	if !n.HasVM() {
		e.mu.Unlock()
		return drawterm.Target{}, fmt.Errorf("%s is the embedded venti: drawterm connects to cpu servers", name)
	}
	seed, err := e.g.Seed(n.Seed)
	if err != nil {
		e.mu.Unlock()
		return drawterm.Target{}, err
	}
	auth := e.g.AuthServer(n)
	if auth == nil && n.Kind.ServesAuth() {
		auth = n
	}
	t := drawterm.Target{Proto: drawterm.NCPU, User: n.User, AuthDom: n.AuthDom}
	if seed.Family == "9front" {
		t.Proto = drawterm.RCPU
	}
	t.Password = e.passwordLocked(n.User, n.AuthDom, n)
	authName := ""
	if auth != nil {
		authName = auth.Name
	}
	e.mu.Unlock()
	if t.CPU, err = e.forwardOf(name, t.Proto.Port()); err != nil {
		return t, err
	}
	if authName == "" {
		return t, fmt.Errorf("node %s has no auth server: wire it to an auth or fossil+auth node", name)
	}
	if t.Auth, err = e.forwardOf(authName, grid.AuthPort); err != nil {
		return t, fmt.Errorf("the auth server of %s: %w", name, err)
	}
	if t.Secstore, err = e.forwardOf(authName, grid.SecstorePort); err != nil {
		return t, fmt.Errorf("the auth server of %s: %w", name, err)
	}
	return t, nil
}

// forwardOf returns the loopback address forwarded to a running node's
// guest port.
func (e *Engine) forwardOf(name string, port int) (string, error) {
	r, _, err := e.ref(name)
	if err != nil {
		return "", err
	}
	if e.vmNode(r.id) == nil {
		return "", fmt.Errorf("node %s is not running: start it first", name)
	}
	sw := e.sw.get()
	if sw == nil {
		return "", fmt.Errorf("node %s: the grid network is not running", name)
	}
	for _, f := range sw.Forwards(r.id.String()) {
		if f.GuestPort == port {
			return f.Host, nil
		}
	}
	return "", fmt.Errorf("node %s: no forward of its port %d (standard ports: %v)", name, port, network.StandardPorts())
}

// NodeDrawterm is the text of /nodes/NAME/drawterm (see DrawtermTarget).
func (e *Engine) NodeDrawterm(name string) ([]byte, error) {
	t, err := e.DrawtermTarget(name)
	if err != nil {
		return nil, err
	}
	return t.Marshal(), nil
}

// IdentityChange is a new host owner identity for nodes (ResetIdentity).
type IdentityChange struct {
	User, AuthDom, Password string
	// Keyfs also changes User's entry in the keyfs of each auth server
	// among Nodes (auth/changeuser typed at its console) and re-encrypts its
	// key file for the new machine key (auth/convkeys), so that tickets are
	// made with the new password too: without it a node's nvram disagrees
	// with the auth server, and logins fail.
	Keyfs bool
	// Nodes are the nodes to change; none means every VM node.
	Nodes []string
}

// parseIdentity reads the words of an /identity "set" command.
func parseIdentity(words []string) (IdentityChange, error) {
	var id IdentityChange
	if len(words) == 0 || words[0] != "set" {
		return id, fmt.Errorf("identity: want %q", "set user=USER authdom=DOM password=PASSWORD [keyfs=yes] [NODE...]")
	}
	for _, w := range words[1:] {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			id.Nodes = append(id.Nodes, w)
			continue
		}
		switch k {
		case "user":
			id.User = v
		case "authdom":
			id.AuthDom = v
		case "password":
			id.Password = v
		case "keyfs":
			id.Keyfs = v == "yes" || v == "true" || v == "1"
		default:
			return id, fmt.Errorf("identity: unknown setting %q (user, authdom, password, keyfs)", k)
		}
	}
	if id.User == "" || id.AuthDom == "" {
		return id, errors.New("identity: give both user= and authdom=")
	}
	return id, grid.CheckPassword(id.User, id.Password)
}

// Identity implements gridfs.Engine (/identity).
func (e *Engine) Identity(ctx context.Context, words []string) error {
	if len(words) == 5 && words[0] == "invite" {
		pw, ok := strings.CutPrefix(words[4], "password=")
		if !ok {
			return fmt.Errorf("identity: want %q", "invite USER SNAPSHOT NEWNAME password=PASSWORD")
		}
		return e.run(ctx, func(c context.Context) error { return e.Invite(c, words[1], words[2], words[3], pw) })
	}
	if len(words) > 0 && words[0] == "seed" {
		opts, err := ParseSeedBuild(words)
		if err != nil {
			return err
		}
		return e.run(ctx, func(c context.Context) error { _, err := e.BuildSeed(c, opts); return err })
	}
	id, err := parseIdentity(words)
	if err != nil {
		return err
	}
	return e.run(ctx, func(c context.Context) error { return e.ResetIdentity(c, id) })
}

// ResetIdentity gives nodes a new host owner, auth domain and password: with
// Keyfs, first the keyfs their logins are checked against (an auth
// server's own, a cpu's auth server's) and the user tables of the file
// servers they attach to (a fossil's own, a cpu's root), which are started
// if stopped; then the nodes are stopped and each one's nvram gets the
// new identity and machine key (its disk is made first if it has none);
// the model and the grid's passwords record it. The nodes stay stopped:
// the next start boots them with it.
func (e *Engine) ResetIdentity(ctx context.Context, id IdentityChange) error {
	if err := grid.CheckPassword(id.User, id.Password); err != nil {
		return err
	}
	e.mu.Lock()
	names := id.Nodes
	if len(names) == 0 {
		for _, n := range e.g.Nodes {
			if n.HasVM() {
				names = append(names, n.Name)
			}
		}
	}
	var auths []string
	reset := make(map[string]bool)
	for _, name := range names {
		reset[name] = true
	}
	for _, name := range names {
		n := e.g.Node(name)
		if n == nil {
			e.mu.Unlock()
			return fmt.Errorf("reset identity: no node %s in the grid (nodes: %s)", name, strings.Join(e.namesLocked(), ", "))
		}
		if !n.HasVM() {
			e.mu.Unlock()
			return fmt.Errorf("reset identity: %s is the embedded venti: it has no nvram", name)
		}
		// The keyfs to change is the one the node's logins are checked
		// against: its own if it serves auth, else its auth server's.
		a := n
		if !n.Kind.ServesAuth() {
			a = e.g.AuthServer(n)
		}
		if !id.Keyfs || a == nil || slices.Contains(auths, a.Name) {
			continue
		}
		if !reset[a.Name] && a.User == id.User {
			e.mu.Unlock()
			return fmt.Errorf("reset identity: %s's password in the keyfs of %s is also the key in %s's own nvram, which this reset does not write: reset %s too (or the whole grid), or choose another user than %s", id.User, a.Name, a.Name, a.Name, id.User)
		}
		auths = append(auths, a.Name)
	}
	// The file servers the nodes attach to as their host owner: a fossil's
	// own, a cpu's root.
	var fossils []string
	for _, name := range names {
		f := e.g.Node(name)
		if !f.Kind.IsFossil() {
			f = e.g.Target(f, grid.LinkRoot)
		}
		if id.Keyfs && f != nil && !slices.Contains(fossils, f.Name) {
			fossils = append(fossils, f.Name)
		}
	}
	e.mu.Unlock()
	if id.Keyfs {
		for _, a := range auths {
			if err := e.Start(ctx, a); err != nil {
				return fmt.Errorf("reset identity: start auth server %s to change its keyfs: %w", a, err)
			}
			if err := e.changeKeyfs(ctx, a, id, reset[a]); err != nil {
				return err
			}
		}
		for _, f := range fossils {
			if err := e.Start(ctx, f); err != nil {
				return fmt.Errorf("reset identity: start file server %s to add user %s: %w", f, id.User, err)
			}
			_, vn, unlock, err := e.lockRunning(f)
			if err != nil {
				return fmt.Errorf("reset identity: file server: %w", err)
			}
			err = addFossilUser(ctx, vn, id.User)
			unlock()
			if err != nil {
				return fmt.Errorf("reset identity: on %s: %w", f, err)
			}
		}
	}
	if err := e.Stop(ctx, false, names...); err != nil {
		return fmt.Errorf("reset identity: stop the nodes to write their nvram: %w", err)
	}
	for _, name := range names {
		if err := e.writeIdentity(ctx, name, id); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.setPasswordLocked(id.User, id.AuthDom, id.Password)
}

// writeIdentity writes id into stopped node name's nvram and model.
func (e *Engine) writeIdentity(ctx context.Context, name string, id IdentityChange) error {
	r, st, err := e.ref(name)
	if err != nil {
		return err
	}
	st.op.Lock()
	defer st.op.Unlock()
	if e.vmNode(r.id) != nil {
		return fmt.Errorf("reset identity: node %s is running again: stop it and retry", name)
	}
	e.mu.Lock()
	err = e.g.SetIdentity(name, id.User, id.AuthDom)
	if err == nil {
		err = e.saveLocked()
	}
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("reset identity: %w", err)
	}
	if err := e.prepareDisk(ctx, r.id, false); err != nil {
		return fmt.Errorf("reset identity of %s: %w", name, err)
	}
	disk, err := e.diskPath(r.id)
	if err != nil {
		return err
	}
	if err := writeNvramKey(disk, id.User, id.AuthDom, id.Password); err != nil {
		return fmt.Errorf("reset identity of %s: %w", name, err)
	}
	e.log.Info("wrote a new identity into the node's nvram", "node", name, "user", id.User, "authdom", id.AuthDom)
	return nil
}

// writeNvramKey writes user@dom and the machine key(s) of password into
// the nvram record of the disk at path, keeping its layout.
func writeNvramKey(path, user, dom, password string) error {
	im, err := qcow2.Open(path)
	if err != nil {
		return fmt.Errorf("open disk: %w", err)
	}
	werr := func() error {
		p9, err := plan9disk.Open(im)
		if err != nil {
			return fmt.Errorf("not a Plan 9 disk: %w", err)
		}
		rec := &nvram.Record{Layout: nvram.NineFront}
		if old, _, err := p9.ReadNvram(); err == nil {
			rec = old
		}
		rec.AuthID, rec.AuthDom = user, dom
		rec.MachKey = nvram.PassToDESKey(password)
		if rec.Layout == nvram.NineFront {
			if rec.AESMachKey, err = nvram.PassToAESKey(password); err != nil {
				return err
			}
		}
		if _, err := p9.WriteNvram(rec); err != nil {
			return fmt.Errorf("nvram: %w", err)
		}
		return nil
	}()
	if err := im.Close(); werr == nil {
		werr = err
	}
	return werr
}

// changeKeyfs types auth/changeuser for id.User at running auth server
// name's console, answering its questions; with reencode (the auth server
// is reset too) then auth/convkeys, so its key file is encrypted with the
// key of the new password, which its nvram gets next. It checks that both
// ended well. Without reencode the key file stays encrypted with the
// server's own unchanged key.
func (e *Engine) changeKeyfs(ctx context.Context, name string, id IdentityChange, reencode bool) error {
	_, vn, unlock, err := e.lockRunning(name)
	if err != nil {
		return fmt.Errorf("reset identity: auth server: %w", err)
	}
	defer unlock()
	ex := console.NewExpecter(vn.Console(), false)
	defer ex.Close()
	fail := func(what string, err error) error {
		return fmt.Errorf("reset identity: %s on %s: %w; console tail:\n%s", what, name, err, strings.Join(vn.Console().LastLines(15), "\n"))
	}
	dialog := func(command string, done *regexp.Regexp) error {
		return consoleDialog(ctx, ex, command, done, console.ChangeuserAnswers(id.Password))
	}
	e.log.Info("changing the keyfs entry on the auth server", "node", name, "user", id.User)
	if err := dialog("auth/changeuser "+id.User, regexp.MustCompile(`user \S+ installed for Plan 9`)); err != nil {
		return fail("auth/changeuser "+id.User, err)
	}
	if !reencode {
		return nil
	}
	if err := dialog("auth/convkeys /adm/keys", regexp.MustCompile(`enter password to reencode with`)); err != nil {
		return fail("auth/convkeys", err)
	}
	// Now its two password questions, then its status.
	for _, q := range []string{`Password: $`, `Confirm password: $`} {
		if _, err := ex.Expect(ctx, regexp.MustCompile(q), 60*time.Second); err != nil {
			return fail("auth/convkeys", err)
		}
		if err := ex.SendLine(id.Password); err != nil {
			return fail("auth/convkeys", err)
		}
	}
	if _, err := ex.Expect(ctx, plan9Prompt, 60*time.Second); err != nil {
		return fail("auth/convkeys", err)
	}
	if err := ex.SendLine("echo GRIDLORD-STATUS $status | tr A-Z a-z"); err != nil {
		return fail("auth/convkeys", err)
	}
	m, err := ex.Expect(ctx, regexp.MustCompile(`gridlord-status ?([^\r\n]*)\r?\n`), 30*time.Second)
	if err != nil {
		return fail("auth/convkeys", err)
	}
	if s := strings.TrimSpace(m[1]); s != "" {
		return fail("auth/convkeys", fmt.Errorf("status %q", s))
	}
	return nil
}

// consoleDialog types command at a Plan 9 console (ex) and answers its
// questions (prompts) until done matches; a line of auth/changeuser,
// convkeys or keyfs complaining is the error.
func consoleDialog(ctx context.Context, ex *console.Expecter, command string, done *regexp.Regexp, prompts []console.Answer) error {
	if err := ex.SendLine(command); err != nil {
		return err
	}
	for i := 0; i < 32; i++ {
		alts := []string{done.String(), `(?m)^(?:changeuser|convkeys|keyfs): [^\r\n]*`}
		for _, p := range prompts {
			alts = append(alts, p.Prompt.String())
		}
		m, err := ex.Expect(ctx, regexp.MustCompile("("+strings.Join(alts, ")|(")+")"), 60*time.Second)
		if err != nil {
			return err
		}
		switch {
		case done.MatchString(m[0]):
			return nil
		case m[2] != "":
			return fmt.Errorf("%s", strings.TrimSpace(m[2]))
		}
		answered := false
		for _, p := range prompts {
			if p.Prompt.MatchString(m[0]) {
				if err := ex.SendLine(p.Reply); err != nil {
					return err
				}
				answered = true
				break
			}
		}
		if !answered {
			return fmt.Errorf("unexpected console output %q", m[0])
		}
	}
	return errors.New("too many questions")
}
