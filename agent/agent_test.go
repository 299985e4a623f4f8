package agent

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
	"github.com/edge-agent/edge-agent/queue"
)

// proxiedBroker is a real mosquitto reached through a fault-injecting TCP proxy.
func proxiedBroker(t *testing.T) (*mosquitto.Broker, *netproxy.Proxy, string) {
	t.Helper()
	b := mosquitto.Start(t)
	wsHost := strings.TrimSuffix(strings.TrimPrefix(b.WSURL(), "ws://"), "/mqtt")
	p, err := netproxy.New(wsHost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return b, p, "ws://" + p.Addr() + "/mqtt"
}

func mosquittoPub(t *testing.T, b *mosquitto.Broker, topic, msg string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(b.TCPAddr())
	out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", topic, "-m", msg).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

func TestPublishReachesBroker(t *testing.T) {
	b := mosquitto.Start(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "t/#")
	ta := startAgent(t, b.WSURL(), "")

	r := ta.publish("t/hello", "world")
	if r.status != http.StatusAccepted {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	if _, ok := r.body["id"].(float64); !ok {
		t.Fatalf("publish answer has no id: %s", r.raw)
	}
	// Binary payload, QoS 0, through the raw endpoint.
	bin := []byte{0, 1, 2, 0xff, 0xfe}
	r = ta.do("POST", "/v1/publish?topic=t/bin&qos=0", "application/octet-stream", bin)
	if r.status != http.StatusAccepted {
		t.Fatalf("publish binary: %d %s", r.status, r.raw)
	}
	msgs, err := sub.WaitCount(2, 10*time.Second)
	if err != nil {
		t.Fatalf("subscriber: %v\nagent log:\n%s", err, ta.logs)
	}
	if msgs[0].Topic != "t/hello" || string(msgs[0].Payload) != "world" {
		t.Errorf("first message = %q %q", msgs[0].Topic, msgs[0].Payload)
	}
	if msgs[1].Topic != "t/bin" || string(msgs[1].Payload) != string(bin) {
		t.Errorf("second message = %q %x", msgs[1].Topic, msgs[1].Payload)
	}
	testutil.WaitFor(t, 5*time.Second, "queue to drain", func() bool { return ta.status().Queue.Depth == 0 })
	st := ta.status()
	if st.State != "connected" || st.Delivered != 2 || st.Accepted != 2 {
		t.Errorf("status = %+v", st)
	}
}

// TestNetworkCutQueuesThenDrainsInOrder: with the link cut, publishes are still accepted and queue
// up; once it is restored everything arrives, in order.
func TestNetworkCutQueuesThenDrainsInOrder(t *testing.T) {
	b, proxy, url := proxiedBroker(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "cut/#")
	ta := startAgent(t, url, "")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

	const before, during = 50, 300
	n := 0
	publishN := func(k int) {
		var body strings.Builder
		for i := 0; i < k; i++ {
			n++
			fmt.Fprintf(&body, `{"topic":"cut/seq","payload":"%d"}`+"\n", n)
		}
		r := ta.do("POST", "/v1/publish", "application/x-ndjson", []byte(body.String()))
		if r.status != http.StatusAccepted || r.body["accepted"] != float64(k) {
			t.Fatalf("batch publish: %d %s", r.status, r.raw)
		}
	}
	publishN(before)
	if _, err := sub.WaitCount(before, 10*time.Second); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	proxy.Cut()
	testutil.WaitFor(t, 10*time.Second, "the agent to notice the cut", func() bool { return ta.status().State != "connected" })
	for i := 0; i < during/50; i++ {
		publishN(50)
	}
	st := ta.status()
	// Messages sent just before the cut whose PUBACK was lost stay queued too (at least once).
	if st.Queue.Depth < during || st.Queue.Depth > during+before {
		t.Errorf("queue depth while cut = %d, want %d..%d", st.Queue.Depth, during, during+before)
	}
	if st.Queue.OldestAgeSeconds < 0 || st.Queue.Bytes <= 0 {
		t.Errorf("queue stats while cut = %+v", st.Queue)
	}
	proxy.Restore()
	msgs, err := sub.WaitDistinct(before+during, 60*time.Second)
	if err != nil {
		t.Fatalf("after restore: %v\nagent log:\n%s", err, ta.logs)
	}
	assertInOrder(t, msgs, before+during)
	testutil.WaitFor(t, 10*time.Second, "queue to drain", func() bool { return ta.status().Queue.Depth == 0 })
}

// assertInOrder checks that payloads 1..n all arrived and that first arrivals are in order;
// redeliveries (at-least-once) are allowed and counted.
func assertInOrder(t *testing.T, msgs []mosquitto.Msg, n int) {
	t.Helper()
	dups, err := mosquitto.CheckNumbered(msgs, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages, %d duplicates", n, dups)
}

func TestWaitDelivered(t *testing.T) {
	b, proxy, url := proxiedBroker(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "w/#")
	ta := startAgent(t, url, "")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

	r := ta.do("POST", "/v1/publish?topic=w/1&wait=delivered", "", []byte("a"))
	if r.status != http.StatusOK || r.body["delivered"] != true {
		t.Fatalf("wait=delivered online: %d %s", r.status, r.raw)
	}
	proxy.Cut()
	testutil.WaitFor(t, 10*time.Second, "disconnect", func() bool { return ta.status().State != "connected" })
	r = ta.do("POST", "/v1/publish?topic=w/2&wait=delivered&timeout=300ms", "", []byte("b"))
	if r.status != http.StatusGatewayTimeout || !strings.Contains(r.raw, "stays queued") {
		t.Fatalf("wait=delivered offline: %d %s", r.status, r.raw)
	}
	if d := ta.status().Queue.Depth; d != 1 {
		t.Fatalf("depth after timeout = %d, want 1", d)
	}
	proxy.Restore()
	if _, err := sub.WaitDistinct(2, 30*time.Second); err != nil {
		t.Fatalf("the timed-out message was not delivered later: %v", err)
	}
}

func TestBadInputs(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "[api]\nmax_payload = \"1KiB\"\n")
	big := strings.Repeat("x", 1025)
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		want                            string
	}{
		{"no topic", "POST", "/v1/publish", "", "x", 400, "missing topic"},
		{"empty topic", "POST", "/v1/publish?topic=", "", "x", 400, "missing topic"},
		{"wildcard +", "POST", "/v1/publish?topic=a/%2B/b", "", "x", 400, "bad topic"},
		{"wildcard #", "POST", "/v1/publish?topic=a/%23", "", "x", 400, "bad topic"},
		{"invalid utf-8", "POST", "/v1/publish?topic=a%ff", "", "x", 400, "bad topic"},
		{"NUL in topic", "POST", "/v1/publish?topic=a%00b", "", "x", 400, "bad topic"},
		{"bad qos", "POST", "/v1/publish?topic=a&qos=2", "", "x", 400, "bad qos"},
		{"bad retain", "POST", "/v1/publish?topic=a&retain=yes", "", "x", 400, "bad retain"},
		{"unknown param", "POST", "/v1/publish?topic=a&qso=1", "", "x", 400, "unknown query parameter"},
		{"bad wait", "POST", "/v1/publish?topic=a&wait=forever", "", "x", 400, "bad wait"},
		{"payload too large", "POST", "/v1/publish?topic=a", "", big, 413, "over the limit of 1024"},
		{"ndjson bad json", "POST", "/v1/publish", "application/x-ndjson", "{\"topic\":\"a\",\"payload\":\"x\"}\n{nope\n", 400, "line 2: bad JSON"},
		{"ndjson no topic", "POST", "/v1/publish", "application/x-ndjson", "{\"payload\":\"x\"}\n", 400, "line 1: missing topic"},
		{"ndjson wildcard", "POST", "/v1/publish", "application/x-ndjson", "{\"topic\":\"a\"}\n{\"topic\":\"a/#\"}\n", 400, "line 2: bad topic"},
		{"ndjson bad qos", "POST", "/v1/publish", "application/x-ndjson", "{\"topic\":\"a\",\"qos\":3}\n", 400, "line 1: bad qos"},
		{"ndjson bad base64", "POST", "/v1/publish", "application/x-ndjson", "{\"topic\":\"a\",\"payload_base64\":\"!!\"}\n", 400, "line 1: bad payload_base64"},
		{"ndjson both payloads", "POST", "/v1/publish", "application/x-ndjson", "{\"topic\":\"a\",\"payload\":\"x\",\"payload_base64\":\"eA==\"}\n", 400, "not both"},
		{"ndjson unknown field", "POST", "/v1/publish", "application/x-ndjson", "{\"topic\":\"a\",\"qos \":1}\n", 400, "line 1: bad JSON"},
		{"ndjson too large", "POST", "/v1/publish", "application/x-ndjson", "{\"topic\":\"a\",\"payload\":\"" + big + "\"}\n", 413, "line 1"},
		{"ndjson empty", "POST", "/v1/publish", "application/x-ndjson", "\n\n", 400, "no messages"},
		{"publish GET", "GET", "/v1/publish?topic=a", "", "", 405, "use POST"},
		{"subscribe no topic", "GET", "/v1/subscribe", "", "", 400, "missing topic"},
		{"subscribe bad filter", "GET", "/v1/subscribe?topic=a/%23/b", "", "", 400, "bad topic filter"},
		{"subscribe POST", "POST", "/v1/subscribe?topic=a", "", "", 405, "use GET"},
		{"unknown path", "GET", "/v2/whatever", "", "", 404, "no such endpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ta.do(c.method, c.path, c.ctype, []byte(c.body))
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			msg, _ := r.body["error"].(string)
			if !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not contain %q", msg, c.want)
			}
		})
	}
	// Nothing half-written: none of the rejected requests stored anything.
	if st := ta.status(); st.Queue.Depth != 0 || st.Accepted != 0 {
		t.Fatalf("rejected requests stored messages: %+v", st.Queue)
	}
}

func TestQueueFullReject(t *testing.T) {
	_, proxy, url := proxiedBroker(t)
	proxy.Cut() // offline: nothing drains
	ta := startAgent(t, url, "[queue]\nmax_bytes = \"64KiB\"\noverflow = \"reject\"\n[api]\nmax_payload = \"16KiB\"\n")
	payload := strings.Repeat("p", 4000)
	accepted := 0
	for i := 0; i < 40; i++ {
		r := ta.publish("full/x", payload)
		if r.status == http.StatusAccepted {
			accepted++
			continue
		}
		if r.status != http.StatusInsufficientStorage || !strings.Contains(r.raw, "queue full") {
			t.Fatalf("publish %d: %d %s", i, r.status, r.raw)
		}
		break
	}
	if accepted == 0 || accepted >= 40 {
		t.Fatalf("accepted %d messages of 4000 bytes into 64KiB before 507", accepted)
	}
	if d := ta.status().Queue.Depth; d != accepted {
		t.Fatalf("depth %d, want %d (a 507 must store nothing)", d, accepted)
	}
	// A batch that does not fit is refused whole.
	batch := strings.Repeat(`{"topic":"full/y","payload":"`+payload+`"}`+"\n", 5)
	r := ta.do("POST", "/v1/publish", "application/x-ndjson", []byte(batch))
	if r.status != http.StatusInsufficientStorage {
		t.Fatalf("oversized batch: %d %s", r.status, r.raw)
	}
	if d := ta.status().Queue.Depth; d != accepted {
		t.Fatalf("depth %d after refused batch, want %d", d, accepted)
	}
}

func TestQueueDropOldest(t *testing.T) {
	_, proxy, url := proxiedBroker(t)
	proxy.Cut()
	ta := startAgent(t, url, "[queue]\nmax_bytes = \"64KiB\"\n[api]\nmax_payload = \"16KiB\"\n")
	payload := strings.Repeat("p", 4000)
	for i := 0; i < 40; i++ {
		if r := ta.publish("drop/x", payload); r.status != http.StatusAccepted {
			t.Fatalf("publish %d: %d %s", i, r.status, r.raw)
		}
	}
	st := ta.status()
	if st.Queue.Dropped == 0 || st.Queue.Bytes > 64<<10 || st.Queue.Depth+int(st.Queue.Dropped) != 40 {
		t.Fatalf("drop-oldest: %+v", st.Queue)
	}
	m := ta.do("GET", "/metrics", "", nil)
	if !strings.Contains(m.raw, fmt.Sprintf("edge_agent_queue_dropped_total %d", st.Queue.Dropped)) {
		t.Fatalf("metrics do not show the drops:\n%s", m.raw)
	}
}

func TestBatchIsOneCommitAndOrdered(t *testing.T) {
	b := mosquitto.Start(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "batch/#")
	ta := startAgent(t, b.WSURL(), "")
	var body strings.Builder
	for i := 1; i <= 500; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&body, `{"topic":"batch/n","payload_base64":%q,"qos":1}`+"\n", base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i))))
		} else {
			fmt.Fprintf(&body, `{"topic":"batch/n","payload":"%d","qos":0}`+"\n", i)
		}
	}
	r := ta.do("POST", "/v1/publish", "application/x-ndjson", []byte(body.String()))
	if r.status != http.StatusAccepted || r.body["accepted"] != float64(500) {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	if r.body["last_id"].(float64)-r.body["first_id"].(float64) != 499 {
		t.Fatalf("ids not contiguous: %s", r.raw)
	}
	msgs, err := sub.WaitCount(500, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// MQTT orders messages of the same QoS only (the broker may deliver a QoS 0 message ahead of a
	// QoS 1 one still waiting in the subscriber's in-flight window), so check each QoS on its own.
	byQoS := map[int][]mosquitto.Msg{}
	for _, m := range msgs {
		v, _ := strconv.Atoi(string(m.Payload))
		byQoS[v%2] = append(byQoS[v%2], m)
	}
	for parity, ms := range byQoS {
		last := -1
		for _, m := range ms {
			v, _ := strconv.Atoi(string(m.Payload))
			if v <= last {
				t.Fatalf("qos %d messages out of order: %d after %d", 1-parity, v, last)
			}
			last = v
		}
	}
	if len(byQoS[0]) < 250 || len(byQoS[1]) != 250 {
		t.Fatalf("got %d QoS 1 and %d QoS 0 messages, want 250 each", len(byQoS[0]), len(byQoS[1]))
	}
}

func TestSubscribeStream(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprintf("sse=%v", sse), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://agent/v1/subscribe?topic=cmd/%23&topic=other/x", nil)
			if sse {
				req.Header.Set("Accept", "text/event-stream")
			}
			resp, err := ta.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("subscribe: %d", resp.StatusCode)
			}
			// Headers arrive after the broker's SUBACK: publishing now cannot race the subscription.
			mosquittoPub(t, b, "cmd/reboot", "now")
			mosquittoPub(t, b, "unrelated/x", "no")
			// A binary payload must come back base64-encoded.
			host, port, _ := net.SplitHostPort(b.TCPAddr())
			binFile := t.TempDir() + "/bin"
			os.WriteFile(binFile, []byte{0xff, 0x00, 0x01}, 0o600)
			if out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", "other/x", "-f", binFile).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_pub: %v %s", err, out)
			}
			rd := bufio.NewReader(resp.Body)
			var got []localapi.Message
			for len(got) < 2 {
				line, err := rd.ReadString('\n')
				if err != nil {
					t.Fatalf("stream: %v (got %v)", err, got)
				}
				line = strings.TrimSpace(line)
				if line == "" {
					continue
				}
				if sse {
					var ok bool
					if line, ok = strings.CutPrefix(line, "data: "); !ok {
						t.Fatalf("not an SSE data line: %q", line)
					}
				}
				var sl localapi.Message
				if err := json.Unmarshal([]byte(line), &sl); err != nil {
					t.Fatalf("bad line %q: %v", line, err)
				}
				got = append(got, sl)
			}
			if got[0].Topic != "cmd/reboot" || got[0].Payload == nil || *got[0].Payload != "now" {
				t.Errorf("first = %+v", got[0])
			}
			if got[1].Topic != "other/x" || got[1].PayloadBase64 == nil || *got[1].PayloadBase64 != base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1}) {
				t.Errorf("second = %+v", got[1])
			}
		})
	}
	testutil.WaitFor(t, 5*time.Second, "subscribers to go away", func() bool { return ta.status().Subscribers == 0 })
}

// TestRestartKeepsQueue: messages accepted while offline survive a clean restart of the agent.
func TestRestartKeepsQueue(t *testing.T) {
	b, proxy, url := proxiedBroker(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "rs/#")
	proxy.Cut()
	ta := startAgent(t, url, "")
	for i := 1; i <= 20; i++ {
		if r := ta.publish("rs/n", strconv.Itoa(i)); r.status != 202 {
			t.Fatalf("publish: %d %s", r.status, r.raw)
		}
	}
	ta.stop()
	if _, err := os.Stat(ta.sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after shutdown: %v", err)
	}
	q, err := queue.Open(ta.state+"/"+QueueFile, queue.Options{})
	if err != nil {
		t.Fatalf("queue not closed cleanly: %v", err)
	}
	if d := q.Stats().Depth; d != 20 {
		t.Errorf("depth after restart = %d, want 20", d)
	}
	q.Close()
	proxy.Restore()
	ta2 := startAgentAt(t, url, "", ta.state, ta.sock)
	msgs, err := sub.WaitDistinct(20, 30*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, ta2.logs)
	}
	assertInOrder(t, msgs, 20)
}

func TestSocketModeAndStaleSocket(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "")
	fi, err := os.Stat(ta.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode = %v, want 0660 socket", fi.Mode())
	}
	// A second agent on the same socket refuses to start instead of stealing it.
	if _, err := listenAPI(ta, ta.sock); err == nil || !strings.Contains(err.Error(), "another edge-agent") {
		t.Fatalf("second listen on a live socket: %v", err)
	}
	// A stale socket file left by a crash (nobody listening) is replaced.
	stale := ta.sock + ".stale"
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := listenAPI(ta, stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	os.Remove(stale)
}

func TestHealthy(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ta.a.Healthy(ctx); err != nil {
		t.Fatalf("a running agent is unhealthy: %v", err)
	}
	ta.stop()
	if err := ta.a.Healthy(ctx); err == nil {
		t.Fatal("a stopped agent reports healthy")
	}
}

func TestMetricsAndStatus(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })
	st := ta.status()
	if st.Provider != "mqtt" || st.Endpoint != b.WSURL() || st.ClientID == "" || st.Queue.MaxBytes != 256<<20 || st.Queue.Overflow != "drop-oldest" {
		t.Fatalf("status = %+v", st)
	}
	m := ta.do("GET", "/metrics", "", nil)
	for _, want := range []string{"edge_agent_connected 1", "edge_agent_queue_depth 0", "# TYPE edge_agent_delivered_total counter"} {
		if !strings.Contains(m.raw, want) {
			t.Errorf("metrics lack %q:\n%s", want, m.raw)
		}
	}
}

// Local subscriber streams are bounded: past the limit a new one gets 503, and a slot frees when a
// stream ends.
func TestSubscriberStreamsBounded(t *testing.T) {
	const maxSubscribers = 4
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), fmt.Sprintf("[api]\nmax_subscribers = %d\n", maxSubscribers))
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })
	open := func() *http.Response {
		req, _ := http.NewRequest("GET", "http://agent/v1/subscribe?topic=bound/%23", nil)
		resp, err := ta.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var streams []*http.Response
	defer func() {
		for _, s := range streams {
			s.Body.Close()
		}
	}()
	for i := 0; i < maxSubscribers; i++ {
		resp := open()
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
		streams = append(streams, resp)
	}
	extra := open()
	extra.Body.Close()
	if extra.StatusCode != http.StatusServiceUnavailable || extra.Header.Get("Retry-After") == "" {
		t.Fatalf("stream %d: %d, want 503", maxSubscribers+1, extra.StatusCode)
	}
	streams[0].Body.Close()
	streams = streams[1:]
	testutil.WaitFor(t, 5*time.Second, "a slot to free", func() bool { return ta.status().Subscribers < maxSubscribers })
	again := open()
	if again.StatusCode != 200 {
		t.Fatalf("after a stream ended: %d", again.StatusCode)
	}
	streams = append(streams, again)
}

// listenAPI listens on path as a second local API in front of ta's agent would.
func listenAPI(ta *testAgent, path string) (net.Listener, error) {
	s, err := localapi.New(ta.a, localapi.Options{Socket: path, Limits: localapi.Limits{MaxConnections: 1, BodyBudget: 1}})
	if err != nil {
		return nil, err
	}
	return s.Listen()
}
