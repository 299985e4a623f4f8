package testproc

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { VerifyTestMain(m) }

// Kill reaches the whole process group: a grandchild in the group dies with the
// child, and Leftovers finds nothing.
func TestKillReachesGroup(t *testing.T) {
	p, err := Start(nil, "", nil, "sh", "-c", "sleep 600 & wait")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(scan(os.Getpid())) == 2 }, "the shell and its sleep")
	p.Kill()
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if left := Leftovers(); len(left) != 0 {
		t.Fatalf("left after Kill: %v", left)
	}
}

// Leftovers finds a daemon that left the process group (setsid), by the marker
// in its environment.
func TestLeftoversFindsDaemon(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	p, err := Start(nil, "", nil, "sh", "-c", "setsid sh -c 'echo $$ > "+pidFile+"; exec sleep 600' </dev/null >/dev/null 2>&1 &")
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	var pid int
	var left []string
	// The shell writes the pid file before it execs sleep: wait for the exec, or the scan may
	// still see the shell's command line.
	waitFor(t, func() bool {
		data, _ := os.ReadFile(pidFile)
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		left = scan(os.Getpid())
		return err == nil && len(left) == 1 && strings.HasPrefix(left[0], "pid "+strconv.Itoa(pid)+": sleep 600")
	}, "the daemon running sleep 600")
	t.Logf("found: %v", left)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if left := Leftovers(); len(left) != 0 {
		t.Fatalf("left after killing the daemon: %v", left)
	}
}

// Stop sends the signal first; WaitReady reports a process that exits early.
func TestStopAndWaitReady(t *testing.T) {
	p, err := Start(nil, "", nil, "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	p.Stop(syscall.SIGTERM, 5*time.Second)
	var ee interface{ Sys() any }
	if !errors.As(p.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("Err() = %v, want killed by SIGTERM", p.Err())
	}

	q, err := Start(nil, "", nil, "sh", "-c", "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	err = q.WaitReady(5*time.Second, func() error { return errors.New("never ready") })
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitReady = %v, want ErrExited", err)
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 5 s: %v", what, scan(os.Getpid()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
