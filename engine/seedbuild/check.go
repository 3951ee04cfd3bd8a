// Package seedbuild turns an official Plan 9 distribution (a 9legacy or
// Bell Labs 4e CD image, or a directory holding its tree) into what a seed
// build needs: it checks, before any VM starts, that the distribution has
// every piece the install uses, reads its replica log (dist/replica/
// plan9.log) and selects the files of a profile.
//
// The steps that follow (a boot disk, an installer VM whose root is the
// distribution served over 9P2000, the install typed at its console) live
// elsewhere; this package is the recipe's inputs for Plan 9 4e/9legacy
// (fossil+venti). A 9front recipe would have its own checks.
package seedbuild

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"9fans.net/go/plan9"

	"gridlord/engine/iso9660"
)

// LogPath is where a distribution keeps its replica log.
const LogPath = "dist/replica/plan9.log"

// Distribution is a checked Plan 9 distribution.
type Distribution struct {
	// FS is the distribution's tree.
	FS fs.FS
	// Kernel is the cpu kernel the installer boots: "386/9pccpuf" (cpu
	// with fossil and venti, 9legacy) or "386/9pccpu".
	Kernel string
	// Log is the parsed replica log.
	Log []LogEntry

	final map[string]LogEntry
}

// MissingError lists what a distribution lacks.
type MissingError struct {
	// Source names the distribution (a file or directory).
	Source string
	// Missing describes each missing piece.
	Missing []string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s is not a usable Plan 9 (4e/9legacy) distribution: missing %s", e.Source, strings.Join(e.Missing, "; "))
}

// requirement is a file the install needs: one of paths, or all of them
// when all is set.
type requirement struct {
	paths []string
	all   bool
	what  string
}

func requirements() []requirement {
	return []requirement{
		{paths: []string{"386/9load"}, what: "the boot loader"},
		{paths: []string{"386/9pccpuf", "386/9pccpu"}, what: "a cpu kernel"},
		{paths: []string{"386/pbslba"}, what: "the 9fat boot sector"},
		{paths: []string{"386/mbr"}, what: "the master boot record"},
		{paths: []string{"386/bin/rc"}, what: "the shell"},
		{paths: []string{"rc/lib/rcmain"}, what: "the shell's startup file"},
		{paths: []string{"386/bin/venti/venti", "386/bin/venti/fmtarenas", "386/bin/venti/fmtisect", "386/bin/venti/fmtindex", "386/bin/venti/conf", "386/bin/venti/sync"}, all: true, what: "venti's programs"},
		{paths: []string{"386/bin/fossil/fossil", "386/bin/fossil/flfmt", "386/bin/fossil/conf", "386/bin/fossil/last"}, all: true, what: "fossil's programs"},
		{paths: []string{"386/bin/disk/format"}, what: "the 9fat formatter"},
		{paths: []string{"386/bin/replica/applylog"}, what: "replica's programs"},
		{paths: []string{LogPath}, what: "the replica log"},
	}
}

// Open opens a distribution: an ISO 9660 image file or a directory. The
// closer releases the image.
func Open(source string) (fs.FS, func() error, error) {
	st, err := os.Stat(source)
	if err != nil {
		return nil, nil, fmt.Errorf("open distribution: %w", err)
	}
	if st.IsDir() {
		return os.DirFS(source), func() error { return nil }, nil
	}
	img, err := iso9660.OpenFile(source)
	if err != nil {
		return nil, nil, fmt.Errorf("open distribution: %w (give a Plan 9 CD image or a directory holding its tree)", err)
	}
	return img, img.Close, nil
}

// Check verifies that fsys (named source in messages) is a Plan 9
// 4e/9legacy distribution the install can use: it has every program and
// boot file the install runs, a parseable replica log, and every file the
// grid profile's part of that log names. Nothing else is read.
func Check(fsys fs.FS, source string) (*Distribution, error) {
	var missing []string
	d := &Distribution{FS: fsys}
	for _, r := range requirements() {
		var found []string
		var absent []string
		for _, p := range r.paths {
			fi, err := fs.Stat(fsys, p)
			if err == nil && !fi.IsDir() {
				found = append(found, p)
			} else {
				absent = append(absent, p)
			}
		}
		switch {
		case r.all && len(absent) > 0:
			missing = append(missing, fmt.Sprintf("%s (%s)", r.what, strings.Join(absent, ", ")))
		case len(found) == 0:
			missing = append(missing, fmt.Sprintf("%s (%s)", r.what, strings.Join(r.paths, " or ")))
		case r.what == "a cpu kernel":
			d.Kernel = found[0]
		}
	}
	if len(missing) > 0 {
		return nil, &MissingError{Source: source, Missing: missing}
	}
	f, err := fsys.Open(LogPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	d.Log, err = ParseLog(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", source, LogPath, err)
	}
	if len(d.Log) == 0 {
		return nil, &MissingError{Source: source, Missing: []string{"entries in " + LogPath + " (it is empty)"}}
	}
	d.final = map[string]LogEntry{}
	for _, e := range Final(d.Log) {
		d.final[e.Path] = e
	}
	// replica/pull stops at the first file it cannot copy: find them now.
	var absent []string
	n := 0
	for _, e := range ProfileGrid.Filter(Final(d.Log)) {
		fi, err := fs.Stat(fsys, e.ServerPath)
		if err == nil && fi.IsDir() == e.IsDir() {
			continue
		}
		n++
		if len(absent) < 5 {
			absent = append(absent, e.ServerPath)
		}
	}
	if n > 0 {
		return nil, &MissingError{Source: source, Missing: []string{fmt.Sprintf("%d of the files %s names (%s%s)", n, LogPath, strings.Join(absent, ", "), more(n, len(absent)))}}
	}
	return d, nil
}

func more(n, shown int) string {
	if n > shown {
		return ", …"
	}
	return ""
}

// Entry returns the log's final entry for path p.
func (d *Distribution) Entry(p string) (LogEntry, bool) {
	e, ok := d.final[p]
	return e, ok
}

// Meta applies the log's owners, modes and times to a served file's
// directory entry (ninep.FSOptions.Meta), so the installer sees the
// distribution as its log describes it even when the tree (a directory on
// the host, an ISO without Plan 9 owners) cannot say.
func (d *Distribution) Meta(name string, pd *plan9.Dir) {
	e, ok := d.final[name]
	if !ok {
		return
	}
	pd.Uid, pd.Gid, pd.Muid = e.UID, e.GID, e.UID
	pd.Mode = plan9.Perm(e.Mode)
	pd.Mtime, pd.Atime = e.Mtime, e.Mtime
}
