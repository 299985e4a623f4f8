//go:build !linux

package mosquitto

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
