package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/devbroker"
	"github.com/edge-agent/edge-agent/internal/testutil"
	mqtt "github.com/mochi-mqtt/server/v2"
)

// 2000 QoS 1 messages arrive in Seq order, each acked exactly once and only after the broker had it.
func TestPublishOrderedAndAckedAfterPuback(t *testing.T) {
	rec := newRecorder("t/")
	b := startBroker(t, devbroker.Options{Hooks: []mqtt.Hook{rec}})
	src := newFakeSource()
	var early atomic.Int64
	src.onAck = func(seq uint64) {
		if !rec.has(seq) { // the broker records before it writes the PUBACK
			early.Add(1)
		}
	}
	seqs := src.add(2000, qos1("t"))
	c := startClient(t, Config{URL: b.URL(), ClientID: "pub", MaxInflight: 32}, src)
	src.waitSettled(t, len(seqs), 30*time.Second)

	if n := early.Load(); n > 0 {
		t.Fatalf("%d messages were acked before the broker received them", n)
	}
	src.checkAckedOnce(t, seqs)
	if dups := checkFirstArrivals(t, rec.arrivals(), seqs); dups != 0 {
		t.Fatalf("%d duplicates without any reconnect", dups)
	}
	st := c.Status()
	if st.State != StateConnected || st.Published != 2000 || st.Acked != 2000 || st.Rejected != 0 || st.Connects != 1 {
		t.Fatalf("status = %+v", st)
	}
	c.stop(t)
	if st := c.Status(); st.State != StateStopped || st.Inflight != 0 {
		t.Fatalf("after stop: %+v", st)
	}
}

// The number of unacknowledged QoS 1 publishes never exceeds W = min(MaxInflight, Receive Maximum), and
// the window is actually used (pipelining happens).
func TestWindowRespected(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxInflight int
		recvMax     uint16
		want        int
	}{
		{"broker receive maximum", 64, 5, 5},
		{"max inflight", 3, 1024, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder("w/")
			rec.delay = 2 * time.Millisecond // late PUBACKs: the sender runs ahead until the window is full
			b := startBroker(t, devbroker.Options{ReceiveMaximum: tc.recvMax, Hooks: []mqtt.Hook{rec}})
			src := newFakeSource()
			seqs := src.add(200, qos1("w"))
			c := startClient(t, Config{URL: b.URL(), ClientID: "win", MaxInflight: tc.maxInflight}, src)
			src.waitSettled(t, len(seqs), 30*time.Second)
			src.checkAckedOnce(t, seqs)
			checkFirstArrivals(t, rec.arrivals(), seqs)
			st := c.Status()
			if st.Window != tc.want || st.ReceiveMaximum != tc.recvMax {
				t.Fatalf("window %d receive maximum %d, want %d and %d", st.Window, st.ReceiveMaximum, tc.want, tc.recvMax)
			}
			// peakInflight counts from before the write to after the PUBACK, so it bounds what was
			// unacknowledged on the wire from above.
			if peak := c.testHooks.peakInflight.Load(); peak != int64(tc.want) {
				t.Fatalf("peak unacknowledged = %d, want exactly the window %d", peak, tc.want)
			}
		})
	}
}

// The broker goes away mid-stream and comes back on the same port: the client reconnects with backoff
// and resends everything unacknowledged; nothing is missing and first arrivals stay in order.
func TestBrokerRestartResendsUnacked(t *testing.T) {
	rec := newRecorder("r/")
	opts := devbroker.Options{Hooks: []mqtt.Hook{rec}}
	b := startBroker(t, opts)
	opts.WSAddr = b.Addr()
	src := newFakeSource()
	seqs := src.add(3000, qos1("r"))
	c := startClient(t, Config{URL: b.URL(), ClientID: "restart", MaxInflight: 64,
		Backoff: FullJitter(20*time.Millisecond, 200*time.Millisecond)}, src)

	testutil.WaitFor(t, 20*time.Second, "500 messages at the broker", func() bool { return rec.count() >= 500 })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before := src.settled()
	testutil.WaitFor(t, 5*time.Second, "client to notice", func() bool { return c.Status().State != StateConnected })
	restartBroker(t, opts)
	src.waitSettled(t, len(seqs), 30*time.Second)

	if before >= len(seqs) {
		t.Fatalf("all %d messages were acked before the restart; the test proved nothing", before)
	}
	src.checkAckedOnce(t, seqs)
	dups := checkFirstArrivals(t, rec.arrivals(), seqs)
	st := c.Status()
	if st.Connects < 2 {
		t.Fatalf("connects = %d, want a reconnect", st.Connects)
	}
	t.Logf("acked before restart: %d, duplicates (resent after restart): %d, last error: %s", before, dups, st.LastError)
}

// A dynamic subscription receives messages, survives a broker restart, is ref-counted, and stops after
// the last Unsubscribe.
func TestSubscribeRestoreUnsubscribe(t *testing.T) {
	b := startBroker(t, devbroker.Options{})
	opts := devbroker.Options{WSAddr: b.Addr()}
	var mu sync.Mutex
	var got []Received
	received := func(topic string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			if m.Topic == topic {
				return true
			}
		}
		return false
	}
	reset := func() { mu.Lock(); got = nil; mu.Unlock() }
	c := startClient(t, Config{URL: b.URL(), ClientID: "sub", Backoff: fastBackoff,
		Subscriptions: []Subscription{{Filter: "ctl/#", QoS: 1}},
		OnMessage: func(m Received) {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}}, newFakeSource())
	testutil.WaitFor(t, 5*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
	ctx := context.Background()
	if err := c.Subscribe(ctx, Subscription{Filter: "cmd/+/run", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, Subscription{Filter: "cmd/+/run", QoS: 1}); err != nil { // second reference
		t.Fatal(err)
	}
	// publishUntil publishes topic from the broker side until the client got it (the subscription may
	// still be in flight right after a reconnect).
	publishUntil := func(b *devbroker.Broker, topic string) {
		t.Helper()
		testutil.WaitFor(t, 10*time.Second, "message on "+topic, func() bool {
			_ = b.Server.Publish(topic, []byte("x"), false, 1)
			time.Sleep(10 * time.Millisecond)
			return received(topic)
		})
	}
	publishUntil(b, "cmd/a/run")

	_ = b.Close()
	b2 := restartBroker(t, opts)
	testutil.WaitFor(t, 10*time.Second, "reconnect", func() bool {
		st := c.Status()
		return st.Connects >= 2 && st.State == StateConnected
	})
	reset()
	publishUntil(b2, "cmd/b/run") // restored dynamic subscription
	publishUntil(b2, "ctl/x")     // restored always-on subscription

	// One Unsubscribe leaves one reference: still subscribed.
	if err := c.Unsubscribe(ctx, "cmd/+/run"); err != nil {
		t.Fatal(err)
	}
	reset()
	publishUntil(b2, "cmd/c/run")
	// The last reference goes: messages stop. The broker delivers in order, so once the marker on the
	// always-on filter arrives, a cmd message published before it would have arrived too.
	if err := c.Unsubscribe(ctx, "cmd/+/run"); err != nil {
		t.Fatal(err)
	}
	reset()
	_ = b2.Server.Publish("cmd/d/run", []byte("x"), false, 1)
	publishUntil(b2, "ctl/marker")
	if received("cmd/d/run") {
		t.Fatal("received cmd/d/run after the last Unsubscribe")
	}
	if st := c.Status(); st.DroppedIncoming != 0 {
		t.Fatalf("dropped %d incoming", st.DroppedIncoming)
	}
}

// A SUBACK refusal is returned, logged in Status.LastError and not kept.
func TestSubscribeRefused(t *testing.T) {
	b := startBroker(t, devbroker.Options{ACL: func(_, topic string, write bool) bool { return write || topic != "secret/#" }})
	c := startClient(t, Config{URL: b.URL(), ClientID: "subref", OnMessage: func(Received) {}}, newFakeSource())
	testutil.WaitFor(t, 5*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
	err := c.Subscribe(context.Background(), Subscription{Filter: "secret/#", QoS: 1})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Subscribe = %v, want ErrRefused", err)
	}
	if st := c.Status(); !strings.Contains(st.LastError, "secret/#") {
		t.Fatalf("LastError %q does not name the refused filter", st.LastError)
	}
	c.mu.Lock()
	n := len(c.dyn)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("refused subscription kept (%d dynamic filters)", n)
	}
}

// Endpoint is called once per attempt, its URL and header are used, and the query string (a signature
// in real life) never shows up in Status or logs.
func TestEndpointCalledPerAttempt(t *testing.T) {
	b := startBroker(t, devbroker.Options{})
	var hdrMu sync.Mutex
	var seenHdr []string
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdrMu.Lock()
		seenHdr = append(seenHdr, r.Header.Get("X-Attempt"))
		hdrMu.Unlock()
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer forbidden.Close()
	dead := "ws" + strings.TrimPrefix(forbidden.URL, "http") + "/mqtt?X-Amz-Signature=deadbeefsecret"
	var calls atomic.Int64
	logs := &testutil.Buffer{}
	var errMu sync.Mutex
	var connErrs []error
	cfg := Config{
		ClientID: "ep", Backoff: fastBackoff, Password: []byte("hunter2secret"), Username: "u",
		OnConnectError: func(err error) {
			errMu.Lock()
			connErrs = append(connErrs, err)
			errMu.Unlock()
		},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Endpoint: func(ctx context.Context) (string, http.Header, error) {
			n := calls.Add(1)
			h := http.Header{"X-Attempt": {fmt.Sprint(n)}}
			if n <= 3 {
				return dead, h, nil
			}
			return b.URL() + "?X-Amz-Signature=deadbeefsecret", h, nil
		},
	}
	c := startClient(t, cfg, newFakeSource())
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
	st := c.Status()
	if calls.Load() != 4 || st.Connects != 1 {
		t.Fatalf("Endpoint called %d times for %d connects; want 4 calls (3 failed attempts + 1)", calls.Load(), st.Connects)
	}
	if strings.Contains(st.URL, "secret") || strings.Contains(st.URL, "?") || st.URL != b.URL() {
		t.Fatalf("Status.URL = %q, want %q without query", st.URL, b.URL())
	}
	c.stop(t)
	out := logs.String()
	if strings.Count(out, "mqtt connection attempt failed") != 3 || strings.Count(out, "HTTP 403") != 3 {
		t.Fatalf("want each of the 3 failures logged once, with HTTP 403:\n%s", out)
	}
	errMu.Lock()
	if len(connErrs) != 3 {
		t.Fatalf("OnConnectError called %d times, want 3", len(connErrs))
	}
	for _, err := range connErrs {
		var he *HandshakeError
		if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || he.Header.Get("Date") == "" ||
			!strings.Contains(he.Body, "no") || strings.Contains(he.URL, "secret") {
			t.Fatalf("OnConnectError got %#v, want a *HandshakeError with status 403, headers, body and a redacted URL", err)
		}
	}
	errMu.Unlock()
	hdrMu.Lock()
	defer hdrMu.Unlock()
	if strings.Join(seenHdr, ",") != "1,2,3" {
		t.Fatalf("headers from Endpoint seen by the server: %v, want 1,2,3", seenHdr)
	}
	if strings.Contains(out, "secret") {
		t.Fatalf("a secret leaked into the logs:\n%s", out)
	}
}

// QoS 0 messages are acked once written, and arrive.
func TestQoS0AckedOnceWritten(t *testing.T) {
	rec := newRecorder("q0/")
	b := startBroker(t, devbroker.Options{Hooks: []mqtt.Hook{rec}})
	src := newFakeSource()
	seqs := src.add(300, func(seq uint64) Message {
		m := qos1("q0")(seq)
		m.QoS = 0
		return m
	})
	c := startClient(t, Config{URL: b.URL(), ClientID: "q0"}, src)
	src.waitSettled(t, len(seqs), 10*time.Second)
	src.checkAckedOnce(t, seqs)
	testutil.WaitFor(t, 5*time.Second, "all QoS 0 at the broker", func() bool { return rec.count() == len(seqs) })
	checkFirstArrivals(t, rec.arrivals(), seqs)
	if st := c.Status(); st.Inflight != 0 || st.Acked != 300 {
		t.Fatalf("status %+v", st)
	}
}

// A PUBACK with reason >= 0x80 rejects that message only; the stream goes on in order.
func TestPubackRefusalRejects(t *testing.T) {
	rec := newRecorder("ok/")
	rec.refusePrefix = "bad/"
	b := startBroker(t, devbroker.Options{Hooks: []mqtt.Hook{rec}})
	src := newFakeSource()
	var good, bad []uint64
	seqs := src.add(100, func(seq uint64) Message {
		if seq%10 == 0 {
			bad = append(bad, seq)
			return qos1("bad")(seq)
		}
		good = append(good, seq)
		return qos1("ok")(seq)
	})
	c := startClient(t, Config{URL: b.URL(), ClientID: "refuse"}, src)
	src.waitSettled(t, len(seqs), 10*time.Second)
	src.checkAckedOnce(t, good)
	checkFirstArrivals(t, rec.arrivals(), good)
	src.mu.Lock()
	defer src.mu.Unlock()
	for _, q := range bad {
		if err := src.rejected[q]; !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "0x87") {
			t.Fatalf("seq %d: reject reason %v, want ErrRefused with 0x87", q, err)
		}
		if src.acked[q] != 0 {
			t.Fatalf("refused seq %d was acked", q)
		}
	}
	if st := c.Status(); st.Rejected != uint64(len(bad)) || st.Connects != 1 {
		t.Fatalf("status %+v", st)
	}
}

// Expired messages are handed back with Expire without being sent; the others carry the remaining lifetime.
func TestMessageExpiry(t *testing.T) {
	rec := newRecorder("e/")
	b := startBroker(t, devbroker.Options{Hooks: []mqtt.Hook{rec}})
	src := newFakeSource()
	src.add(2, func(seq uint64) Message {
		m := qos1("e")(seq)
		if seq == 1 {
			m.Expires = time.Now().Add(-time.Second)
		} else {
			m.Expires = time.Now().Add(90 * time.Second)
		}
		return m
	})
	c := startClient(t, Config{URL: b.URL(), ClientID: "exp"}, src)
	src.waitSettled(t, 2, 10*time.Second)
	src.mu.Lock()
	expired, rejected, acked1 := src.expired[1], src.rejected[1], src.acked[1]
	acked := src.acked[2]
	src.mu.Unlock()
	if expired != 1 || rejected != nil || acked1 != 0 || acked != 1 {
		t.Fatalf("expired seq 1: Expire %d, Quarantine %v, Ack %d; live seq 2: Ack %d", expired, rejected, acked1, acked)
	}
	if st := c.Status(); st.Expired != 1 || st.Rejected != 0 || st.Acked != 1 {
		t.Fatalf("status: expired %d rejected %d acked %d, want 1 0 1", st.Expired, st.Rejected, st.Acked)
	}
	got := rec.arrivals()
	if len(got) != 1 || got[0] != 2 {
		t.Fatalf("broker got %v, want only seq 2", got)
	}
	rec.mu.Lock()
	exp := rec.props[0].MessageExpiryInterval
	rec.mu.Unlock()
	if exp < 85 || exp > 90 {
		t.Fatalf("message expiry interval %d, want about 90", exp)
	}
}

// Run returns nil promptly on cancel even while the broker holds PUBACKs, and nothing unacked is acked.
func TestShutdownBounded(t *testing.T) {
	rec := newRecorder("s/")
	rec.delay = 20 * time.Millisecond
	b := startBroker(t, devbroker.Options{Hooks: []mqtt.Hook{rec}})
	src := newFakeSource()
	src.add(1000, qos1("s"))
	c := startClient(t, Config{URL: b.URL(), ClientID: "shut", DrainTimeout: 300 * time.Millisecond}, src)
	testutil.WaitFor(t, 5*time.Second, "some acks", func() bool { return src.settled() > 5 })
	start := time.Now()
	c.stop(t)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	for q := range src.acked {
		if !rec.has(q) {
			t.Fatalf("seq %d acked but never reached the broker", q)
		}
	}
}

// A message larger than the broker's Maximum Packet Size is rejected instead of getting the connection
// dropped on every attempt; the messages around it go through.
func TestOversizedMessageRejected(t *testing.T) {
	rec := newRecorder("big/")
	b := startBroker(t, devbroker.Options{MaximumPacketSize: 1024, Hooks: []mqtt.Hook{rec}})
	src := newFakeSource()
	src.add(3, func(seq uint64) Message {
		m := qos1("big")(seq)
		if seq == 2 {
			m.Payload = make([]byte, 2000)
		}
		return m
	})
	c := startClient(t, Config{URL: b.URL(), ClientID: "big"}, src)
	src.waitSettled(t, 3, 10*time.Second)
	src.checkAckedOnce(t, []uint64{1, 3})
	src.mu.Lock()
	err := src.rejected[2]
	src.mu.Unlock()
	if !errors.Is(err, ErrInvalidMessage) || !strings.Contains(err.Error(), "Maximum Packet Size is 1024") {
		t.Fatalf("reject reason %v", err)
	}
	if got := rec.arrivals(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("broker got %v", got)
	}
	if st := c.Status(); st.Connects != 1 {
		t.Fatalf("connects %d", st.Connects)
	}
}

// MaxSubscriptions bounds distinct filters (always-on and dynamic together); references to a filter
// already subscribed do not count again.
func TestMaxSubscriptions(t *testing.T) {
	b := startBroker(t, devbroker.Options{})
	c := startClient(t, Config{URL: b.URL(), ClientID: "maxsubs", Backoff: fastBackoff, MaxSubscriptions: 3,
		Subscriptions: []Subscription{{Filter: "a/#", QoS: 1}}}, newFakeSource())
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
	ctx := context.Background()
	if err := c.Subscribe(ctx, Subscription{Filter: "b/#", QoS: 1}, Subscription{Filter: "a/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, Subscription{Filter: "b/#", QoS: 1}); err != nil {
		t.Fatalf("a second reference to a subscribed filter: %v", err)
	}
	err := c.Subscribe(ctx, Subscription{Filter: "c/#", QoS: 1}, Subscription{Filter: "d/#", QoS: 1})
	if !errors.Is(err, ErrTooManySubscriptions) {
		t.Fatalf("4th and 5th filter: %v, want ErrTooManySubscriptions", err)
	}
	if err := c.Subscribe(ctx, Subscription{Filter: "c/#", QoS: 1}); err != nil {
		t.Fatalf("3rd filter: %v", err)
	}
	if err := c.Unsubscribe(ctx, "c/#"); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, Subscription{Filter: "d/#", QoS: 1}); err != nil {
		t.Fatalf("after an unsubscribe frees a slot: %v", err)
	}
}
