package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gridlord/engine/atomicfile"
	"gridlord/engine/drawterm"
	"gridlord/engine/grid"
	"gridlord/engine/network"
)

// Passwords of the grid's users. The engine needs them to log in to nodes
// (drawterm, exec) and to write nvram keys; the model does not hold them.
// A grid made from a seed starts with the seed's own accounts (its catalog
// record lists them, images.Seed.Users: visible defaults); every password
// set since (reset identity) is kept in GRIDDIR/PasswordsName, readable by
// the grid's owner only.

// PasswordsName is the file of the grid's passwords, mode 0600:
// {"user@authdom": "password", ...}.
const PasswordsName = "passwords.json"

// loadPasswords reads the grid's password file (none yet is no error).
func loadPasswords(dir string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, PasswordsName))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("grid passwords: %w", err)
	}
	pw := map[string]string{}
	if err := json.Unmarshal(b, &pw); err != nil {
		return nil, fmt.Errorf("grid passwords %s: %w (fix or remove the file; the seeds' default passwords apply without it)", filepath.Join(dir, PasswordsName), err)
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
	if err := atomicfile.Write(filepath.Join(e.dir, PasswordsName), append(b, '\n'), 0o600); err != nil {
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
	for _, f := range sw.Forwards(name) {
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
