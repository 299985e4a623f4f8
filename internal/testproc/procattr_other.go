//go:build !linux

package testproc

import "syscall"

// procAttr: a new process group, so Kill reaches the children.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
