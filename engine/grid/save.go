package grid

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"gridlord/engine/atomicfile"
	"gridlord/images"
)

// Option configures New (and, for WithCatalog, Load and Parse).
type Option func(*options) error

type options struct {
	name      string
	subnet    netip.Prefix
	seed      string
	cpuSeed   string
	user      string
	authDom   string
	catalog   *images.Catalog
	static    bool
	hasSubnet bool
}

// Defaults of a new grid.
const (
	// DefaultName is the grid name (and ndb ipnet name).
	DefaultName = "grid"
	// DefaultSubnet is the grid's network.
	DefaultSubnet = "10.0.9.0/24"
	// DefaultSeed is the seed of the default grid's fossil and cpu: the
	// verified 9legacy fossil+auth image, whose 9pccpuf also tcp-boots.
	DefaultSeed = "9legacy-grid-seed"
	// GatewayOffset places the gateway at the subnet's first address (.1);
	// the host address is the last usable one (.254 on a /24).
	GatewayOffset = 1
	// FirstNodeOffset is the first address handed to VM nodes (.10), leaving
	// room below for the switch's own services.
	FirstNodeOffset = 10
)

// WithName names the grid (default DefaultName).
func WithName(name string) Option {
	return func(o *options) error {
		if !gridNameRE.MatchString(name) {
			return fmt.Errorf("grid name %q must be 1-64 letters, digits, '.', '_' or '-'", name)
		}
		o.name = name
		return nil
	}
}

// WithSubnet sets the grid's IPv4 network ("10.0.9.0/24"); the gateway is
// its first address and the host address its last usable one.
func WithSubnet(cidr string) Option {
	return func(o *options) error {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("subnet %q: %w", cidr, err)
		}
		o.subnet, o.hasSubnet = p, true
		return nil
	}
}

// WithSeed sets the seed of the default grid's fossil and cpu.
func WithSeed(name string) Option {
	return func(o *options) error { o.seed = name; return nil }
}

// WithCPUSeed sets the seed of the default grid's cpu only.
func WithCPUSeed(name string) Option {
	return func(o *options) error { o.cpuSeed = name; return nil }
}

// WithIdentity sets the host owner and auth domain of the default nodes
// (default: the seed's, else bootes and grid).
func WithIdentity(user, authDom string) Option {
	return func(o *options) error {
		if !userRE.MatchString(user) || !authDomRE.MatchString(authDom) {
			return fmt.Errorf("identity %q@%q: user and auth domain must be letters, digits, '.', '_' or '-'", user, authDom)
		}
		o.user, o.authDom = user, authDom
		return nil
	}
}

// WithStaticBoot makes cpu nodes set their address in plan9.ini rather than
// by DHCP (see Network.StaticBoot).
func WithStaticBoot() Option {
	return func(o *options) error { o.static = true; return nil }
}

// WithCatalog resolves seed names against c instead of images.Builtin().
func WithCatalog(c *images.Catalog) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("WithCatalog: nil catalog")
		}
		o.catalog = c
		return nil
	}
}

func applyOptions(opts []Option) (*options, error) {
	o := &options{name: DefaultName, seed: DefaultSeed}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.catalog == nil {
		o.catalog = images.Builtin()
	}
	if !o.hasSubnet {
		o.subnet = netip.MustParsePrefix(DefaultSubnet)
	}
	return o, nil
}

// NewNetwork returns the network for subnet: gateway at its first address,
// host at its last usable one.
func NewNetwork(subnet netip.Prefix) (Network, error) {
	nw := Network{Subnet: subnet}
	if subnet.IsValid() && subnet.Addr().Is4() && subnet.Bits() <= 30 {
		nw.Gateway = offset(subnet, GatewayOffset)
		nw.Host = broadcast(subnet).Prev()
	}
	if err := nw.validate(); err != nil {
		return Network{}, err
	}
	return nw, nil
}

// offset returns the address i after p's network address.
func offset(p netip.Prefix, i int) netip.Addr {
	a := p.Masked().Addr()
	for ; i > 0; i-- {
		a = a.Next()
	}
	return a
}

// Empty returns a grid with no nodes that is not stored anywhere: the
// starting point for building a grid by hand (and for tests).
func Empty(opts ...Option) (*Grid, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	nw, err := NewNetwork(o.subnet)
	if err != nil {
		return nil, err
	}
	nw.StaticBoot = o.static
	return &Grid{Version: SchemaVersion, Name: o.name, Network: nw, Nodes: []*Node{}, Links: []*Link{}, catalog: o.catalog}, nil
}

// Default returns the default grid, not stored anywhere: the embedded venti
// "venti", fossil "fossil1" (fossil+auth) archiving to it and cpu "cpu1"
// rooting from fossil1, laid out left to right.
func Default(opts ...Option) (*Grid, error) {
	g, err := Empty(opts...)
	if err != nil {
		return nil, err
	}
	o, _ := applyOptions(opts)
	cpuSeed := o.cpuSeed
	if cpuSeed == "" {
		cpuSeed = o.seed
	}
	fossilKind := KindFossilAuth
	if s, err := g.Seed(o.seed); err == nil && !s.CanPlay(string(KindFossilAuth)) && s.CanPlay(string(KindFossil)) {
		fossilKind = KindFossil
	}
	if _, err := g.AddNode(NodeSpec{Name: "venti", Kind: KindVenti, Embedded: true}); err != nil {
		return nil, err
	}
	if _, err := g.AddNode(NodeSpec{Name: "fossil1", Kind: fossilKind, Seed: o.seed, User: o.user, AuthDom: o.authDom}); err != nil {
		return nil, fmt.Errorf("default grid: %w", err)
	}
	if _, err := g.AddNode(NodeSpec{Name: "cpu1", Kind: KindCPU, Seed: cpuSeed, User: o.user, AuthDom: o.authDom}); err != nil {
		return nil, fmt.Errorf("default grid: %w", err)
	}
	if _, err := g.Wire("fossil1", "venti"); err != nil {
		return nil, err
	}
	if _, err := g.Wire("cpu1", "fossil1"); err != nil {
		return nil, err
	}
	g.Arrange()
	for _, n := range g.Nodes {
		// Every node is new: one generation, not one per building step.
		n.ConfigGen = 1
		n.AppliedGen = min(n.AppliedGen, 1)
	}
	return g, nil
}

// New creates the default grid (see Default) in dir, which may exist but
// must not hold a grid.json yet, and saves it.
func New(dir string, opts ...Option) (*Grid, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("create grid in %s: %s already exists; open it instead", dir, path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create grid in %s: %w", dir, err)
	}
	g, err := Default(opts...)
	if err != nil {
		return nil, fmt.Errorf("create grid in %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create grid in %s: %w", dir, err)
	}
	g.dir = dir
	if err := g.Save(); err != nil {
		return nil, err
	}
	return g, nil
}

// Load reads and validates dir/grid.json. Errors name the file and what is
// wrong with it; Load never writes. Only WithCatalog is used from opts.
func Load(dir string, opts ...Option) (*Grid, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load grid: %w", err)
	}
	g, err := Parse("load grid "+path, data, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w (the file was left as it is; %s holds the previous version)", err, BackupName)
	}
	g.dir = dir
	return g, nil
}

// Save writes the grid to Dir()/grid.json atomically: the new contents go
// to a temporary file that is fsynced and renamed over grid.json, then the
// directory is fsynced. The previous grid.json is first copied, just as
// atomically, to grid.json.bak (or to grid.json.bad if it does not parse,
// so that grid.json.bak always holds a loadable grid). If the process dies at any point, grid.json
// is either the old or the new version, never a mix.
func (g *Grid) Save() error {
	if g.dir == "" {
		return errors.New("save grid: the grid has no directory (use New or Load)")
	}
	data, err := g.Marshal()
	if err != nil {
		return err
	}
	// Refuse to write what Load would refuse.
	if _, err := parse(data); err != nil {
		return fmt.Errorf("save grid %s: refusing to write an invalid grid: %w", g.dir, err)
	}
	path := filepath.Join(g.dir, FileName)
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		if bytes.Equal(old, data) {
			return nil
		}
		// Keep a good backup good: a grid.json someone broke behind our
		// back is set aside as grid.json.bad instead.
		backup := BackupName
		if _, err := parse(old); err != nil {
			backup = BadName
		}
		if err := atomicfile.Write(filepath.Join(g.dir, backup), old, 0o644); err != nil {
			return fmt.Errorf("save grid: back up %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("save grid: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("save grid: %w", err)
	}
	return nil
}
