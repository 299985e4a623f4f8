package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrepareJSONLoggerAndWarnings(t *testing.T) {
	p := writeConfig(t, `client_id = "gw"
[broker]
provider = "aws-iot"
url = "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt"
keepalive = "5s"
[log]
level = "debug"
format = "json"
`)
	var out bytes.Buffer
	cfg, log, err := prepare(p, &out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Broker.Region != "eu-west-1" || cfg.ClientID != "gw" {
		t.Fatalf("config %+v", cfg)
	}
	log.Debug("debug is on")
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		recs = append(recs, m)
	}
	if len(recs) != 3 {
		t.Fatalf("log:\n%s", out.String())
	}
	if recs[0]["level"] != "WARN" || !strings.Contains(recs[0]["msg"].(string), "agent.toml:5: broker.keepalive: 5s is below the AWS IoT minimum; using 30s") {
		t.Fatalf("config warning not logged: %v", recs[0])
	}
	if recs[1]["msg"] != "edge-agent starting" || recs[1]["provider"] != "aws-iot" || recs[2]["msg"] != "debug is on" {
		t.Fatalf("log: %v", recs)
	}
}

func TestNewLogger(t *testing.T) {
	var out bytes.Buffer
	log, err := newLogger(config.Log{Level: "warn", Format: "text"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	if s := out.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "level=WARN msg=shown k=v") {
		t.Fatalf("text log %q", s)
	}
	if _, err := newLogger(config.Log{Level: "loud", Format: "text"}, &out); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, err := newLogger(config.Log{Level: "info", Format: "xml"}, &out); err == nil {
		t.Fatal("bad format accepted")
	}
}

func TestRunConfigErrors(t *testing.T) {
	r := runCLI(t, nil, "run", "--config", filepath.Join(t.TempDir(), "missing.toml"))
	r.want(t, 1)
	if !strings.Contains(r.stderr, "edge-agent run: read config:") || !strings.Contains(r.stderr, "missing.toml") {
		t.Fatalf("%q", r.stderr)
	}
	p := writeConfig(t, "[broker]\nurl = \"ws://h/mqtt\"\nurll = 1\n")
	r = runCLI(t, nil, "run", "-c", p)
	r.want(t, 1)
	if r.stderr != "edge-agent run: "+p+":3: unknown key broker.urll\n" {
		t.Fatalf("%q", r.stderr)
	}
}

// fakeRunner stands in for *agent.Agent: it is ready at once and serves
// until ctx is done, then returns err.
type fakeRunner struct {
	err       error
	unhealthy *atomic.Bool // nil = always healthy
}

func (f fakeRunner) Healthy(context.Context) error {
	if f.unhealthy != nil && f.unhealthy.Load() {
		return errors.New("queue committer stuck")
	}
	return nil
}

func (f fakeRunner) Run(ctx context.Context, ready func()) error {
	ready()
	ready() // a second call must not send READY=1 twice
	<-ctx.Done()
	return f.err
}

func TestServeNotifiesSystemd(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify.sock")
	l := listenNotify(t, name)
	getenv := env(map[string]string{"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "10000"}) // ping every 5ms
	var logs bytes.Buffer
	log, _ := newLogger(config.Log{Level: "info", Format: "text"}, &logs)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, fakeRunner{}, "/run/x.sock", log, getenv) }()

	if got := recv(t, l); got != "READY=1\nSTATUS=serving on /run/x.sock" {
		t.Fatalf("first notification %q", got)
	}
	for range 2 {
		if got := recv(t, l); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want watchdog pings after READY", got)
		}
	}
	cancel() // what SIGTERM does
	for {
		got := recv(t, l)
		if got == "WATCHDOG=1" {
			continue // a ping that raced the cancel
		}
		if got != "STOPPING=1\nSTATUS=stopping" {
			t.Fatalf("got %q, want STOPPING=1", got)
		}
		break
	}
	if err := <-errc; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !strings.Contains(logs.String(), "edge-agent stopped cleanly") {
		t.Fatalf("log %q", logs.String())
	}

	// A failing agent: the error comes back, systemd hears it in STATUS.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err := serve(ctx, fakeRunner{err: errors.New("disk on fire")}, "/run/x.sock", log, env(map[string]string{"NOTIFY_SOCKET": name}))
	if err == nil || err.Error() != "disk on fire" {
		t.Fatalf("serve: %v", err)
	}
	seen := map[string]bool{}
	for range 3 {
		seen[recv(t, l)] = true
	}
	if !seen["STATUS=failed: disk on fire"] || !seen["STOPPING=1\nSTATUS=stopping"] {
		t.Fatalf("notifications %v", seen)
	}
}

// The watchdog is pinged only while the agent reports itself healthy, so systemd restarts a stuck one.
func TestWatchdogOnlyWhileHealthy(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify.sock")
	l := listenNotify(t, name)
	getenv := env(map[string]string{"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "20000"}) // check every 10ms
	var logs testutil.Buffer
	log, _ := newLogger(config.Log{Level: "info", Format: "text"}, &logs)
	unhealthy := new(atomic.Bool)
	unhealthy.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, fakeRunner{unhealthy: unhealthy}, "/run/x.sock", log, getenv) }()
	if got := recv(t, l); !strings.HasPrefix(got, "READY=1") {
		t.Fatalf("first notification %q", got)
	}
	// Unhealthy: no ping for 10 intervals.
	l.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 512)
	if n, _, err := l.ReadFrom(buf); err == nil {
		t.Fatalf("got %q while unhealthy, want no watchdog ping", buf[:n])
	}
	l.SetReadDeadline(time.Time{})
	if !strings.Contains(logs.String(), "queue committer stuck") {
		t.Fatalf("log does not say why the watchdog is not pinged: %q", logs.String())
	}
	unhealthy.Store(false)
	if got := recv(t, l); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want pings once healthy", got)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestServeWithoutSystemd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var logs bytes.Buffer
	log, _ := newLogger(config.Log{Level: "info", Format: "text"}, &logs)
	if err := serve(ctx, fakeRunner{}, "/s", log, env(nil)); err != nil {
		t.Fatal(err)
	}
}
