package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/localapi"
)

// namedBroker is one [[broker]] table of a several-brokers config (issue 11).
type namedBroker struct {
	Name     string
	Provider string // default "mqtt"
	URL      string
	Publish  []string // its routes; nil: the key is left out (every topic)
	// Lines are more keys of the table, one per line; Tables are sub-tables written after them
	// ("[broker.cognito]\n…").
	Lines  string
	Tables string
}

// toml is the [[broker]] table. Every broker of the fault tests gets the fault keepalive and the fast
// reconnect of helpers_test.go unless Lines say otherwise (keys must not repeat).
func (b namedBroker) toml() string {
	var s strings.Builder
	provider := b.Provider
	if provider == "" {
		provider = "mqtt"
	}
	fmt.Fprintf(&s, "\n[[broker]]\nname = %q\nprovider = %q\nurl = %q\n", b.Name, provider, b.URL)
	if b.Publish != nil {
		q := make([]string, len(b.Publish))
		for i, f := range b.Publish {
			q[i] = fmt.Sprintf("%q", f)
		}
		fmt.Fprintf(&s, "publish = [%s]\n", strings.Join(q, ", "))
	}
	if !strings.Contains(b.Lines, "keepalive") {
		fmt.Fprintf(&s, "keepalive = %q\n", faultKeepaliveStr)
	}
	if !strings.Contains(b.Lines, "reconnect_") {
		fmt.Fprintf(&s, "reconnect_min = %q\nreconnect_max = %q\n", fastReconnectMin, fastReconnectMax)
	}
	s.WriteString(b.Lines)
	if b.Tables != "" {
		s.WriteString("\n" + b.Tables + "\n")
	}
	return s.String()
}

// newBrokersAgent is newAgent for a config of several [[broker]] tables; extra is appended at the
// end ([[subscribe]] tables, say).
func newBrokersAgent(t *testing.T, brokers []namedBroker, extra string) *agentProc {
	t.Helper()
	// newAgentWith owns the process, log and cleanup; its single-broker file is replaced at once.
	p := newAgentWith(t, "ws://127.0.0.1:9/mqtt", agentOptions{})
	p.writeBrokers(brokers, extra)
	return p
}

// writeBrokers (re)writes the agent's config file with brokers, keeping its state_dir and socket:
// what an operator does when moving a gateway to several brokers.
func (p *agentProc) writeBrokers(brokers []namedBroker, extra string) {
	p.t.Helper()
	var s strings.Builder
	fmt.Fprintf(&s, "client_id = \"e2e-%d\"\nstate_dir = %q\nsocket = %q\n", time.Now().UnixNano(), p.state, p.sock)
	for _, b := range brokers {
		s.WriteString(b.toml())
	}
	s.WriteString(extra)
	if err := os.WriteFile(p.cfg, []byte(s.String()), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// fullStatus reads GET /v1/status as the API declares it (localapi.Status, with Brokers).
func (p *agentProc) fullStatus() (localapi.Status, error) {
	var st localapi.Status
	return st, p.getStatus(&st)
}

// brokerStates indexes Status.Brokers by name.
func brokerStates(st localapi.Status) map[string]localapi.BrokerStatus {
	m := make(map[string]localapi.BrokerStatus, len(st.Brokers))
	for _, b := range st.Brokers {
		m[b.Name] = b
	}
	return m
}

// waitBrokers polls the status until cond holds for its brokers (at most timeout) and returns them.
func (p *agentProc) waitBrokers(timeout time.Duration, what string, cond func(map[string]localapi.BrokerStatus) bool) map[string]localapi.BrokerStatus {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := p.fullStatus()
		bs := brokerStates(st)
		if err == nil && cond(bs) {
			return bs
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out after %s waiting for %s (last error %v, status %s)", timeout, what, err, p.rawStatus())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allConnected is a waitBrokers condition: every named broker is listed and connected.
func allConnected(names ...string) func(map[string]localapi.BrokerStatus) bool {
	return func(bs map[string]localapi.BrokerStatus) bool {
		for _, n := range names {
			if bs[n].State != "connected" {
				return false
			}
		}
		return true
	}
}

// errorText is the "error" of a JSON error answer (the raw body if it is not one).
func errorText(a answer) string {
	var e localapi.ErrorAnswer
	if json.Unmarshal([]byte(a.body), &e) == nil && e.Error != "" {
		return e.Error
	}
	return a.body
}

// publishReq sends POST /v1/publish?query with body on the shared client (answer and do are
// attack_test.go's); a request without an answer fails the test.
func (p *agentProc) publishReq(query, contentType, body string) answer {
	p.t.Helper()
	a := do(p.httpClient(), http.MethodPost, "/v1/publish?"+query, contentType, strings.NewReader(body))
	if a.err != nil {
		p.t.Fatalf("POST /v1/publish?%s: %v", query, a.err)
	}
	return a
}

// getText reads GET path as text (for /metrics).
func (p *agentProc) getText(path string) string {
	p.t.Helper()
	a := do(p.httpClient(), http.MethodGet, path, "", nil)
	if a.err != nil || a.status != http.StatusOK {
		p.t.Fatalf("GET %s: %s", path, a)
	}
	return a.body
}

// arrivals is what a mosquitto subscriber got, as distinct "topic=payload" strings, sorted, without
// the probes of other mosquitto.Sub processes on the same broker.
func arrivals(msgs []mosquitto.Msg) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range msgs {
		if strings.HasPrefix(m.Topic, "edge-agent-test/") {
			continue
		}
		k := m.Topic + "=" + string(m.Payload)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// localStream is one GET /v1/subscribe stream read in the background.
type localStream struct {
	cancel context.CancelFunc
	done   chan struct{}
	status int
	err    error // why the stream ended early (not our cancel)

	mu    sync.Mutex
	lines []localapi.Message
	raw   []string
}

// openStream starts GET /v1/subscribe?query on its own connection (the shared client has a 15 s
// timeout that would end a stream) and returns once the answer's header arrived.
func (p *agentProc) openStream(query string) *localStream {
	p.t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", p.sock)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	s := &localStream{cancel: cancel, done: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/subscribe?"+query, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		p.t.Fatalf("GET /v1/subscribe?%s: %v", query, err)
	}
	s.status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		tr.CloseIdleConnections()
		p.t.Fatalf("GET /v1/subscribe?%s: %d %s", query, resp.StatusCode, b)
	}
	go func() {
		defer close(s.done)
		defer tr.CloseIdleConnections()
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			var m localapi.Message
			err := json.Unmarshal([]byte(line), &m)
			s.mu.Lock()
			s.raw = append(s.raw, line)
			if err == nil {
				s.lines = append(s.lines, m)
			} else if s.err == nil {
				s.err = fmt.Errorf("line %q: %w", line, err)
			}
			s.mu.Unlock()
		}
		if ctx.Err() == nil {
			s.mu.Lock()
			if s.err == nil {
				s.err = fmt.Errorf("the stream ended: %v", sc.Err())
			}
			s.mu.Unlock()
		}
	}()
	p.t.Cleanup(s.close)
	return s
}

// messages returns the lines read so far.
func (s *localStream) messages() []localapi.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]localapi.Message(nil), s.lines...)
}

// rawLines returns the lines verbatim, for failure messages.
func (s *localStream) rawLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.raw...)
}

// close ends the stream and waits for its reader. Safe to call twice.
func (s *localStream) close() {
	s.cancel()
	<-s.done
}

// payloadOf is a streamed message's payload (text or base64 left as is).
func payloadOf(m localapi.Message) string {
	switch {
	case m.Payload != nil:
		return *m.Payload
	case m.PayloadBase64 != nil:
		return "base64:" + *m.PayloadBase64
	}
	return ""
}
