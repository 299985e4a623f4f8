package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil"
)

// freePort returns a TCP port on 127.0.0.1 that nothing listens on (just now).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A real agent (the run command, in this process) against a broker port nothing listens on, with
// reconnects every 100–200 ms, its stderr a real file that JOURNAL_STREAM names, as systemd sets
// it. Issue 12: 20 s against a dead broker write at most a dozen lines. The repeat limit writes a
// kind's first 3 lines and then one a minute, so any run shorter than a minute writes the same
// number of failure lines; 5 s (~30 attempts) shows the bound of 20 s (~130 attempts) honestly.
// The scrape of metrics.listen during the run counts the attempts the log held back.
func TestDeadBrokerLogIsBoundedUnderJournald(t *testing.T) {
	dir := t.TempDir()
	sock := testutil.SocketPath(t, "agent.sock")
	dead, metricsAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`client_id = "gw-{env:EDGE_TEST_SITE}-{hostname}"
state_dir = %q
socket = %q
[broker]
url = "ws://%s/mqtt"
reconnect_min = "100ms"
reconnect_max = "200ms"
[metrics]
listen = %q
`, filepath.Join(dir, "state"), sock, dead, metricsAddr))
	t.Setenv("EDGE_TEST_SITE", "plant7")

	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(stderr.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))

	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	exec := setupRun(fs)
	if err := fs.Parse([]string{"--config", cfg}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- exec(ctx, &cli{name: "edge-agent run", stdin: strings.NewReader(""), stdout: io.Discard, stderr: stderr,
			getenv: func(string) string { return "" }})
	}()

	// Scrape the metrics port until the run has lasted 5 s.
	start := time.Now()
	var scraped string
	for time.Since(start) < 5*time.Second {
		if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			scraped = string(b)
		}
		select {
		case c := <-code:
			t.Fatalf("agent exited %d early:\n%s", c, readFile(t, stderr.Name()))
		case <-time.After(500 * time.Millisecond):
		}
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d:\n%s", c, readFile(t, stderr.Name()))
	}
	http.DefaultClient.CloseIdleConnections()

	log := readFile(t, stderr.Name())
	t.Logf("journald-format log of a 5 s run against a dead broker:\n%s", log)
	m := regexp.MustCompile(`(?m)^edge_agent_reconnects_total\{reason="network"\} (\d+)$`).FindStringSubmatch(scraped)
	if m == nil {
		t.Fatalf("no reconnects_total{reason=\"network\"} in the scrape:\n%s", scraped)
	}
	attempts, _ := strconv.Atoi(m[1])
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	failures := strings.Count(log, "mqtt connection attempt failed")
	t.Logf("%d failed attempts scraped before the end, %d log lines, %d of them about failed attempts", attempts, len(lines), failures)
	if attempts < 15 {
		t.Fatalf("only %d failed attempts in 5 s with reconnects every 100–200 ms", attempts)
	}
	if failures > 3 || len(lines) > 12 {
		t.Fatalf("%d lines (%d about failed attempts), want at most 12 (3)", len(lines), failures)
	}
	for _, l := range lines {
		if !regexp.MustCompile(`^<[3467]>level=`).MatchString(l) || strings.Contains(l, "time=") {
			t.Fatalf("not the journald form: %q", l)
		}
	}
	if !strings.Contains(log, "client_id=gw-plant7-") {
		t.Fatalf("client_id template not expanded in the log")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
