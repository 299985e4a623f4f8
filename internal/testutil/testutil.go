// Package testutil holds the helpers that tests across the module share: polling for a condition,
// a log sink safe for concurrent writers, and a short directory for Unix sockets.
//
// Only _test.go files import it (cmd/agent's import-graph test checks that no package of the
// module does); nothing here starts a goroutine.
package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond until it holds, and fails the test naming what it waited for once timeout has
// passed. It polls often at first (1 ms) and less often as the wait grows (at most every 20 ms), so a
// quick condition is seen at once and a slow one costs little. Call it from the test's goroutine.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// Buffer is a bytes.Buffer that a logger (or a child process) may write while the test reads it.
// The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Count returns how many times s occurs in what was written so far.
func (b *Buffer) Count(s string) int { return strings.Count(b.String(), s) }

// SocketDir returns a new empty directory, removed when the test ends, whose path is short enough for
// a Unix socket in it: a socket path is limited to 108 bytes, and t.TempDir() can be longer.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ea")
	if err != nil {
		t.Fatalf("socket directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// SocketPath returns the path name in a new SocketDir.
func SocketPath(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(SocketDir(t), name)
}
