package localapi

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil"
)

// socketPathOfLen returns a path of exactly n bytes in a fresh directory under the temp dir.
func socketPathOfLen(t *testing.T, n int) string {
	t.Helper()
	dir := testutil.SocketDir(t)
	pad := n - len(dir) - len("/") - len(".sock")
	if pad < 1 {
		t.Skipf("temp dir %s too long for a %d-byte socket path", dir, n)
	}
	p := filepath.Join(dir, strings.Repeat("s", pad)+".sock")
	if len(p) != n {
		t.Fatalf("built a %d-byte path", len(p))
	}
	return p
}

// checkServes answers one line on ln and checks that a client at path gets it.
func checkServes(t *testing.T, ln *net.UnixListener, path string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = c.Write([]byte("hello\n"))
			c.Close()
		}
		done <- err
	}()
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("read %q %v", line, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Socket paths up to the 107 bytes Linux can bind work (they used to fail from about 97 bytes on,
// when the socket was bound under a longer temporary name); 108 bytes is an error naming the key
// and the limit.
func TestSocketPathLengths(t *testing.T) {
	for _, n := range []int{97, 100, 107} {
		for _, mode := range []os.FileMode{0o660, 0o666} {
			p := socketPathOfLen(t, n)
			ln, err := listenSocket(p, mode)
			if err != nil {
				t.Fatalf("%d-byte path, mode %04o: %v", n, mode, err)
			}
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != mode {
				t.Errorf("%d-byte path: mode %v, want socket %04o", n, fi.Mode(), mode)
			}
			checkServes(t, ln, p)
			ln.Close()
			if _, err := os.Lstat(p); err != nil {
				t.Errorf("closing the listener removed the socket (Run removes it): %v", err)
			}
			os.Remove(p)
		}
	}
	p := socketPathOfLen(t, 108)
	_, err := listenSocket(p, 0o660)
	if err == nil || !strings.Contains(err.Error(), "socket = ") || !strings.Contains(err.Error(), "108 bytes") ||
		!strings.Contains(err.Error(), "at most 107 bytes") {
		t.Fatalf("108-byte path: %v, want an error naming the socket key and the 107-byte limit", err)
	}
	if _, err := os.Lstat(p); err == nil {
		t.Fatal("a 108-byte socket file was created")
	}
}

// The socket file is created with at most the mode asked for (fchmod on the socket before bind), so
// there is no moment when it is wider: right after bind, with a umask of 022, a 0660 socket is 0640
// (it would be 0755 without the fchmod), and listenSocket then widens it to exactly 0660.
func TestSocketNeverWiderThanAsked(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, c := range []struct{ mode, atBind os.FileMode }{{0o660, 0o640}, {0o600, 0o600}, {0o666, 0o644}} {
		p := socketPathOfLen(t, 60)
		ln, err := bindUnix(p, c.mode)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.atBind {
			t.Errorf("mode %04o: socket file is %04o right after bind, want %04o (mode minus umask)", c.mode, got, c.atBind)
		}
		ln.Close()
		os.Remove(p)

		ln, err = listenSocket(p, c.mode)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(p); err != nil || fi.Mode().Perm() != c.mode {
			t.Errorf("after listenSocket: %v %v, want %04o", fi.Mode(), err, c.mode)
		}
		ln.Close()
		os.Remove(p)
	}
}

func TestSocketErrors(t *testing.T) {
	if _, err := listenSocket("", 0o660); err == nil {
		t.Error("empty path accepted")
	}
	// A path whose directory cannot be created names the socket.
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(filepath.Join(file, "agent.sock"), 0o660); err == nil {
		t.Error("socket under a regular file accepted")
	}
}
