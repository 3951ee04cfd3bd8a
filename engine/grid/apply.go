package grid

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Verb describes one grid command: its name, how many arguments it takes
// and its usage line. gridfs's verb tables are made of these.
type Verb struct {
	// Name is the first word of the command, e.g. "wire".
	Name string
	// Min and Max bound the number of words after Name (Max -1: unbounded).
	Min, Max int
	// Usage is the whole command with placeholders, e.g. "wire FROM TO".
	Usage string
}

// Check reports whether words (the verb and its arguments) fit v.
func (v Verb) Check(words []string) error {
	n := len(words) - 1
	if n < v.Min || (v.Max >= 0 && n > v.Max) {
		return fmt.Errorf("usage: %s", v.Usage)
	}
	return nil
}

// edit is one model edit: its verb and what it does to the grid.
type edit struct {
	Verb
	apply func(g *Grid, args []string) error
}

// edits are the commands that change the model: the engine applies them
// under its lock (and then writes stopped nodes' disks; for remove and
// clone it also deletes or copies the node's disk), the window previews
// them on a copy (Apply).
var edits = []edit{
	{Verb{"add", 2, 3, "add KIND NAME [SEED]"}, func(g *Grid, a []string) error {
		spec := NodeSpec{Kind: Kind(a[0]), Name: a[1], Seed: g.SeedFor(Kind(a[0]))}
		if len(a) == 3 {
			spec.Seed = a[2]
		}
		_, err := g.AddNode(spec)
		return err
	}},
	{Verb{"remove", 1, 1, "remove NAME"}, func(g *Grid, a []string) error { return g.RemoveNode(a[0]) }},
	{Verb{"clone", 2, 2, "clone NODE NEWNAME"}, func(g *Grid, a []string) error { _, err := g.CloneNode(a[0], a[1]); return err }},
	{Verb{"wire", 2, 2, "wire FROM TO"}, func(g *Grid, a []string) error { _, err := g.Wire(a[0], a[1]); return err }},
	{Verb{"unwire", 2, 2, "unwire FROM TO"}, func(g *Grid, a []string) error { return g.Unwire(a[0], a[1]) }},
	{Verb{"rewire", 2, 2, "rewire FROM TO"}, func(g *Grid, a []string) error { _, _, err := g.Rewire(a[0], a[1]); return err }},
	{Verb{"move", 3, 3, "move NODE X Y"}, func(g *Grid, a []string) error {
		x, err1 := strconv.ParseFloat(a[1], 64)
		y, err2 := strconv.ParseFloat(a[2], 64)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("move %s: bad position: %w", a[0], err)
		}
		return g.Move(a[0], x, y)
	}},
	{Verb{"arrange", 0, 0, "arrange"}, func(g *Grid, _ []string) error { g.Arrange(); return nil }},
	{Verb{"identity", 3, 3, "identity NODE USER AUTHDOM"}, func(g *Grid, a []string) error { return g.SetIdentity(a[0], a[1], a[2]) }},
	{Verb{"memory", 2, 2, "memory NODE MB"}, func(g *Grid, a []string) error {
		mb, err := strconv.Atoi(a[1])
		if err != nil {
			return fmt.Errorf("memory %s: %q is not a number of MiB", a[0], a[1])
		}
		return g.SetMemory(a[0], mb)
	}},
	{Verb{"ip", 2, 2, "ip NODE ADDR"}, func(g *Grid, a []string) error {
		ip, err := netip.ParseAddr(a[1])
		if err != nil {
			return fmt.Errorf("ip %s: %w", a[0], err)
		}
		return g.SetIP(a[0], ip)
	}},
	{Verb{"rename", 2, 2, "rename NODE NEWNAME"}, func(g *Grid, a []string) error { return g.Rename(a[0], a[1]) }},
	{Verb{"outbound", 1, 1, "outbound on|off"}, func(g *Grid, a []string) error {
		if a[0] != "on" && a[0] != "off" {
			return fmt.Errorf("outbound %q: want on or off", a[0])
		}
		g.SetOutbound(a[0] == "on")
		return nil
	}},
	{Verb{"failover", 1, 1, "failover MIRROR-ADDR|off"}, func(g *Grid, a []string) error {
		if a[0] == "off" {
			return g.SetFailover("")
		}
		return g.SetFailover(a[0])
	}},
}

// EditVerbs returns the commands Apply knows: those that only change the
// model.
func EditVerbs() []Verb {
	vs := make([]Verb, len(edits))
	for i, e := range edits {
		vs[i] = e.Verb
	}
	return vs
}

// IsEdit reports whether verb is one of EditVerbs.
func IsEdit(verb string) bool {
	for _, e := range edits {
		if e.Name == verb {
			return true
		}
	}
	return false
}

// Apply applies one model edit (words: an EditVerbs verb and its
// arguments) to g. It is how the engine edits its grid, and how the window
// previews a list of commands on a copy. g is not saved.
func Apply(g *Grid, words []string) error {
	if len(words) == 0 {
		return errors.New("empty grid command")
	}
	for _, e := range edits {
		if e.Name != words[0] {
			continue
		}
		if err := e.Check(words); err != nil {
			return err
		}
		return e.apply(g, words[1:])
	}
	return fmt.Errorf("%q is not a grid edit", words[0])
}

// SeedFor is the seed a node of kind k added without one gets: the seed of
// the grid's first VM node that can play k (a grid made from a local image
// adds nodes from that image), else DefaultSeed.
func (g *Grid) SeedFor(k Kind) string {
	for _, n := range g.Nodes {
		if !n.HasVM() || n.Seed == "" {
			continue
		}
		if s, err := g.Seed(n.Seed); err == nil && s.CanPlay(string(k)) {
			return n.Seed
		}
	}
	return DefaultSeed
}
