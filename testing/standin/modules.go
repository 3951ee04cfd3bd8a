package standin

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// resolveModules finds the wanted modules under moddir (an unpacked
// /lib/modules/RELEASE) and returns their paths with dependencies first,
// following the "depends=" field of each module's .modinfo section.
func resolveModules(moddir string, want []string) ([]string, error) {
	index := make(map[string]string)
	err := filepath.WalkDir(moddir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			index[normModName(strings.TrimSuffix(d.Name(), ".ko"))] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan modules %s: %w", moddir, err)
	}
	var order []string
	seen := make(map[string]bool)
	var visit func(name string, depth int) error
	visit = func(name string, depth int) error {
		name = normModName(name)
		if seen[name] {
			return nil
		}
		if depth > 32 {
			return fmt.Errorf("module dependency loop at %s", name)
		}
		p, ok := index[name]
		if !ok {
			return fmt.Errorf("%w: %s (compressed or built in? only plain .ko files are supported)", errNoModule, name)
		}
		deps, err := modDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, depth+1); err != nil {
				return err
			}
		}
		seen[name] = true
		order = append(order, p)
		return nil
	}
	for _, w := range want {
		if err := visit(w, 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func normModName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// modDepends reads the depends= list from a module's .modinfo section.
func modDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s has no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s .modinfo: %w", path, err)
	}
	return parseModinfoDepends(data), nil
}

// parseModinfoDepends extracts the modules named by "depends=a,b" in a
// NUL-separated .modinfo section.
func parseModinfoDepends(data []byte) []string {
	var deps []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			for _, d := range strings.Split(string(v), ",") {
				if d = strings.TrimSpace(d); d != "" {
					deps = append(deps, d)
				}
			}
		}
	}
	return deps
}
