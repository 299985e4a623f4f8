package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
)

// stalledUpload opens a raw connection to the agent and sends a request's headers and the first
// bytes of its body, then nothing more.
func stalledUpload(t *testing.T, sock, path string, length int) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: agent\r\nContent-Length: %d\r\n\r\n0123456789", path, length)
	return c
}

// The body budget: a request it cannot cover is answered 503 with Retry-After, naming the key, and
// counted; an over-limit one is still 413; once the holder goes, the same request is accepted.
func TestBodyBudgetRefusesWith503(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "[api]\nmax_payload = \"64KiB\"\nmax_batch_bytes = \"64KiB\"\nbody_budget = \"256KiB\"\n")
	hold := stalledUpload(t, ta.sock, "/v1/publish?topic=budget/held", 64<<10)
	testutil.WaitFor(t, 10*time.Second, "the stalled upload to hold its reservation", func() bool { return ta.status().LocalAPI.BodyBudgetInUse > 0 })

	big := strings.Repeat("b", 64<<10)
	r := ta.do("POST", "/v1/publish?topic=budget/x", "", []byte(big))
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.raw, "api.body_budget") {
		t.Fatalf("publish past the budget: %d %s", r.status, r.raw)
	}
	batch := strings.Repeat(`{"topic":"budget/y","payload":"`+strings.Repeat("y", 1000)+`"}`+"\n", 30)
	r = ta.do("POST", "/v1/publish", "application/x-ndjson", []byte(batch))
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.raw, "api.body_budget") {
		t.Fatalf("batch past the budget: %d %s", r.status, r.raw)
	}
	// Retry-After is set (ta.do drops headers: ask once more by hand).
	req, _ := http.NewRequest("POST", "http://agent/v1/publish?topic=budget/x", strings.NewReader(big))
	resp, err := ta.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("503 without Retry-After: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Small requests still fit; an over-limit one is 413, not 503.
	if r := ta.publish("budget/small", "s"); r.status != http.StatusAccepted {
		t.Fatalf("small publish: %d %s", r.status, r.raw)
	}
	if r := ta.publish("budget/x", big+"!"); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over max_payload: %d %s", r.status, r.raw)
	}
	st := ta.status()
	if st.LocalAPI.BodyBudgetRefused < 3 || st.LocalAPI.BodyBudget != 256<<10 || st.Queue.Depth+int(st.Delivered) < 1 {
		t.Fatalf("status: %+v", st.LocalAPI)
	}
	m := ta.do("GET", "/metrics", "", nil)
	if !strings.Contains(m.raw, fmt.Sprintf("edge_agent_api_body_budget_refused_total %d", st.LocalAPI.BodyBudgetRefused)) {
		t.Fatalf("metrics lack the refusals:\n%s", m.raw)
	}
	hold.Close()
	testutil.WaitFor(t, 10*time.Second, "the reservation to be released", func() bool { return ta.status().LocalAPI.BodyBudgetInUse == 0 })
	if r := ta.publish("budget/x", big); r.status != http.StatusAccepted {
		t.Fatalf("after release: %d %s", r.status, r.raw)
	}
}

// Query strings: ';' is refused everywhere (Go would drop the pair silently), as are malformed escapes.
func TestQuerySemicolonRefused(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "")
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/publish?topic=a&qos=0;"},
		{"POST", "/v1/publish?topic=a;qos=0"},
		{"GET", "/v1/subscribe?topic=a;b"},
		{"GET", "/v1/deadletters?after=1;limit=2"},
		{"GET", "/v1/status?;"},
		{"POST", "/v1/publish?topic=a%zz"},
		{"POST", "/v1/publish?topic=a&qos=0&qos=1"},
		{"GET", "/v1/deadletters?limit=1&limit=2"},
	} {
		r := ta.do(c.method, c.path, "", []byte("x"))
		if r.status != http.StatusBadRequest {
			t.Errorf("%s %s: %d %s, want 400", c.method, c.path, r.status, r.raw)
		} else if strings.Contains(c.path, ";") && !strings.Contains(r.raw, "';' is not a query separator") {
			t.Errorf("%s %s: %s", c.method, c.path, r.raw)
		}
	}
	if st := ta.status(); st.Queue.Depth != 0 || st.Accepted != 0 {
		t.Fatalf("refused requests stored messages: %+v", st.Queue)
	}
}

// NDJSON text that encoding/json would silently turn into U+FFFD is refused, naming the line.
func TestNDJSONInvalidTextNamesLine(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "")
	ok := `{"topic":"t/ok","payload":"fine"}` + "\n"
	for _, c := range []struct{ name, line, want string }{
		{"invalid utf-8", "{\"topic\":\"t/x\",\"payload\":\"bin\xff\xfe\"}", "payload_base64"},
		{"lone high surrogate", `{"topic":"t/x","payload":"\ud800"}`, "surrogate"},
		{"lone low surrogate", `{"topic":"t/x","payload":"\udc00"}`, "surrogate"},
		{"unpaired high", `{"topic":"t/x","payload":"\ud800x"}`, "surrogate"},
	} {
		r := ta.do("POST", "/v1/publish", "application/x-ndjson", []byte(ok+c.line+"\n"+ok))
		msg, _ := r.body["error"].(string)
		if r.status != 400 || !strings.HasPrefix(msg, "line 2: ") || !strings.Contains(msg, c.want) || !strings.Contains(msg, "nothing was stored") {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
	}
	if st := ta.status(); st.Queue.Depth != 0 || st.Accepted != 0 {
		t.Fatalf("refused batches stored messages: %+v", st.Queue)
	}
	r := ta.do("POST", "/v1/publish", "application/x-ndjson", []byte(`{"topic":"t/x","payload":"\ud83d\ude00"}`+"\n"))
	if r.status != 202 {
		t.Fatalf("a surrogate pair: %d %s", r.status, r.raw)
	}
}

// read_timeout cuts a stalled upload (408, nothing stored) but not a subscriber stream, which lives
// on past it.
func TestReadTimeoutCutsUploadsNotStreams(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "[api]\nread_timeout = \"300ms\"\n")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://agent/v1/subscribe?topic=long/%23", nil)
	resp, err := ta.http.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("subscribe: %v", err)
	}
	defer resp.Body.Close()

	c := stalledUpload(t, ta.sock, "/v1/publish?topic=long/stalled", 1000)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	answer, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("stalled upload: no answer: %v", err)
	}
	body, _ := io.ReadAll(answer.Body)
	if answer.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "api.read_timeout") {
		t.Fatalf("stalled upload: %d %s", answer.StatusCode, body)
	}

	// The stream has now lived several read timeouts; it still delivers.
	deadline := time.Now().Add(3 * time.Second) // > 10 read timeouts
	testutil.WaitFor(t, 10*time.Second, "several read timeouts", func() bool { return time.Now().After(deadline) })
	if r := ta.publish("long/x", "still here"); r.status != 202 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "still here") {
		t.Fatalf("stream after read_timeout: %q %v", line, err)
	}
	if st := ta.status(); st.Accepted != 1 {
		t.Fatalf("the stalled upload was stored: accepted %d", st.Accepted)
	}
}

// Connections past api.max_connections get a quick 503 with Retry-After and are closed, counted;
// they take no slot, and a slot frees when a connection ends.
func TestConnectionLimit(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "[api]\nmax_connections = 3\nread_timeout = \"20s\"\n")
	ta.a.api.ExemptSelf(false) // the test's clients share the agent's process
	ta.http.CloseIdleConnections()
	testutil.WaitFor(t, 10*time.Second, "idle connections to close", func() bool { return ta.a.api.Connections() == 0 })
	var held []net.Conn
	for i := 0; i < 3; i++ {
		held = append(held, stalledUpload(t, ta.sock, "/v1/publish?topic=conn/x", 100))
	}
	testutil.WaitFor(t, 10*time.Second, "3 connections", func() bool { return ta.a.api.Connections() == 3 })
	for i := 0; i < 5; i++ {
		c, err := net.Dial("unix", ta.sock)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /v1/status HTTP/1.1\r\nHost: agent\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("refused connection %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "api.max_connections") {
			t.Fatalf("connection past the limit: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		var e map[string]string
		if err := json.Unmarshal(body, &e); err != nil || e["error"] == "" {
			t.Fatalf("503 body is not a JSON error: %s", body)
		}
	}
	if n := ta.a.api.Connections(); n != 3 {
		t.Fatalf("refused connections took slots: %d active", n)
	}
	held[0].Close()
	testutil.WaitFor(t, 10*time.Second, "a slot to free", func() bool { return ta.a.api.Connections() < 3 })
	st := ta.status()
	if st.LocalAPI.ConnectionsRefused != 5 || st.LocalAPI.MaxConnections != 3 {
		t.Fatalf("status: %+v", st.LocalAPI)
	}
	m := ta.do("GET", "/metrics", "", nil)
	if !strings.Contains(m.raw, "edge_agent_api_connections_refused_total 5") {
		t.Fatalf("metrics:\n%s", m.raw)
	}
}

// A local subscriber that never reads loses messages, counted per reason in /metrics and status;
// the bytes it held come back when its stream ends.
func TestSlowSubscriberDropsVisible(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "[api]\nsubscriber_buffer = \"16KiB\"\nsubscriber_budget = \"16KiB\"\n")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://agent/v1/subscribe?topic=slow/%23", nil)
	resp, err := ta.http.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("subscribe: %v", err)
	}
	// Never read: 2 MB of messages fill the socket, then the stream's 16 KiB.
	var batch strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&batch, `{"topic":"slow/x","qos":0,"payload":"%s"}`+"\n", strings.Repeat("s", 4000))
	}
	if r := ta.do("POST", "/v1/publish", "application/x-ndjson", []byte(batch.String())); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	testutil.WaitFor(t, 30*time.Second, "drops to be counted", func() bool { return ta.status().InboundDropped[dropSlowSubscriber] > 0 })
	st := ta.status()
	if st.LocalAPI.SubscriberBytes > 16<<10 {
		t.Fatalf("held for the subscriber: %d bytes", st.LocalAPI.SubscriberBytes)
	}
	m := ta.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`edge_agent_inbound_dropped_total{reason="slow_subscriber"} `,
		`edge_agent_inbound_dropped_total{reason="subscriber_budget"} `,
		`edge_agent_inbound_dropped_total{reason="incoming_buffer"} `,
	} {
		if !strings.Contains(m.raw, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	raw := ta.do("GET", "/v1/status", "", nil).raw
	if !strings.Contains(raw, `"inbound_dropped":{`) {
		t.Fatalf("status JSON lacks inbound_dropped: %s", raw)
	}
	t.Logf("dropped %v for a subscriber that never read", st.InboundDropped)
	cancel()
	resp.Body.Close()
	testutil.WaitFor(t, 10*time.Second, "the stream's bytes to be released", func() bool {
		st := ta.status()
		return st.Subscribers == 0 && st.LocalAPI.SubscriberBytes == 0
	})
}

// Dead-letter listings are paged by bytes: each page stays near 1 MiB and "next_after" leads through
// every entry once; deleting all collects ids only.
func TestDeadLetterPagesByBytes(t *testing.T) {
	aclDir := t.TempDir()
	acl := filepath.Join(aclDir, "acl")
	os.WriteFile(acl, []byte("topic deny forbidden/#\ntopic readwrite #\n"), 0o644)
	b := mosquitto.Start(t, mosquitto.WithConfig("acl_file "+acl))
	ta := startAgent(t, b.WSURL(), "")
	const n = 12
	for i := 0; i < n; i++ {
		if r := ta.publish(fmt.Sprintf("forbidden/%d", i), strings.Repeat(string(rune('a'+i)), 200<<10)); r.status != 202 {
			t.Fatalf("publish: %d %s", r.status, r.raw)
		}
	}
	testutil.WaitFor(t, 30*time.Second, "the dead letters", func() bool { return ta.status().Queue.DeadLetters == n })
	seen := map[uint64]bool{}
	pages := 0
	after := uint64(0)
	for {
		r := ta.do("GET", fmt.Sprintf("/v1/deadletters?after=%d&limit=1000", after), "", nil)
		var page struct {
			DeadLetters []localapi.DeadLetter `json:"dead_letters"`
			Total       int                   `json:"total"`
			NextAfter   *uint64               `json:"next_after"`
		}
		if err := json.Unmarshal([]byte(r.raw), &page); err != nil || r.status != 200 {
			t.Fatalf("page %d: %d %v", pages, r.status, err)
		}
		pages++
		if len(r.raw) > 1<<20+256 /* localapi pages dead letters by 1 MiB */ || len(page.DeadLetters) == 0 || page.Total != n {
			t.Fatalf("page %d: %d bytes, %d entries, total %d", pages, len(r.raw), len(page.DeadLetters), page.Total)
		}
		for _, d := range page.DeadLetters {
			if seen[d.ID] || d.Payload == nil || len(*d.Payload) != 200<<10 {
				t.Fatalf("entry %d seen twice or cut", d.ID)
			}
			seen[d.ID] = true
		}
		if page.NextAfter == nil {
			break
		}
		after = *page.NextAfter
	}
	if len(seen) != n || pages < 3 {
		t.Fatalf("%d entries in %d pages", len(seen), pages)
	}
	// limit still bounds a page by number.
	r := ta.do("GET", "/v1/deadletters?limit=2", "", nil)
	if !strings.Contains(r.raw, `"next_after":`) || strings.Count(r.raw, `"reason"`) != 2 {
		t.Fatalf("limit=2: %.200s", r.raw)
	}
	if r := ta.do("DELETE", "/v1/deadletters?all=1", "", nil); r.status != 200 || r.body["deleted"] != float64(n) {
		t.Fatalf("delete all: %d %s", r.status, r.raw)
	}
}
