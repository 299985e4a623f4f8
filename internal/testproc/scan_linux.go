//go:build linux

package testproc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// scan reads /proc/*/environ for the marker of the test binary with pid parent.
func scan(parent int) []string {
	want := []byte(markerVar + "=" + strconv.Itoa(parent) + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var left []string
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) {
			continue // gone, not ours, or a zombie (empty environ)
		}
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		args := strings.Join(strings.Fields(strings.ReplaceAll(string(cmdline), "\x00", " ")), " ")
		if len(args) > 200 {
			args = args[:200] + "…"
		}
		left = append(left, fmt.Sprintf("pid %s: %s", filepath.Base(d), args))
	}
	return left
}
