package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// listenNotify is a stand-in for systemd: a real unixgram socket.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _, err := c.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifySocketPathAndAbstract(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify.sock"),
		fmt.Sprintf("@edge-agent-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		t.Run(name[:1], func(t *testing.T) {
			l := listenNotify(t, name)
			n, err := newNotifier(env(map[string]string{"NOTIFY_SOCKET": name}))
			if err != nil || n == nil {
				t.Fatalf("newNotifier: %v, %v", n, err)
			}
			defer n.Close()
			if err := n.Notify("READY=1\nSTATUS=serving"); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, l); got != "READY=1\nSTATUS=serving" {
				t.Fatalf("got %q", got)
			}
			if err := n.Notify("STOPPING=1"); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, l); got != "STOPPING=1" {
				t.Fatalf("got %q", got)
			}
			n.Close()
			if err := n.Notify("READY=1"); err == nil {
				t.Fatal("Notify after Close succeeded")
			}
		})
	}
}

func TestNotifyOff(t *testing.T) {
	n, err := newNotifier(env(nil))
	if n != nil || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v", n, err)
	}
	if n.Notify("READY=1") != nil || n.Close() != nil { // a nil notifier ignores everything
		t.Fatal("nil notifier returned an error")
	}
	if _, err := newNotifier(env(map[string]string{"NOTIFY_SOCKET": "relative.sock"})); err == nil {
		t.Fatal("a relative NOTIFY_SOCKET was accepted")
	}
	if _, err := newNotifier(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "none")})); err == nil {
		t.Fatal("a missing notify socket was accepted")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		env   map[string]string
		every time.Duration
		ok    bool
		err   bool
	}{
		{nil, 0, false, false},
		{map[string]string{"WATCHDOG_USEC": "30000000"}, 15 * time.Second, true, false},
		{map[string]string{"WATCHDOG_USEC": "20000", "WATCHDOG_PID": pid}, 10 * time.Millisecond, true, false},
		{map[string]string{"WATCHDOG_USEC": "20000", "WATCHDOG_PID": "1"}, 0, false, false},
		{map[string]string{"WATCHDOG_USEC": "soon"}, 0, false, true},
		{map[string]string{"WATCHDOG_USEC": "-5"}, 0, false, true},
	}
	for _, tt := range tests {
		every, ok, err := watchdogInterval(env(tt.env))
		if every != tt.every || ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("%v: got %v %v %v", tt.env, every, ok, err)
		}
	}
}

func TestWatchdogPings(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify.sock")
	l := listenNotify(t, name)
	n, err := newNotifier(env(map[string]string{"NOTIFY_SOCKET": name}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { n.watchdog(ctx, 5*time.Millisecond, nil, func(err error) { t.Error(err) }) })
	for range 3 {
		if got := recv(t, l); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	cancel()
	wg.Wait() // returns once ctx is done
}
