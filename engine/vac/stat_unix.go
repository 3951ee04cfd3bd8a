//go:build unix

package vac

import (
	"io/fs"
	"os/user"
	"strconv"
	"sync"
	"syscall"
)

// statOwner returns the numeric owner, group and access time of fi.
func statOwner(fi fs.FileInfo) (uid, gid int, atime int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return int(st.Uid), int(st.Gid), atimeOf(st), true
}

// idNames caches user and group names looked up by id.
type idNames struct {
	mu     sync.Mutex
	users  map[int]string
	groups map[int]string
}

func newIDNames() *idNames {
	return &idNames{users: map[int]string{}, groups: map[int]string{}}
}

// user returns the name of uid, or the number as text if it has none.
func (n *idNames) user(uid int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.users[uid]; ok {
		return s
	}
	s := strconv.Itoa(uid)
	if u, err := user.LookupId(s); err == nil {
		s = u.Username
	}
	n.users[uid] = s
	return s
}

// group returns the name of gid, or the number as text if it has none.
func (n *idNames) group(gid int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.groups[gid]; ok {
		return s
	}
	s := strconv.Itoa(gid)
	if g, err := user.LookupGroupId(s); err == nil {
		s = g.Name
	}
	n.groups[gid] = s
	return s
}
