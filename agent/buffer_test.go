package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/topic"
	"github.com/edge-agent/edge-agent/transport"
)

// A broker message is held once: dispatch queues the very payload the MQTT decoder allocated (no copy)
// for every subscriber it matches, and allocates nothing itself.
func TestHubHoldsThePayloadOnce(t *testing.T) {
	h := newHub(slog.New(slog.NewTextHandler(discard{}, nil)), hubLimits{subscriberBuffer: 1 << 30, subscriberBudget: 1 << 30, maxSubscribers: 4}, nil)
	var subs []*subscriber
	for _, f := range []string{"m/#", "m/+", "other/#"} {
		parsed, _ := topic.ParseFilters([]string{f})
		s := &subscriber{h: h, filters: []string{f}, parsed: parsed, brokers: queue.Lane(0), wake: make(chan struct{}, 1),
			queue: make([]inbound, 0, 1000)}
		h.subs[s] = struct{}{}
		subs = append(subs, s)
	}
	m := transport.Received{Topic: "m/x", Payload: make([]byte, 48<<10), QoS: 1}
	allocs := testing.AllocsPerRun(500, func() { h.dispatch(0, m) })
	if allocs != 0 {
		t.Fatalf("dispatch to 2 matching subscribers allocated %.1f times per message", allocs)
	}
	for _, s := range subs[:2] {
		q := s.take()
		if len(q) == 0 || unsafe.SliceData(q[0].Payload) != unsafe.SliceData(m.Payload) {
			t.Fatalf("%v: the queued payload is not the decoder's (copied)", s.filters)
		}
	}
	if n := len(subs[2].take()); n != 0 {
		t.Fatalf("other/# got %d messages", n)
	}
	// What the two matching subscribers hold is counted per subscriber, the payload's bytes once each.
	if want := int64(501) * 2 * messageCost(m); h.bytes.Load() != want {
		t.Fatalf("held %d bytes, want %d", h.bytes.Load(), want)
	}
}

// A persistent session's redelivery burst at reconnect goes through the hub alone: every message
// reaches it (nothing is dropped in front of it), and each stream gets it or counts it dropped
// (slow_subscriber): a reader usually all of them, one that never reads what fits its 1 MiB.
func TestRedeliveryBurstBufferedOnce(t *testing.T) {
	pub, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Skip("mosquitto_pub not installed")
	}
	m := mosquitto.Start(t)
	px, err := netproxy.New(strings.TrimSuffix(strings.TrimPrefix(m.WSURL(), "ws://"), "/mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	// session_expiry defaults to 1h: a persistent session; api.subscriber_buffer 1 MiB.
	ta := startAgent(t, "ws://"+px.Addr()+"/mqtt", "")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := func() *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://agent/v1/subscribe?topic=burst/%23", nil)
		resp, err := ta.http.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("subscribe: %v", err)
		}
		return resp
	}
	reader, stuck := stream(), stream() // headers arrive after the SUBACK
	defer reader.Body.Close()
	defer stuck.Body.Close()
	var read atomic.Int64
	go func() {
		sc := bufio.NewScanner(reader.Body)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			var msg localapi.Message
			if json.Unmarshal(sc.Bytes(), &msg) == nil && strings.HasPrefix(msg.Topic, "burst/") {
				read.Add(1)
			}
		}
	}()

	px.Cut()
	testutil.WaitFor(t, 10*time.Second, "the cut noticed", func() bool { return ta.status().State != "connected" })
	const n = 900 // 1.8 MB: more than a stream's 1 MiB; under Mosquitto's max_queued_messages (1000)
	var lines bytes.Buffer
	for i := range n {
		fmt.Fprintf(&lines, "%04d%s\n", i, strings.Repeat("b", 2000))
	}
	host, port, _ := strings.Cut(m.TCPAddr(), ":")
	cmd := exec.Command(pub, "-h", host, "-p", port, "-V", "mqttv5", "-q", "1", "-t", "burst/x", "-l")
	cmd.Stdin = &lines
	if out, err := cmd.CombinedOutput(); err != nil || bytes.Contains(out, []byte("Error")) {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	received := ta.status().Received
	px.Restore()
	testutil.WaitFor(t, 10*time.Second, "reconnected", func() bool { return ta.status().Connects >= 2 })
	// Each stream's messages are delivered or dropped and counted: the reader's queue drains, the
	// stuck one's keeps its 1 MiB (about 500 of the 2 KiB messages; its socket holds some more).
	var readerDrops, stuckDrops uint64
	testutil.WaitFor(t, 20*time.Second, "the burst read or counted", func() bool {
		readerDrops, stuckDrops = 0, 0
		ta.a.hub.mu.RLock()
		defer ta.a.hub.mu.RUnlock()
		for s := range ta.a.hub.subs {
			s.mu.Lock()
			if s.count == 0 {
				readerDrops = s.dropped.Load()
			} else {
				stuckDrops = s.dropped.Load()
			}
			s.mu.Unlock()
		}
		return read.Load()+int64(readerDrops) == n
	})
	st := ta.status()
	if !st.SessionPresent || st.Received-received != n {
		t.Fatalf("session present %v, %d of %d messages reached the hub", st.SessionPresent, st.Received-received, n)
	}
	d := st.InboundDropped
	if stuckDrops == 0 || d[dropSlowSubscriber] != readerDrops+stuckDrops || d[dropSubscriberBudget] != 0 ||
		d["incoming_buffer"] != 0 || d["incoming_bytes"] != 0 || d["too_large"] != 0 {
		t.Fatalf("drops %v: want slow_subscriber only, %d + %d", d, readerDrops, stuckDrops)
	}
	if held := st.LocalAPI.SubscriberBytes; held > 1<<20 {
		t.Fatalf("held for the subscribers: %d bytes, over the stuck stream's 1 MiB", held)
	}
	t.Logf("burst of %d × 2 KiB at reconnect: the reader got %d (lost %d), the stuck stream lost %d, %d bytes held",
		n, read.Load(), readerDrops, stuckDrops, st.LocalAPI.SubscriberBytes)
}
