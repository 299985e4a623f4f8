package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testAgent is an Agent running in this process on a real Unix socket and a real bbolt file.
type testAgent struct {
	t      *testing.T
	a      *Agent
	sock   string
	state  string
	cancel context.CancelFunc
	done   chan error
	http   *http.Client
	logs   *testutil.Buffer
}

// startAgent runs an agent against brokerURL; extra is appended to the TOML config.
func startAgent(t *testing.T, brokerURL, extra string) *testAgent {
	t.Helper()
	state := t.TempDir()
	return startAgentAt(t, brokerURL, extra, state, testutil.SocketPath(t, "agent.sock"))
}

func startAgentAt(t *testing.T, brokerURL, extra, state, sock string) *testAgent {
	t.Helper()
	return startAgentWith(t, fmt.Sprintf(`
[broker]
provider  = "mqtt"
url       = %q
keepalive = "5s"
# Tests break the link on purpose: keep the reconnect backoff short so a wait never outlasts them.
reconnect_min = "50ms"
reconnect_max = "500ms"
%s
`, brokerURL, extra), state, sock)
}

// startAgentWith runs an agent whose config is the top-level keys followed by body.
func startAgentWith(t *testing.T, body, state, sock string) *testAgent {
	t.Helper()
	toml := fmt.Sprintf(`
client_id = "test-%d"
state_dir = %q
socket    = %q
%s
`, time.Now().UnixNano(), state, sock, body)
	cfg, err := config.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, toml)
	}
	return startAgentConfig(t, cfg, state, sock)
}

// startAgentConfig runs an agent with cfg, whose state_dir and socket are state and sock.
func startAgentConfig(t *testing.T, cfg *config.Config, state, sock string) *testAgent {
	t.Helper()
	logs := &testutil.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(cfg, log)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{t: t, a: a, sock: sock, state: state, cancel: cancel, done: make(chan error, 1), logs: logs}
	ready := make(chan struct{})
	go func() { ta.done <- a.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-ta.done:
		t.Fatalf("agent.Run failed before ready: %v\n%s", err, logs)
	case <-time.After(10 * time.Second):
		t.Fatalf("agent not ready after 10s\n%s", logs)
	}
	ta.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	t.Cleanup(func() { ta.stop() })
	return ta
}

// stop shuts the agent down and asserts a clean exit. Safe to call twice.
func (ta *testAgent) stop() {
	ta.t.Helper()
	if ta.cancel == nil {
		return
	}
	ta.cancel()
	ta.cancel = nil
	select {
	case err := <-ta.done:
		if err != nil {
			ta.t.Errorf("agent.Run returned %v\n%s", err, ta.logs)
		}
	case <-time.After(30 * time.Second):
		ta.t.Fatalf("agent did not stop within 30s\n%s", ta.logs)
	}
	ta.http.CloseIdleConnections()
}

type apiResult struct {
	status int
	body   map[string]any
	raw    string
}

func (ta *testAgent) do(method, path, ctype string, body []byte) apiResult {
	ta.t.Helper()
	req, err := http.NewRequest(method, "http://agent"+path, bytes.NewReader(body))
	if err != nil {
		ta.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := ta.http.Do(req)
	if err != nil {
		ta.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := apiResult{status: resp.StatusCode, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

func (ta *testAgent) publish(topic, payload string) apiResult {
	ta.t.Helper()
	return ta.do("POST", "/v1/publish?topic="+topic, "", []byte(payload))
}

func (ta *testAgent) status() localapi.Status {
	ta.t.Helper()
	r := ta.do("GET", "/v1/status", "", nil)
	if r.status != 200 {
		ta.t.Fatalf("status: %d %s", r.status, r.raw)
	}
	var st localapi.Status
	if err := json.Unmarshal([]byte(r.raw), &st); err != nil {
		ta.t.Fatal(err)
	}
	return st
}
