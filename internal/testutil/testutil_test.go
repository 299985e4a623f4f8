package testutil

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	WaitFor(t, 10*time.Second, "the third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

// failTB records Fatalf instead of ending the goroutine, so WaitFor's failure can be observed.
type failTB struct {
	testing.TB
	msg string
}

func (f *failTB) Helper() {}
func (f *failTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestWaitForFailsNamingWhat(t *testing.T) {
	f := &failTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				panic(r)
			}
		}()
		WaitFor(f, 30*time.Millisecond, "godot", func() bool { return false })
	}()
	if !strings.Contains(f.msg, "waiting for godot") || !strings.Contains(f.msg, "30ms") {
		t.Fatalf("message %q does not name the condition and the timeout", f.msg)
	}
}

func TestBufferConcurrentWriters(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintln(&b, "line")
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := b.Count("line\n"); got != 800 {
		t.Fatalf("Count = %d, want 800", got)
	}
}

func TestSocketPathIsShortAndRemoved(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		p := SocketPath(t, "agent.sock")
		if len(p) >= 108 {
			t.Fatalf("socket path %q is %d bytes, over the 108-byte limit", p, len(p))
		}
		dir = strings.TrimSuffix(p, "/agent.sock")
		if _, err := os.Stat(dir); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("socket directory %s left behind: %v", dir, err)
	}
}
