// Package atomicfile replaces files atomically and durably: the new contents
// go to a uniquely named temporary file in the same directory, which is
// fsynced, closed and renamed over the target, and then the directory is
// fsynced. A crash leaves the target either as it was or complete in its new
// version, never a mix; concurrent writers of one target never share a
// temporary file, so the last rename wins with one whole version.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// tempSuffix ends every temporary file name; see tempPrefix.
const tempSuffix = ".tmp"

// tempPrefix starts the names of the temporary files of Writes to a file
// called base: "."+base+"." then os.CreateTemp's random digits, then
// tempSuffix (hidden on Unix, and never equal to a target's name).
func tempPrefix(base string) string { return "." + base + "." }

// Write replaces path with data (see WriteFunc). The file gets exactly the
// permission bits perm, whatever the umask.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteFunc replaces path with what fill writes to a new temporary file in
// path's directory (fill may also use WriteAt, but must not close it): the
// temporary file is given mode perm, fsynced, closed and renamed over path,
// then the directory is fsynced (see SyncDir). On any failure the temporary
// file is removed and path is left as it was, except that a failed
// directory fsync is reported after the rename has happened. Errors name
// path.
func WriteFunc(path string, perm os.FileMode, fill func(f *os.File) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*"+tempSuffix)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("write %s: %w", path, cerr)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// RemoveTemps removes the temporary files that Writes to path left behind
// when the process died in the middle of one. Call it only when no Write to
// path can be running (for example while holding the lock that owns the
// directory): it would remove that Write's temporary file too.
func RemoveTemps(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("remove temporary files of %s: %w", path, err)
	}
	prefix := tempPrefix(base)
	var errs []error
	for _, e := range ents {
		name := e.Name()
		digits, ok := strings.CutPrefix(name, prefix)
		if ok {
			digits, ok = strings.CutSuffix(digits, tempSuffix)
		}
		if !ok || !e.Type().IsRegular() || digits == "" || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove temporary files of %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs directory dir so that file creations, renames and
// removals in it are durable. Where the OS cannot fsync a directory
// (Windows, whose file systems journal renames themselves) it does nothing
// more than check that dir opens; every other error is returned.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !isSyncUnsupported(err) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// isSyncUnsupported reports errors from fsync on a directory that mean the
// OS does not support it.
func isSyncUnsupported(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && (errors.Is(err, errors.ErrUnsupported) || pe.Op == "sync" && runtime.GOOS == "windows")
}
