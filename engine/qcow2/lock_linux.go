package qcow2

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// QEMU's image locking (block/file-posix.c, raw_apply_lock_bytes): a user
// of an image holds a shared OFD lock on byte 100+i for each permission i it
// uses and on byte 200+i for each permission it does not let others have.
const (
	lockPermBase   = 100
	lockSharedBase = 200
	permRead       = 0 // BLK_PERM_CONSISTENT_READ
	permWrite      = 1 // BLK_PERM_WRITE
	permResize     = 3 // BLK_PERM_RESIZE
)

// lockForWrite takes the locks QEMU would take to write f without sharing
// write access, after checking that no other user (such as a running QEMU)
// holds a conflicting one. The locks last until f is closed.
func lockForWrite(f *os.File) error {
	if err := checkLocks(f); err != nil {
		return err
	}
	fd := int(f.Fd())
	for _, off := range []int64{lockPermBase + permRead, lockPermBase + permWrite, lockSharedBase + permWrite, lockSharedBase + permResize} {
		fl := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: off, Len: 1}
		if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &fl); err != nil {
			return fmt.Errorf("%w: lock byte %d: %v", ErrInUse, off, err)
		}
	}
	return nil
}

// checkLocks reports (as ErrInUse) whether another user holds a lock that
// conflicts with writing f. It takes no locks.
func checkLocks(f *os.File) error {
	fd := int(f.Fd())
	test := func(off int64) (bool, error) {
		fl := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
		if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &fl); err != nil {
			return false, err
		}
		return fl.Type != unix.F_UNLCK, nil
	}
	// We want read and write: nobody may have unshared them. We do not
	// share write or resize: nobody may be using them.
	checks := []struct {
		off  int64
		what string
	}{
		{lockSharedBase + permRead, "read"}, {lockSharedBase + permWrite, "write"},
		{lockPermBase + permWrite, "write"}, {lockPermBase + permResize, "resize"},
	}
	for _, c := range checks {
		locked, err := test(c.off)
		if err != nil {
			return fmt.Errorf("test image lock: %w", err)
		}
		if locked {
			return fmt.Errorf("%w: another program (a running QEMU?) holds the %s lock", ErrInUse, c.what)
		}
	}
	return nil
}
