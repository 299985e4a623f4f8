package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
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

func TestStatusText(t *testing.T) {
	st := func(state, endpoint string, depth, dead int) localapi.Status {
		s := localapi.Status{BrokerStatus: localapi.BrokerStatus{State: state, Endpoint: endpoint}}
		s.Queue.Depth, s.Queue.DeadLetters = depth, dead
		return s
	}
	tests := []struct {
		st   localapi.Status
		want string
	}{
		{st("connected", "wss://broker.example.com/mqtt", 0, 0), "connected to wss://broker.example.com/mqtt, 0 queued"},
		{st("connecting", "ws://127.0.0.1:8080/mqtt", 12, 0), "connecting to ws://127.0.0.1:8080/mqtt, 12 queued"},
		{st("disconnected", "wss://h/mqtt", 3, 2), "disconnected from wss://h/mqtt, retrying, 3 queued, 2 dead letters"},
		{st("stopped", "wss://h/mqtt", 1, 0), "stopped, 1 queued"},
		// Never a signature, a token or a password, whatever the endpoint carries.
		{st("connected", "wss://a-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Signature=abc&X-Amz-Security-Token=tok", 0, 0),
			"connected to wss://a-ats.iot.eu-west-1.amazonaws.com/mqtt, 0 queued"},
		{st("connected", "wss://user:pw@h/mqtt#frag", 0, 0), "connected to wss://h/mqtt, 0 queued"},
		// Several brokers: each one's state.
		{localapi.Status{BrokerStatus: localapi.BrokerStatus{State: "degraded", Queue: localapi.QueueStatus{Depth: 50}}, Brokers: []localapi.BrokerStatus{
			{Name: "aws", State: "connected"}, {Name: "plant", State: "disconnected"}}},
			"degraded: aws connected, plant disconnected, 50 queued"},
	}
	for _, tt := range tests {
		if got := statusText(tt.st); got != tt.want {
			t.Errorf("%+v:\n got %q\nwant %q", tt.st, got, tt.want)
		}
	}
}

// STATUS= follows state changes at once and the queue depth at most once per gap (simulated clock).
func TestStatusThrottle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	since := t0
	th := statusThrottle{minGap: time.Second}
	step := func(at time.Duration, state string, depth int, want string) {
		t.Helper()
		st := localapi.Status{BrokerStatus: localapi.BrokerStatus{State: state, Endpoint: "wss://h/mqtt", Since: since}}
		st.Queue.Depth = depth
		got, ok := th.next(st, t0.Add(at))
		if !ok {
			got = "(nothing)"
		}
		if got != want {
			t.Fatalf("at %v %s/%d: got %q, want %q", at, state, depth, got, want)
		}
	}
	step(0, "connecting", 0, "connecting to wss://h/mqtt, 0 queued") // the first is sent at once
	step(250*time.Millisecond, "connecting", 0, "(nothing)")         // unchanged
	step(500*time.Millisecond, "connecting", 5, "(nothing)")         // depth within the gap
	step(750*time.Millisecond, "connecting", 9, "(nothing)")
	step(time.Second, "connecting", 9, "connecting to wss://h/mqtt, 9 queued") // gap over: the latest depth
	since = t0.Add(1100 * time.Millisecond)
	step(1100*time.Millisecond, "connected", 9, "connected to wss://h/mqtt, 9 queued") // state: at once
	step(1200*time.Millisecond, "connected", 0, "(nothing)")
	step(2200*time.Millisecond, "connected", 0, "connected to wss://h/mqtt, 0 queued")
	since = t0.Add(2300 * time.Millisecond) // lost and back between two polls: still a state change
	step(2300*time.Millisecond, "connected", 0, "connected to wss://h/mqtt, 0 queued")
	step(9*time.Second, "connected", 0, "(nothing)")
}

// statusRunner is a fakeRunner whose Status the test changes.
type statusRunner struct {
	fakeRunner
	mu sync.Mutex
	st localapi.Status
}

func (r *statusRunner) Status() localapi.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (r *statusRunner) set(state string, depth int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.State, r.st.Queue.Depth, r.st.Since = state, depth, time.Now()
}

// The daemon keeps STATUS= current over a real notify socket: connection state and queue depth,
// then STATUS=stopping on shutdown, with nothing after it.
func TestServeReportsStatus(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify.sock")
	l := listenNotify(t, name)
	r := &statusRunner{st: localapi.Status{BrokerStatus: localapi.BrokerStatus{Endpoint: "wss://broker.example.com/mqtt?X-Amz-Signature=s3cret"}}}
	r.set("connecting", 0)
	log, _ := newLogger(config.Log{Level: "info", Format: "text"}, &testutil.Buffer{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, r, "/run/x.sock", log, env(map[string]string{"NOTIFY_SOCKET": name})) }()

	want := func(text string) {
		t.Helper()
		for {
			got := recv(t, l)
			if strings.Contains(got, "s3cret") {
				t.Fatalf("a signature in %q", got)
			}
			if got == "STATUS="+text {
				return
			}
			if !strings.HasPrefix(got, "READY=1") && !strings.HasPrefix(got, "STATUS=connecting") {
				t.Fatalf("got %q while waiting for STATUS=%s", got, text)
			}
		}
	}
	want("connecting to wss://broker.example.com/mqtt, 0 queued")
	r.set("connected", 0)
	want("connected to wss://broker.example.com/mqtt, 0 queued")
	r.mu.Lock()
	r.st.Queue.Depth = 42 // a depth change alone
	r.mu.Unlock()
	want("connected to wss://broker.example.com/mqtt, 42 queued")
	cancel()
	for {
		got := recv(t, l)
		if got == "STOPPING=1\nSTATUS=stopping" {
			break
		}
		if !strings.HasPrefix(got, "STATUS=connected") {
			t.Fatalf("got %q, want STOPPING=1", got)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// serve has returned and waited for the reporter: nothing follows STATUS=stopping.
	l.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 512)
	if n, _, err := l.ReadFrom(buf); err == nil {
		t.Fatalf("after STOPPING=1: %q", buf[:n])
	}
}
