//go:build linux

package mosquitto

import "syscall"

// procAttr makes the kernel SIGKILL the child when the test binary dies, so a
// panicking or killed test does not leave a broker behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
