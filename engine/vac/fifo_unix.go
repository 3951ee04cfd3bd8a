//go:build unix

package vac

import "syscall"

func mkfifo(path string, perm uint32) error { return syscall.Mkfifo(path, perm) }
