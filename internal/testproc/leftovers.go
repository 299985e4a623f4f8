package testproc

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leftoverGrace is how long Leftovers waits for processes that were just sent
// SIGKILL (a killed group's members are reaped by init, not by us).
const leftoverGrace = 5 * time.Second

// Leftovers lists the live processes (pid and command line) that this test binary
// started, directly or through its children, and that are still running after up
// to 5 s. A process that detached (a daemon) is found too: it inherited the
// marker. Zombies are not listed.
func Leftovers() []string {
	deadline := time.Now().Add(leftoverGrace)
	for {
		left := scan(os.Getpid())
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		t := time.NewTimer(50 * time.Millisecond)
		<-t.C
	}
}

// VerifyTestMain is for a TestMain: it runs the tests, then each cleanup (e.g. a
// shared broker's Close), then fails the run if a child process (Leftovers) or a
// goroutine (goleak) is left, and exits.
func VerifyTestMain(m *testing.M, cleanups ...func()) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if left := Leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "testproc: processes left behind by the tests:\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
		code = 1
	}
	os.Exit(code)
}
