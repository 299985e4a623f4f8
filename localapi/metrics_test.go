package localapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil"
)

// fleetBackend reports a status with every labelled and optional metric filled in.
type fleetBackend struct{ memBackend }

func (b *fleetBackend) Status() Status {
	return Status{Version: `1.2.3 "rc"`, Commit: "abc123", UptimeSeconds: 42,
		InboundDropped: map[string]uint64{"slow_subscriber": 2},
		BrokerStatus: BrokerStatus{State: "connected", Provider: "mqtt", Protocol: "3.1.1",
			Reconnects: map[string]uint64{"network": 57, "keepalive": 1, "endpoint": 0},
			Queue:      QueueStatus{Depth: 3, OldestAgeSeconds: 12.5}}}
}

// checkExposition checks text against the Prometheus text exposition format (0.0.4) by hand:
// each family has one HELP and one TYPE line before its samples, names and labels are well
// formed, values are numbers and no series appears twice. It returns the samples by series.
func checkExposition(t *testing.T, text string) map[string]float64 {
	t.Helper()
	var (
		name   = `[a-zA-Z_:][a-zA-Z0-9_:]*`
		helpRE = regexp.MustCompile(`^# HELP (` + name + `) \S.*$`)
		typeRE = regexp.MustCompile(`^# TYPE (` + name + `) (counter|gauge|histogram|summary|untyped)$`)
		// name, optional {label="value",...}, value
		sampleRE = regexp.MustCompile(`^(` + name + `)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*)?\})? (\S+)$`)
	)
	help, typed := map[string]bool{}, map[string]bool{}
	samples := map[string]float64{}
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("exposition does not end with a line feed")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
			m := helpRE.FindStringSubmatch(line)
			if m == nil || help[m[1]] {
				t.Fatalf("line %d: bad or repeated HELP: %q", i+1, line)
			}
			help[m[1]] = true
		case strings.HasPrefix(line, "# TYPE "):
			m := typeRE.FindStringSubmatch(line)
			if m == nil || typed[m[1]] {
				t.Fatalf("line %d: bad or repeated TYPE: %q", i+1, line)
			}
			typed[m[1]] = true
		default:
			m := sampleRE.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %d: not a sample: %q", i+1, line)
			}
			if !typed[m[1]] || !help[m[1]] {
				t.Fatalf("line %d: sample of %s before its HELP and TYPE", i+1, m[1])
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				t.Fatalf("line %d: value %q: %v", i+1, m[3], err)
			}
			series := m[1] + m[2]
			if _, dup := samples[series]; dup {
				t.Fatalf("line %d: series %s twice", i+1, series)
			}
			samples[series] = v
		}
	}
	return samples
}

func startMetrics(t *testing.T, b Backend) (*Server, *Client, string) {
	t.Helper()
	var srv *Server
	c := startServer(t, b, nil, func(s *Server) { srv = s })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeMetrics(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMetrics: %v", err)
		}
	})
	return srv, c, ln.Addr().String()
}

func TestMetricsOverTCP(t *testing.T) {
	_, c, addr := startMetrics(t, &fleetBackend{})
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get("GET", "/metrics")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	samples := checkExposition(t, body)
	for series, want := range map[string]float64{
		`edge_agent_reconnects_total{reason="network"}`:                                                       57,
		`edge_agent_reconnects_total{reason="keepalive"}`:                                                     1,
		`edge_agent_reconnects_total{reason="endpoint"}`:                                                      0,
		`edge_agent_seconds_since_last_delivery`:                                                              42, // none yet: since start
		`edge_agent_queue_oldest_age_seconds`:                                                                 12.5,
		`edge_agent_inbound_dropped_total{reason="slow_subscriber"}`:                                          2,
		`edge_agent_build_info{version="1.2.3 \"rc\"",commit="abc123",goversion="` + runtime.Version() + `"}`: 1,
		`edge_agent_metrics_connections_refused_total`:                                                        0,
		`edge_agent_mqtt_protocol_info{protocol="3.1.1"}`:                                                     1,
	} {
		if got, ok := samples[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	// The same text as on the socket.
	sresp, err := c.Do(context.Background(), "GET", "/metrics", "", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock, _ := io.ReadAll(sresp.Body)
	sresp.Body.Close()
	// Same text but for the socket's open connections, which the socket scrape itself is one of.
	conns := regexp.MustCompile(`(?m)^edge_agent_api_connections \d+$`)
	if conns.ReplaceAllString(string(sock), "") != conns.ReplaceAllString(body, "") {
		t.Fatalf("TCP and socket /metrics differ:\n%s\n---\n%s", body, sock)
	}
	// Nothing else is reachable.
	for _, path := range []string{"/", "/v1/status", "/v1/publish?topic=x", "/v1/deadletters", "/metrics/", "/debug/pprof/"} {
		if resp, _ := get("GET", path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "HEAD", "OPTIONS"} {
		resp, _ := get(m, "/metrics")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
			t.Errorf("%s /metrics: %d Allow %q, want 405 Allow GET", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	// Headers are bounded.
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 2*metricsMaxHeaderBytes))
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("big header: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// The listener serves at most metricsMaxConns connections; one more is closed and counted, and a
// scrape works again once they go.
func TestMetricsConnectionLimit(t *testing.T) {
	srv, _, addr := startMetrics(t, &fleetBackend{})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range metricsMaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	fmt.Fprintf(extra, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection over the limit answered (%d bytes)", n)
	}
	testutil.WaitFor(t, 5*time.Second, "refused counted", func() bool { return srv.metricsRefused.Load() == 1 })
	// A slot is freed when a held connection goes; the next scrape is served.
	held[0].Close()
	held = held[1:]
	var resp *http.Response
	testutil.WaitFor(t, 5*time.Second, "scrape after a slot freed", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err = http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
