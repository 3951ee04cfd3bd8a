//go:build !unix

package vac

import "io/fs"

func statOwner(fi fs.FileInfo) (uid, gid int, atime int64, ok bool) { return 0, 0, 0, false }

// idNames is unused where files have no numeric owners.
type idNames struct{}

func newIDNames() *idNames            { return &idNames{} }
func (*idNames) user(uid int) string  { return "none" }
func (*idNames) group(gid int) string { return "none" }
