//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package vac

import "syscall"

func atimeOf(st *syscall.Stat_t) int64 { return st.Atimespec.Sec }
