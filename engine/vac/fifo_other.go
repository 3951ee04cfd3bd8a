//go:build !unix

package vac

import "errors"

func mkfifo(path string, perm uint32) error {
	return errors.New("named pipes are not supported on this system")
}
