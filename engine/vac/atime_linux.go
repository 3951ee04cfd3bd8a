//go:build linux

package vac

import "syscall"

func atimeOf(st *syscall.Stat_t) int64 { return st.Atim.Sec }
