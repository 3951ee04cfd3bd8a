package seedbuild

import (
	"fmt"
	"path"
	"strings"
)

// Profile names a selection of a distribution's files for the new seed.
type Profile string

// The profiles.
const (
	// ProfileGrid keeps what a running grid node needs: the 386 binaries
	// without compilers or games, the boot files, rc, the system's
	// configuration (adm, cfg, cron, lib/ndb, lib/namespace*, sys/lib's
	// kbmap, plumb and sysconfig), one font and glenda's home — no
	// sources, manuals, documents or other architectures. On the 9legacy
	// CD it is about 1,100 entries and 67 MB.
	ProfileGrid Profile = "grid"
	// ProfileFull keeps everything except other architectures' binaries
	// (about 18,000 entries and 280 MB on the 9legacy CD: it needs a
	// disk of 2 GiB or more).
	ProfileFull Profile = "full"
)

// Profiles returns the known profiles.
func Profiles() []Profile { return []Profile{ProfileGrid, ProfileFull} }

// ParseProfile checks a profile name.
func ParseProfile(s string) (Profile, error) {
	for _, p := range Profiles() {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown profile %q (known: grid, full)", s)
}

// gridKeep lists the trees the grid profile keeps: each path and
// everything below it.
func gridKeep() []string {
	return []string{
		"386/9load", "386/init", "386/mbr", "386/pbs", "386/pbslba", "386/bin",
		"adm", "cfg", "cron", "env", "fd", "lp", "mail/lib", "mnt", "n", "rc", "tmp",
		"lib/font/bit/pelm", "lib/keyboard", "lib/namespace", "lib/namespace.*", "lib/ndb",
		"lib/tftpd", "lib/vgadb", "lib/rfc/grabrfc",
		"sys/lib/kbmap", "sys/lib/plumb", "sys/lib/sysconfig", "sys/log",
		"usr/glenda",
	}
}

// gridDrop lists what the grid profile leaves out of the kept trees.
func gridDrop() []string {
	return []string{"386/bin/games", "386/bin/[0-9kqv][acl]"}
}

// otherArches are the top-level binary directories of architectures other
// than 386.
func otherArches() []string {
	return []string{"68000", "68020", "alpha", "amd64", "arm", "arm64", "mips", "power", "power64", "riscv", "riscv64", "sparc", "sparc64", "spim"}
}

// under reports whether p is pattern or lies below it; pattern elements
// may be path.Match globs.
func under(p, pattern string) bool {
	pe, qe := strings.Split(p, "/"), strings.Split(pattern, "/")
	if len(pe) < len(qe) {
		return false
	}
	for i, q := range qe {
		if ok, _ := path.Match(q, pe[i]); !ok {
			return false
		}
	}
	return true
}

// above reports whether p is a proper ancestor of the tree pattern names.
func above(p, pattern string) bool {
	pe, qe := strings.Split(p, "/"), strings.Split(pattern, "/")
	if len(pe) >= len(qe) {
		return false
	}
	for i, e := range pe {
		if ok, _ := path.Match(qe[i], e); !ok {
			return false
		}
	}
	return true
}

// Keep reports whether the profile keeps the file at path p (relative,
// no leading slash). Directories above kept trees are kept too, so the
// selection is always a tree.
func (pr Profile) Keep(p string) bool {
	switch pr {
	case ProfileFull:
		first, _, _ := strings.Cut(p, "/")
		for _, a := range otherArches() {
			if first == a || under(p, "acme/bin/"+a) {
				return false
			}
		}
		return true
	case ProfileGrid:
		for _, d := range gridDrop() {
			if under(p, d) {
				return false
			}
		}
		for _, k := range gridKeep() {
			if under(p, k) || above(p, k) {
				return true
			}
		}
		// The replica directory, without the server's own logs.
		return p == "dist"
	}
	return false
}

// Filter returns the entries of a log that the profile keeps, in order.
func (pr Profile) Filter(entries []LogEntry) []LogEntry {
	var out []LogEntry
	for _, e := range entries {
		if pr.Keep(e.Path) {
			out = append(out, e)
		}
	}
	return out
}
