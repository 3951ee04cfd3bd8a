//go:build !unix

package main

import "os/exec"

// detach leaves cmd as it is: on Windows a child already outlives its
// parent.
func detach(cmd *exec.Cmd) {}
