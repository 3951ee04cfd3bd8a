package grid

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gridlord/engine/qcow2"
	"gridlord/images"
)

// InitOptions configures Init.
type InitOptions struct {
	// Seed names the seed of the default fossil and cpu: a catalog seed,
	// or, with SeedPath, the name of a local image to import.
	Seed string
	// SeedPath is a local disk image to use as the seed (recorded now; its
	// vac archive is stored by the engine's seed import).
	SeedPath string
	// Like names the catalog seed the local image is a copy of (default
	// DefaultSeed).
	Like string
	// Subnet is the grid's network ("" for DefaultSubnet).
	Subnet string
	// User and AuthDom are the nodes' host owner and auth domain ("": the
	// seed's).
	User, AuthDom string
}

// Init creates the default grid (embedded venti, fossil1, cpu1) in dir.
// With a local seed image, its seed record is added to the grid (without a
// vac score: the engine's seed import stores the image in the venti).
func Init(dir string, opts InitOptions) (*Grid, error) {
	if _, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
		return nil, fmt.Errorf("%s already holds a grid", dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var gopts []Option
	if opts.Subnet != "" {
		gopts = append(gopts, WithSubnet(opts.Subnet))
	}
	var local *images.Seed
	if opts.SeedPath != "" {
		name := opts.Seed
		if name == "" {
			return nil, errors.New("a local seed image needs a seed name")
		}
		cat := images.Builtin()
		likeName := opts.Like
		if likeName == "" {
			likeName = DefaultSeed
		}
		like, ok := cat.Lookup(likeName)
		if !ok {
			return nil, fmt.Errorf("no catalog seed %s to describe %s", likeName, opts.SeedPath)
		}
		s, err := LocalSeed(name, opts.SeedPath, like)
		if err != nil {
			return nil, err
		}
		cat.Seeds = append(cat.Seeds, s)
		local = &s
		gopts = append(gopts, WithCatalog(cat))
	}
	if opts.Seed != "" {
		gopts = append(gopts, WithSeed(opts.Seed))
	}
	if opts.User != "" || opts.AuthDom != "" {
		gopts = append(gopts, WithIdentity(opts.User, opts.AuthDom))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("grid directory: %w", err)
	}
	g, err := New(dir, gopts...)
	if err != nil {
		return nil, err
	}
	if local != nil {
		if err := g.AddSeed(*local); err != nil {
			return nil, err
		}
		if err := g.Save(); err != nil {
			return nil, err
		}
	}
	return Load(dir)
}

// LocalSeed makes the seed record of the local disk image at path (raw or
// a standalone qcow2), described by the template seed like (family,
// roles, kernels): its size, format and SHA-256. The engine stores the
// image in the grid's venti when it imports the seed.
func LocalSeed(name, path string, like images.Seed) (images.Seed, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return images.Seed{}, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return images.Seed{}, fmt.Errorf("import seed %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return images.Seed{}, fmt.Errorf("import seed %s: %s is not a regular file", name, abs)
	}
	header, sum, err := fileHeaderAndSum(abs)
	if err != nil {
		return images.Seed{}, fmt.Errorf("import seed %s: %w", name, err)
	}
	size := st.Size()
	if images.DetectFormat(header) == images.FormatQcow2 {
		im, err := qcow2.OpenReadOnly(abs)
		if err != nil {
			return images.Seed{}, fmt.Errorf("import seed %s: %w", name, err)
		}
		info := im.Info()
		im.Close()
		if info.BackingFile != "" {
			return images.Seed{}, fmt.Errorf("import seed %s: %s is a linked clone of %s; import a standalone copy (gridlord disk flatten)", name, abs, info.BackingFile)
		}
		size = info.VirtualSize
	}
	return images.Local(name, abs, size, header, sum, like)
}

// fileHeaderAndSum returns a file's first 512 bytes and its SHA-256 in hex.
func fileHeaderAndSum(path string) ([]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	header := make([]byte, 512)
	n, err := io.ReadFull(f, header)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	if n < 4 {
		return nil, "", fmt.Errorf("%s is too small to be a disk image (%d bytes)", path, n)
	}
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", err
	}
	if _, err := io.Copy(h, f); err != nil {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	return header[:n], hex.EncodeToString(h.Sum(nil)), nil
}

// SeedNameFromFile makes a seed name from a disk image's file name, as
// gridlord init and the New grid wizard name an imported image.
func SeedNameFromFile(path string) string {
	b := strings.ToLower(filepath.Base(path))
	for _, ext := range []string{".qcow2", ".img", ".raw", ".disk"} {
		b = strings.TrimSuffix(b, ext)
	}
	b = seedNameJunk.ReplaceAllString(b, "-")
	if b == "" {
		b = "seed"
	}
	return b
}

// seedNameJunk is what SeedNameFromFile replaces with "-".
var seedNameJunk = regexp.MustCompile(`[^a-z0-9._+-]+`)
