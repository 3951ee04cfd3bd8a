// Package images is Gridlord's catalog of seed disk images: the Plan 9
// installations that grid nodes are cloned from.
//
// The built-in catalog is catalog.json in this directory, embedded into the
// binary. Each Seed says which family it belongs to (which decides how a
// node's role is chosen: by kernel file on 4e/9legacy, by service= on
// 9front), which roles it can play, which kernel boots each role, and how
// QEMU must attach it (NIC model, disk bus, architecture).
//
// Nothing here downloads or reads disks. Fields that could not be checked
// against a real file (download URLs, checksums) are listed in
// Seed.Unverified rather than invented; a local qcow2 or raw file becomes a
// seed record with Local.
package images

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

//go:embed catalog.json
var catalogJSON []byte

// CatalogVersion is the catalog schema version this package reads.
const CatalogVersion = 1

// Family is a Plan 9 distribution family. It decides how a node's role is
// set in plan9.ini.
type Family string

// The families Gridlord knows.
const (
	// Family4e is Plan 9 from Bell Labs 4th edition: the role is compiled
	// into the kernel (9pcf terminal, 9pccpu cpu with a network root).
	Family4e Family = "4e"
	// Family9legacy is 4e plus the 9legacy patches; its kernel set adds
	// 9pccpuf (cpu server with local fossil+venti, which also tcp-boots).
	Family9legacy Family = "9legacy"
	// Family9front is 9front: one kernel, the role set by service= in
	// plan9.ini; no fossil (cwfs, hjfs, gefs instead).
	Family9front Family = "9front"
)

// RoleByKernel reports whether the family picks a machine's role by the
// kernel file it boots (4e, 9legacy) rather than by service= (9front).
func (f Family) RoleByKernel() bool { return f == Family4e || f == Family9legacy }

// Valid reports whether f is a known family.
func (f Family) Valid() bool {
	return f == Family4e || f == Family9legacy || f == Family9front
}

// Arch is a seed's machine architecture, which picks the QEMU binary.
type Arch string

// The architectures Gridlord runs.
const (
	Arch386   Arch = "386"   // qemu-system-i386
	ArchAMD64 Arch = "amd64" // qemu-system-x86_64
)

// Format is a disk image format as qemu-img names it.
type Format string

// The image formats a seed can have.
const (
	FormatRaw   Format = "raw"
	FormatQcow2 Format = "qcow2"
)

// Roles returns the grid roles a seed may play: the node kinds of
// gridlord/engine/grid, spelled the same way.
func Roles() []string { return []string{"venti", "fossil", "cpu", "auth", "fossil+auth"} }

// Seed describes one seed disk image. Catalog entries and imported local
// files use the same record; a grid stores the records of the seeds it
// imported next to its nodes.
type Seed struct {
	// Name identifies the seed in a grid ("plan9-4e-cpu-min"): lower case
	// letters, digits, '.', '_', '+' and '-'.
	Name string `json:"name"`
	// Description is one or two sentences for people.
	Description string `json:"description,omitempty"`
	// Family decides how the role is chosen (kernel file or service=).
	Family Family `json:"family"`
	// Arch picks qemu-system-i386 (386) or qemu-system-x86_64 (amd64).
	Arch Arch `json:"arch"`
	// Format is the image format, raw or qcow2.
	Format Format `json:"format"`
	// URL is where the image can be downloaded; empty when none is known.
	URL string `json:"url,omitempty"`
	// SHA256 is the lower-case hex SHA-256 of the file at URL (or of the
	// imported file); empty when unknown, and then "sha256" is Unverified.
	SHA256 string `json:"sha256,omitempty"`
	// Size is the virtual disk size in bytes; 0 when unknown.
	Size int64 `json:"size,omitempty"`
	// Roles lists the node kinds this image can boot as (see Roles()).
	Roles []string `json:"roles"`
	// NIC is the QEMU network device model the image's kernel drives
	// (rtl8139, e1000, virtio-net-pci).
	NIC string `json:"nic"`
	// DiskBus is how QEMU attaches the disk: ide or virtio.
	DiskBus string `json:"diskBus"`
	// Kernels maps each role to the kernel file in the image's 9fat that
	// boots it ("9pccpuf", "9pccpu", "9pc64"). Every role has one.
	Kernels map[string]string `json:"kernels"`
	// LocalRoot is the nobootprompt= value that boots the image's own root
	// file system ("local!#S/sdC0/fossil"); empty for images that only
	// boot from the network.
	LocalRoot string `json:"localRoot,omitempty"`
	// LocalVenti is the plan9.ini venti= value that starts the image's own
	// venti server ("#S/sdC0/arenas"); empty if it has none. A fossil that
	// is not wired to a grid venti keeps using it; a venti VM announces it
	// on the network.
	LocalVenti string `json:"localVenti,omitempty"`
	// LocalSysname is the sysname the services inside the image's own root
	// are configured for: the 4e golden image starts keyfs and authsrv from
	// /cfg/helix/cpurc, so a node booting that root must stay "helix" and
	// no cpu may be called that (plan9-grid-roles.md 4.1).
	LocalSysname string `json:"localSysname,omitempty"`
	// AuthID is the host owner recorded in the image's nvram (e.g. bootes).
	AuthID string `json:"authId,omitempty"`
	// AuthDom is the auth domain recorded in the image's nvram (e.g. grid).
	AuthDom string `json:"authDom,omitempty"`
	// Users are the accounts the image's auth server (keyfs) is known to
	// hold, with their passwords: the defaults a grid made from it starts
	// with, shown to people so they can change them (reset identity).
	Users []Credential `json:"users,omitempty"`
	// MemoryMB is the guest memory a node of this seed gets by default.
	MemoryMB int `json:"memoryMB,omitempty"`
	// Unverified names the fields (or "roles.<role>") that are recorded
	// from documentation or inference and were not checked against a real
	// image here.
	Unverified []string `json:"unverified,omitempty"`
	// Notes is free text: provenance, caveats, how to obtain the image.
	Notes string `json:"notes,omitempty"`
	// Shipped is the file name of the image inside Gridlord's own seeds
	// (gridlord/images/seeds); empty for seeds that do not ship with it.
	Shipped string `json:"shipped,omitempty"`
	// Path is the local file a seed was imported from (Local); empty for
	// catalog entries.
	Path string `json:"path,omitempty"`
	// Vac is "vac:<score>" once the image is stored in the grid's venti;
	// empty until then.
	Vac string `json:"vac,omitempty"`
	// VentiImported records that the blocks of the image's own venti (its
	// arenas partition) were copied into the grid's venti at import, so its
	// fossil's archive lives there.
	VentiImported bool `json:"ventiImported,omitempty"`
	// VacForm says what Vac archives: "" the image file as it is, or
	// VacFormDisk.
	VacForm string `json:"vacForm,omitempty"`
	// DiskSHA256 is the SHA-256 of the virtual disk, recorded with
	// VacFormDisk and checked when the disk is rebuilt.
	DiskSHA256 string `json:"diskSha256,omitempty"`
	// Snapshot is set on a seed that is a saved snapshot of a node
	// (gridlord save): what it was taken from. Nodes spawned from it boot
	// its disk.
	Snapshot *SnapshotInfo `json:"snapshot,omitempty"`
}

// SnapshotInfo describes a snapshot: a node's state saved under a name
// that never changes meaning.
type SnapshotInfo struct {
	// Kind is SnapshotDisk or SnapshotFS.
	Kind string `json:"kind"`
	// Seed is the seed of the node it was taken from: the disk a node
	// spawned from a file-system snapshot starts as, before its fossil is
	// formatted from the archive.
	Seed string `json:"seed,omitempty"`
	// Node and NodeID name the node it was taken from; NodeKind, MemoryMB,
	// User and AuthDom are that node's, given to the nodes spawned from it.
	Node     string `json:"node"`
	NodeID   string `json:"nodeId"`
	NodeKind string `json:"nodeKind"`
	MemoryMB int    `json:"memoryMB,omitempty"`
	User     string `json:"user,omitempty"`
	AuthDom  string `json:"authDom,omitempty"`
	// Saved is when it was taken.
	Saved time.Time `json:"saved"`
	// NewBytes is how much the grid's venti grew to store it: what the
	// snapshot costs beyond the blocks it shares.
	NewBytes int64 `json:"newBytes"`
}

// Snapshot kinds: a stopped node's whole disk, or a running fossil's file
// system (its archive in the venti, "fsys main snap -a").
const (
	SnapshotDisk = "disk"
	SnapshotFS   = "fs"
)

// VacFormFossil is the VacForm of a file-system snapshot: Vac is the
// fossil's archive (a fossil-written vac root), not a disk.
const VacFormFossil = "fossil"

// VacFormDisk is the VacForm of a seed stored by engine/seedstore: the
// virtual disk as a raw file whose venti clumps live in the grid's venti
// only (the image's qcow2 file itself is not kept).
const VacFormDisk = "disk"

// Credential is a user of a seed's auth domain and its password.
type Credential struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// Password returns the seed's known password for user in the seed's own
// auth domain dom, or "".
func (s *Seed) Password(user, dom string) string {
	if dom != s.AuthDom {
		return ""
	}
	for _, c := range s.Users {
		if c.User == user {
			return c.Password
		}
	}
	return ""
}

// CanPlay reports whether the seed can boot as the given role.
func (s *Seed) CanPlay(role string) bool { return slices.Contains(s.Roles, role) }

// Kernel returns the kernel file that boots role, or "" if the seed cannot
// play it.
func (s *Seed) Kernel(role string) string {
	if !s.CanPlay(role) {
		return ""
	}
	return s.Kernels[role]
}

// IsUnverified reports whether field (e.g. "sha256" or "roles.auth") is
// marked as not checked against a real image.
func (s *Seed) IsUnverified(field string) bool { return slices.Contains(s.Unverified, field) }

var (
	seedNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._+-]{0,63}$`)
	// kernelRE accepts plain 9fat file names and 9front paths (/amd64/9pc64).
	kernelRE = regexp.MustCompile(`^/?[A-Za-z0-9._/-]{1,64}$`)
)

// Validate checks a seed record and returns an error naming the seed and
// the bad field.
func (s *Seed) Validate() error {
	name := s.Name
	if name == "" {
		name = "(unnamed)"
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("seed %s: %s", name, fmt.Sprintf(format, args...))
	}
	if !seedNameRE.MatchString(s.Name) {
		return bad("name %q must be 1-64 lower-case letters, digits, '.', '_', '+' or '-', starting with a letter or digit", s.Name)
	}
	if !s.Family.Valid() {
		return bad("family %q is not one of 4e, 9legacy, 9front", s.Family)
	}
	if s.Arch != Arch386 && s.Arch != ArchAMD64 {
		return bad("arch %q is not 386 or amd64", s.Arch)
	}
	if s.Format != FormatRaw && s.Format != FormatQcow2 {
		return bad("format %q is not raw or qcow2", s.Format)
	}
	if s.SHA256 != "" {
		if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != 32 || strings.ToLower(s.SHA256) != s.SHA256 {
			return bad("sha256 %q is not 64 lower-case hex digits", s.SHA256)
		}
	} else if !s.IsUnverified("sha256") && s.Path == "" && s.DiskSHA256 == "" && s.VacForm != VacFormFossil {
		return bad("no sha256: record the checksum or list \"sha256\" in unverified")
	}
	if s.Size < 0 {
		return bad("size %d is negative", s.Size)
	}
	if len(s.Roles) == 0 {
		return bad("no roles: list at least one of %s", strings.Join(Roles(), ", "))
	}
	for i, r := range s.Roles {
		if !slices.Contains(Roles(), r) {
			return bad("role %q is not one of %s", r, strings.Join(Roles(), ", "))
		}
		if slices.Contains(s.Roles[:i], r) {
			return bad("role %q listed twice", r)
		}
		if s.Family == Family9front && (r == "fossil" || r == "fossil+auth") {
			return bad("role %s: 9front has no fossil", r)
		}
		k := s.Kernels[r]
		if !kernelRE.MatchString(k) {
			return bad("role %s has no valid kernel file name (kernels.%s = %q)", r, r, k)
		}
	}
	for r := range s.Kernels {
		if !slices.Contains(s.Roles, r) {
			return bad("kernels.%s names a role the seed does not list in roles", r)
		}
	}
	if s.NIC == "" {
		return bad("no nic: name the QEMU NIC model its kernel drives (rtl8139, e1000, ...)")
	}
	if s.DiskBus != "ide" && s.DiskBus != "virtio" {
		return bad("diskBus %q is not ide or virtio", s.DiskBus)
	}
	if s.CanPlay("venti") && s.LocalVenti == "" {
		return bad("role venti needs localVenti, the venti= value that starts the image's venti")
	}
	if strings.ContainsAny(s.LocalVenti, " \n\t=") {
		return bad("localVenti %q contains spaces or '='", s.LocalVenti)
	}
	for _, r := range s.Roles {
		if (r == "fossil" || r == "fossil+auth" || r == "auth" || r == "venti") && s.LocalRoot == "" {
			return bad("role %s boots the image's own root, but localRoot is empty", r)
		}
	}
	if strings.ContainsAny(s.LocalRoot, " \n\t=") {
		return bad("localRoot %q contains spaces or '='", s.LocalRoot)
	}
	if s.LocalSysname != "" && !sysnameRE.MatchString(s.LocalSysname) {
		return bad("localSysname %q is not a valid sysname", s.LocalSysname)
	}
	if s.MemoryMB < 0 || s.MemoryMB > 1<<20 {
		return bad("memoryMB %d out of range", s.MemoryMB)
	}
	if s.Vac != "" && !vacRE.MatchString(s.Vac) {
		return bad("vac %q is not vac:<40 hex digits>", s.Vac)
	}
	if s.VacForm != "" && s.VacForm != VacFormDisk && s.VacForm != VacFormFossil {
		return bad("vacForm %q is unknown (want empty, %q or %q)", s.VacForm, VacFormDisk, VacFormFossil)
	}
	if s.VacForm == VacFormDisk && !sha256RE.MatchString(s.DiskSHA256) {
		return bad("diskSha256 %q is not 64 hex digits (needed with vacForm %q)", s.DiskSHA256, VacFormDisk)
	}
	return nil
}

var (
	sysnameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,26}$`)
	vacRE     = regexp.MustCompile(`^vac:[0-9a-f]{40}$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Catalog is a set of seed records with unique names.
type Catalog struct {
	// Version is the catalog schema version (CatalogVersion).
	Version int `json:"version"`
	// Seeds are the records, in file order.
	Seeds []Seed `json:"seeds"`
}

// Lookup returns the seed called name.
func (c *Catalog) Lookup(name string) (Seed, bool) {
	for _, s := range c.Seeds {
		if s.Name == name {
			return s, true
		}
	}
	return Seed{}, false
}

// Names returns the seed names in catalog order.
func (c *Catalog) Names() []string {
	var n []string
	for _, s := range c.Seeds {
		n = append(n, s.Name)
	}
	return n
}

// ParseCatalog decodes and validates a catalog. name labels errors (a file
// name, or "built-in catalog"). Unknown fields are refused so typos in a
// hand-written catalog are caught.
func ParseCatalog(name string, data []byte) (*Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: extra data after the catalog object", name)
	}
	if c.Version != CatalogVersion {
		return nil, fmt.Errorf("%s: catalog version %d, this Gridlord reads version %d", name, c.Version, CatalogVersion)
	}
	for i := range c.Seeds {
		if err := c.Seeds[i].Validate(); err != nil {
			return nil, fmt.Errorf("%s: seed %d: %w", name, i, err)
		}
		for _, prev := range c.Seeds[:i] {
			if prev.Name == c.Seeds[i].Name {
				return nil, fmt.Errorf("%s: seed name %q used twice", name, prev.Name)
			}
		}
	}
	return &c, nil
}

// Builtin returns a fresh copy of the catalog embedded in the binary.
func Builtin() *Catalog {
	c, err := ParseCatalog("built-in catalog images/catalog.json", catalogJSON)
	if err != nil {
		// catalog.json is checked by TestBuiltin; reaching this is a build bug.
		panic(err)
	}
	return c
}

// qcow2Magic starts every qcow2 file ("QFI\xfb").
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// DetectFormat guesses an image's format from its first bytes: qcow2 if it
// starts with the qcow2 magic, raw otherwise.
func DetectFormat(header []byte) Format {
	if bytes.HasPrefix(header, qcow2Magic) {
		return FormatQcow2
	}
	return FormatRaw
}

// ErrNoTemplate is returned by Local when the template seed is empty.
var ErrNoTemplate = errors.New("a local image needs a template seed to say its family, roles and kernels")

// Local makes the seed record for a local disk image file being imported.
// The caller reads the file: path is where it is, size its virtual size in
// bytes, header its first bytes (at least 4, for DetectFormat) and sha256
// its checksum in hex (may be empty). A bare disk image carries no
// metadata, so family, roles, kernels, NIC and disk bus come from like, the
// catalog entry the file is a copy or derivative of. The returned record
// has no Vac score yet: it is set when the image is stored in venti.
func Local(name, path string, size int64, header []byte, sha256 string, like Seed) (Seed, error) {
	if like.Name == "" {
		return Seed{}, fmt.Errorf("import %s as seed %s: %w", path, name, ErrNoTemplate)
	}
	s := like
	s.Name = name
	s.Description = fmt.Sprintf("imported from %s (like %s)", path, like.Name)
	s.Format = DetectFormat(header)
	s.URL = ""
	s.SHA256 = sha256
	s.Size = size
	s.Path = path
	s.Vac = ""
	s.Notes = ""
	s.Shipped = ""
	s.Users = slices.Clone(like.Users)
	s.Roles = slices.Clone(like.Roles)
	s.Kernels = make(map[string]string, len(like.Kernels))
	for k, v := range like.Kernels {
		s.Kernels[k] = v
	}
	s.Unverified = nil
	for _, f := range like.Unverified {
		if f != "url" && f != "sha256" && f != "size" {
			s.Unverified = append(s.Unverified, f)
		}
	}
	if path == "" {
		return Seed{}, fmt.Errorf("import seed %s: empty file path", name)
	}
	if err := s.Validate(); err != nil {
		return Seed{}, fmt.Errorf("import %s: %w", path, err)
	}
	return s, nil
}
