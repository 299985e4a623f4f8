//go:build linux

package testproc

import "syscall"

// procAttr: a new process group (so Kill reaches the children) and SIGKILL from
// the kernel when the test binary dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
