package testproc

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// FreePorts returns n distinct free loopback TCP ports. It holds all n listeners
// open at once, then closes them: another process may still take one before the
// caller binds it, so callers retry with new ports when a bind fails.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Tail returns the last lines of each file, each headed by its name, for failure
// messages. Missing files are left out.
func Tail(lines int, paths ...string) string {
	var sb strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		parts := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(parts) > lines {
			parts = parts[len(parts)-lines:]
		}
		fmt.Fprintf(&sb, "==> %s <==\n%s\n", filepath.Base(p), strings.Join(parts, "\n"))
	}
	return sb.String()
}
