// Package standin builds, at test time, a tiny Linux guest that stands in for
// a Plan 9 node in VM runtime tests: Debian's kernel package plus an
// initramfs holding busybox-static and a short /init script. It boots with
// QEMU's -kernel/-initrd under TCG in a few seconds, prints the ready line
// (ReadyLine) on the serial console, takes its address by DHCP from the
// first NIC (an e1000), powers off on the ACPI power button, and then runs a
// busybox shell on ttyS0 with the prompt "standin# ".
//
// # Where the pieces come from
//
// The kernel is the package linux-image-amd64 depends on (for example
// linux-image-6.1.0-56-amd64), fetched with "apt-get download" and unpacked
// with "dpkg-deb -x"; only vmlinuz and the few modules the guest loads are
// kept. Busybox is the host's /bin/busybox from the busybox-static package.
// So the builder needs a Debian-like host with apt lists present ("apt-get
// update" once) the first time; after that everything comes from the cache.
//
// # Cache
//
// Results are cached under $GRIDLORD_STANDIN_CACHE, else
// $XDG_CACHE_HOME/gridlord-standin (~/.cache/gridlord-standin):
//
//	kernel-<package>_<version>/vmlinuz, modules/*.ko, kernel.json
//	initrd-<sha256 of every input>.cpio
//
// The kernel directory is keyed by the package's name and version, and the
// initramfs by a hash of busybox, the scripts, the module files and the
// format version, so a changed input makes a new entry and stale ones are
// never reused. Entries are written to temporary names and renamed into
// place, and a lock file serializes concurrent builders (go test runs
// packages in parallel). When apt cannot be asked (no lists, offline) the
// newest cached kernel is used. GRIDLORD_STANDIN_KERNEL_DEB names a kernel
// .deb to use instead of downloading one.
package standin

import (
	"gridlord/engine/atomicfile"

	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// ReadyLine is the prefix of the console line the guest prints once its
// network is configured, followed by "name=NAME ip=IP".
const ReadyLine = "GRIDLORD-STANDIN READY"

// Prompt is the shell prompt the guest shows on its console.
const Prompt = "standin# "

// formatVersion changes whenever the initramfs layout or scripts change in a
// way the hash of the inputs would not see.
const formatVersion = "standin-1"

//go:embed init.sh
var initScript []byte

//go:embed udhcpc.script
var udhcpcScript []byte

// DefaultModules returns the kernel modules the guest loads, in addition to
// their dependencies: the e1000 NIC, the ACPI power button and evdev (to
// read the button's events).
func DefaultModules() []string { return []string{"e1000", "button", "evdev"} }

// Options configures Build. The zero value is ready to use.
type Options struct {
	// CacheDir holds built images; empty means DefaultCacheDir().
	CacheDir string
	// Busybox is a statically linked busybox; empty means /bin/busybox.
	Busybox string
	// KernelDeb is a linux-image .deb to use instead of asking apt; empty
	// means $GRIDLORD_STANDIN_KERNEL_DEB, else the apt candidate of
	// linux-image-amd64's dependency.
	KernelDeb string
	// Modules lists kernel modules to load at boot; nil means DefaultModules.
	Modules []string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
}

// Image is a built stand-in guest.
type Image struct {
	Kernel        string // path of vmlinuz
	Initrd        string // path of the initramfs (uncompressed newc cpio)
	KernelRelease string // for example "6.1.0-56-amd64"
}

// Append returns the kernel command line for a guest called name.
func (im *Image) Append(name string) string {
	return "console=ttyS0 quiet panic=-1 mitigations=off standin.name=" + name
}

// DefaultCacheDir returns $GRIDLORD_STANDIN_CACHE, else the user's cache
// directory plus "gridlord-standin".
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("GRIDLORD_STANDIN_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("stand-in cache directory: %w (set GRIDLORD_STANDIN_CACHE)", err)
	}
	return filepath.Join(d, "gridlord-standin"), nil
}

// Build returns the stand-in image, building whatever is not cached yet.
// It is safe to call from several processes at once.
func Build(ctx context.Context, opts Options) (*Image, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Busybox == "" {
		opts.Busybox = "/bin/busybox"
	}
	if opts.Modules == nil {
		opts.Modules = DefaultModules()
	}
	if opts.KernelDeb == "" {
		opts.KernelDeb = os.Getenv("GRIDLORD_STANDIN_KERNEL_DEB")
	}
	if opts.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		opts.CacheDir = d
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("create stand-in cache %s: %w", opts.CacheDir, err)
	}
	unlock, err := lockFile(filepath.Join(opts.CacheDir, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("lock stand-in cache %s: %w", opts.CacheDir, err)
	}
	defer unlock()

	kdir, err := kernel(ctx, opts)
	if err != nil {
		return nil, err
	}
	var meta kernelMeta
	if err := readJSON(filepath.Join(kdir, "kernel.json"), &meta); err != nil {
		return nil, err
	}
	initrd, err := initramfs(opts, kdir, meta)
	if err != nil {
		return nil, err
	}
	return &Image{Kernel: filepath.Join(kdir, "vmlinuz"), Initrd: initrd, KernelRelease: meta.Release}, nil
}

// kernelMeta is kernel.json in a cached kernel directory.
type kernelMeta struct {
	Package string   `json:"package"`
	Version string   `json:"version"`
	Release string   `json:"release"`
	Modules []string `json:"modules"` // file names under modules/, load order
}

// kernel returns a cached kernel directory, downloading and unpacking the
// kernel package when needed.
func kernel(ctx context.Context, opts Options) (string, error) {
	if opts.KernelDeb != "" {
		return unpackKernel(ctx, opts, opts.KernelDeb, "")
	}
	pkg, ver, err := aptCandidate(ctx)
	if err != nil {
		if dir := newestCachedKernel(opts.CacheDir, opts.Modules); dir != "" {
			opts.Log.Warn("apt cannot name the kernel package; using the cached one", "dir", dir, "err", err)
			return dir, nil
		}
		// No package lists yet (a fresh container): as root, fetch them once.
		if os.Geteuid() != 0 {
			return "", err
		}
		opts.Log.Info("no apt lists; running apt-get update", "err", err)
		if out, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("%w; apt-get update also failed: %v: %s", err, uerr, bytes.TrimSpace(out))
		}
		if pkg, ver, err = aptCandidate(ctx); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(opts.CacheDir, "kernel-"+pkg+"_"+ver+"-"+modulesKey(opts.Modules))
	if _, err := os.Stat(filepath.Join(dir, "kernel.json")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(opts.CacheDir, "download-")
	if err != nil {
		return "", fmt.Errorf("stand-in kernel: %w", err)
	}
	defer os.RemoveAll(tmp)
	opts.Log.Info("downloading the stand-in kernel", "package", pkg, "version", ver)
	cmd := exec.CommandContext(ctx, "apt-get", "download", pkg+"="+ver)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s=%s: %w: %s (check network access and run apt-get update)", pkg, ver, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d .deb files in %s, want 1", pkg, len(debs), tmp)
	}
	return unpackKernel(ctx, opts, debs[0], dir)
}

func modulesKey(mods []string) string {
	h := sha256.Sum256([]byte(strings.Join(mods, ",")))
	return hex.EncodeToString(h[:4])
}

// aptCandidate names the kernel package linux-image-amd64 depends on and
// its candidate version.
func aptCandidate(ctx context.Context) (pkg, ver string, err error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", "", fmt.Errorf("apt-cache depends linux-image-amd64: %w (the stand-in guest needs a Debian-like host; run apt-get update)", err)
	}
	pkg = parseAptDepends(out)
	if pkg == "" {
		return "", "", fmt.Errorf("apt-cache depends linux-image-amd64 names no linux-image package (run apt-get update)")
	}
	out, err = exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil {
		return "", "", fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	ver = parseAptVersion(out)
	if ver == "" {
		return "", "", fmt.Errorf("apt-cache show %s gave no Version", pkg)
	}
	return pkg, ver, nil
}

// parseAptDepends picks the linux-image-* dependency from the output of
// "apt-cache depends linux-image-amd64".
func parseAptDepends(out []byte) string {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "Depends:" || f[0] == "|Depends:") && strings.HasPrefix(f[1], "linux-image-") && !strings.Contains(f[1], "<") {
			return f[1]
		}
	}
	return ""
}

// parseAptVersion returns the Version field of "apt-cache show" output.
func parseAptVersion(out []byte) string {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func newestCachedKernel(cache string, mods []string) string {
	dirs, _ := filepath.Glob(filepath.Join(cache, "kernel-*-"+modulesKey(mods), "kernel.json"))
	best := ""
	var bestTime int64
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.ModTime().UnixNano() > bestTime {
			best, bestTime = filepath.Dir(d), st.ModTime().UnixNano()
		}
	}
	return best
}

// unpackKernel extracts vmlinuz and the wanted modules from deb into dir
// (derived from the .deb's own fields when empty), atomically.
func unpackKernel(ctx context.Context, opts Options, deb, dir string) (string, error) {
	field := func(name string) (string, error) {
		out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, name).Output()
		if err != nil {
			return "", fmt.Errorf("dpkg-deb -f %s %s: %w (is dpkg installed?)", deb, name, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	pkg, err := field("Package")
	if err != nil {
		return "", err
	}
	ver, err := field("Version")
	if err != nil {
		return "", err
	}
	if dir == "" {
		dir = filepath.Join(opts.CacheDir, "kernel-"+pkg+"_"+ver+"-"+modulesKey(opts.Modules))
		if _, err := os.Stat(filepath.Join(dir, "kernel.json")); err == nil {
			return dir, nil
		}
	}
	x, err := os.MkdirTemp(opts.CacheDir, "unpack-")
	if err != nil {
		return "", fmt.Errorf("unpack %s: %w", deb, err)
	}
	defer os.RemoveAll(x)
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(x, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return "", fmt.Errorf("%s holds %d boot/vmlinuz-* files, want 1", deb, len(vmlinuz))
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	moddir := filepath.Join(x, "lib", "modules", release)
	order, err := resolveModules(moddir, opts.Modules)
	if err != nil {
		return "", fmt.Errorf("kernel %s: %w", deb, err)
	}
	stage := filepath.Join(x, "stage")
	if err := os.MkdirAll(filepath.Join(stage, "modules"), 0o755); err != nil {
		return "", err
	}
	if err := copyFile(vmlinuz[0], filepath.Join(stage, "vmlinuz")); err != nil {
		return "", err
	}
	meta := kernelMeta{Package: pkg, Version: ver, Release: release}
	for _, m := range order {
		name := filepath.Base(m)
		if err := copyFile(m, filepath.Join(stage, "modules", name)); err != nil {
			return "", err
		}
		meta.Modules = append(meta.Modules, name)
	}
	b, _ := json.MarshalIndent(meta, "", "\t")
	if err := os.WriteFile(filepath.Join(stage, "kernel.json"), b, 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir) // a half-built leftover without kernel.json
	if err := os.Rename(stage, dir); err != nil {
		return "", fmt.Errorf("install stand-in kernel %s: %w", dir, err)
	}
	opts.Log.Info("stand-in kernel cached", "dir", dir)
	return dir, nil
}

// initramfs returns the cached initramfs for these inputs, writing it first
// when missing.
func initramfs(opts Options, kdir string, meta kernelMeta) (string, error) {
	bb, err := os.ReadFile(opts.Busybox)
	if err != nil {
		return "", fmt.Errorf("read busybox: %w (install the busybox-static package)", err)
	}
	if !isStaticELF(bb) {
		return "", fmt.Errorf("%s is not a statically linked ELF executable (install busybox-static)", opts.Busybox)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", formatVersion, meta.Release)
	h.Write(bb)
	h.Write(initScript)
	h.Write(udhcpcScript)
	mods := make(map[string][]byte)
	for _, m := range meta.Modules {
		b, err := os.ReadFile(filepath.Join(kdir, "modules", m))
		if err != nil {
			return "", fmt.Errorf("stand-in module: %w", err)
		}
		mods[m] = b
		fmt.Fprintf(h, "%s\x00", m)
		h.Write(b)
	}
	path := filepath.Join(opts.CacheDir, "initrd-"+hex.EncodeToString(h.Sum(nil))[:24]+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	for _, d := range []string{"bin", "etc", "lib", "lib/modules", "dev", "proc", "sys", "tmp", "root"} {
		w.Dir(d, 0o755)
	}
	w.File("bin/busybox", 0o755, bb)
	w.Symlink("bin/sh", "busybox")
	w.File("init", 0o755, initScript)
	w.File("etc/udhcpc.script", 0o755, udhcpcScript)
	w.File("lib/modules/order", 0o644, []byte(strings.Join(meta.Modules, "\n")+"\n"))
	names := append([]string(nil), meta.Modules...)
	sort.Strings(names)
	for _, m := range names {
		w.File("lib/modules/"+m, 0o644, mods[m])
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write initramfs %s: %w", path, err)
	}
	return path, nil
}

func isStaticELF(b []byte) bool {
	return len(b) > 4 && string(b[:4]) == "\x7fELF" && !bytes.Contains(b[:min(len(b), 4096)], []byte("/lib64/ld-linux"))
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w (delete the directory to rebuild it)", path, err)
	}
	return nil
}

// errNoModule means a wanted kernel module is not in the package.
var errNoModule = errors.New("module not found")
