package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/edge-agent/edge-agent/internal/hostilebroker"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

func startHostile(t testing.TB, opts hostilebroker.Options) *hostilebroker.Broker {
	t.Helper()
	b, err := hostilebroker.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// logTo returns a debug-level text logger writing to buf, for assertions on log lines.
func logTo(t testing.TB, buf *testutil.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// totalAlloc is the cumulative bytes allocated on the heap by the whole test process.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// received collects OnMessage calls.
type received struct {
	mu   sync.Mutex
	msgs []Received
}

func (r *received) on(m Received) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *received) has(topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.Topic == topic {
			return true
		}
	}
	return false
}

// CONNECT announces the configured limit (default 136 KiB) as Maximum Packet Size.
func TestConnectAnnouncesMaxPacketSize(t *testing.T) {
	for _, tc := range []struct {
		cfg  uint32
		want uint32
	}{{0, 139264}, {4096, 4096}} {
		b := startHostile(t, hostilebroker.Options{})
		c := startClient(t, Config{URL: b.URL(), ClientID: "mps", MaxPacketSize: tc.cfg}, newFakeSource())
		testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
		if got := b.MaxPacketSizes(); len(got) != 1 || got[0] != tc.want {
			t.Fatalf("MaxPacketSize %d: CONNECT carried %v, want [%d]", tc.cfg, got, tc.want)
		}
		c.stop(t)
	}
}

// A broker announcing a 268,435,455-byte packet and then sending nothing (or a trickle): the client
// allocates nothing for it, the dead connection is found by keepalive (a discarded PUBLISH) or refused
// at once (any other packet), Status and the log say so, and publishing works on the next connection.
func TestHugeAnnouncementNeverAllocated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     byte
		trickle time.Duration
		wantErr error
	}{
		{"PUBLISH then nothing", typePublish, 0, ErrKeepalive},
		{"PUBLISH then a trickle", typePublish, 50 * time.Millisecond, ErrKeepalive},
		{"SUBACK", 9, 0, ErrPacketTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startHostile(t, hostilebroker.Options{HugeHeaderAfterSubscribe: true, HugeHeaderType: tc.typ,
				HugeHeaderConnections: 1, HugeHeaderTrickle: tc.trickle})
			var logs testutil.Buffer
			var errs []error
			var errMu sync.Mutex
			src := newFakeSource()
			before := totalAlloc()
			c := startClient(t, Config{URL: b.URL(), ClientID: "huge", Keepalive: time.Second, Backoff: fastBackoff,
				Subscriptions: []Subscription{{Filter: "cmd/#", QoS: 1}}, Logger: logTo(t, &logs),
				OnConnectError: func(err error) { errMu.Lock(); errs = append(errs, err); errMu.Unlock() }}, src)
			testutil.WaitFor(t, 20*time.Second, "a second connection", func() bool { return c.Status().Connects >= 2 })
			seqs := src.add(5, qos1("after"))
			src.waitSettled(t, len(seqs), 20*time.Second)
			src.checkAckedOnce(t, seqs)
			grew := totalAlloc() - before

			st := c.Status()
			if st.InboundTooLarge != 1 {
				t.Fatalf("InboundTooLarge = %d, want 1", st.InboundTooLarge)
			}
			errMu.Lock()
			first := errs[0]
			errMu.Unlock()
			if !errors.Is(first, tc.wantErr) {
				t.Fatalf("first connection ended with %v, want %v", first, tc.wantErr)
			}
			if !strings.Contains(logs.String(), "over broker.max_packet_size 139264") {
				t.Fatalf("log does not name broker.max_packet_size:\n%s", logs.String())
			}
			if tc.typ != typePublish {
				if d := b.Disconnects(); len(d) == 0 || d[0] != 0x95 {
					t.Fatalf("client DISCONNECT reasons %x, want 0x95 first", d)
				}
				if !strings.Contains(st.LastError, "packet too large") && !strings.Contains(st.LastError, "SUBACK") {
					t.Fatalf("LastError %q", st.LastError)
				}
			}
			if grew > 16<<20 {
				t.Fatalf("the process allocated %d MiB in all (the announcement was 256 MiB)", grew>>20)
			}
			t.Logf("first connection ended: %v; allocated in all: %.1f MiB; last error: %s", first, float64(grew)/(1<<20), st.LastError)
		})
	}
}

// A retained 100 MB message on a subscribed topic (QoS 0 and 1) is discarded without being allocated,
// counted, PUBACKed (0x97) when QoS 1; the connection stays up and messages flow both ways; after a
// reconnect it comes again, is discarded again, and the client does not loop.
func TestRetainedOversizedDiscarded(t *testing.T) {
	const size = 100 << 20
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b := startHostile(t, hostilebroker.Options{RetainedSize: size, RetainedQoS: qos})
			var logs testutil.Buffer
			var got received
			src := newFakeSource()
			before := totalAlloc()
			c := startClient(t, Config{URL: b.URL(), ClientID: "retained", Backoff: fastBackoff, Keepalive: 2 * time.Second,
				Subscriptions: []Subscription{{Filter: "big/#", QoS: 1}}, OnMessage: got.on, Logger: logTo(t, &logs)}, src)

			testutil.WaitFor(t, 60*time.Second, "the retained message to be discarded", func() bool { return c.Status().InboundTooLarge == 1 })
			if qos == 1 {
				testutil.WaitFor(t, 10*time.Second, "a PUBACK for it", func() bool { return len(b.Acks()) == 1 })
				if a := b.Acks()[0]; a.ReasonCode != 0x97 {
					t.Fatalf("PUBACK reason 0x%02x, want 0x97", a.ReasonCode)
				}
			}
			// Both ways on the same connection.
			seqs := src.add(10, qos1("up"))
			src.waitSettled(t, len(seqs), 20*time.Second)
			testutil.WaitFor(t, 10*time.Second, "a normal message", func() bool {
				b.Publish("big/small", []byte("hello"), 1)
				return got.has("big/small")
			})
			st := c.Status()
			if st.Connects != 1 || b.Connects() != 1 || st.DroppedIncomingTooLarge != 1 || st.DroppedIncoming != 1 {
				t.Fatalf("connects %d/%d, dropped too large %d of %d; want one connection and one drop",
					st.Connects, b.Connects(), st.DroppedIncomingTooLarge, st.DroppedIncoming)
			}
			grew := totalAlloc() - before
			if grew > 32<<20 {
				t.Fatalf("the process allocated %d MiB in all for a %d MiB message", grew>>20, size>>20)
			}
			wantSize := 1 + 4 + 2 + len("big/retained") + 1 + size + 2*int(qos)
			if !strings.Contains(logs.String(), fmt.Sprintf(`broker sent a %d-byte PUBLISH on topic \"big/retained\", over broker.max_packet_size 139264: discarded`, wantSize)) {
				t.Fatalf("log line missing:\n%s", logs.String())
			}

			// A reconnect brings the retained message again: discarded again, no loop.
			b.Kick()
			testutil.WaitFor(t, 60*time.Second, "the second discard", func() bool { return c.Status().InboundTooLarge == 2 })
			seqs = src.add(10, qos1("again"))
			src.waitSettled(t, 20, 20*time.Second)
			if st := c.Status(); st.Connects != 2 || st.State != StateConnected {
				t.Fatalf("after one kick: connects %d, state %s", st.Connects, st.State)
			}
			t.Logf("allocated in all for the first 100 MiB message: %.1f MiB; last error: %s", float64(grew)/(1<<20), c.Status().LastError)
		})
	}
}

// The broker hangs up each time "poison" arrives: with PoisonAfter 3 it is rejected with ErrPoison and
// the reason, and the messages around it are delivered in order, each acked once.
func TestPoisonMessageRejected(t *testing.T) {
	for _, mode := range []string{hostilebroker.HangUpDisconnect, hostilebroker.HangUpClose, hostilebroker.HangUpTCP} {
		t.Run(mode, func(t *testing.T) {
			b := startHostile(t, hostilebroker.Options{HangUpWith: mode,
				HangUpOn: func(topic string, _ []byte) bool { return topic == "poison" }})
			src := newFakeSource()
			var logs testutil.Buffer
			mk := func(topic string) func(uint64) Message {
				return func(seq uint64) Message { return Message{Topic: topic, Payload: []byte(topic), QoS: 1} }
			}
			a := src.add(1, mk("q/a"))[0]
			p := src.add(1, mk("poison"))[0]
			rest := append(src.add(1, mk("q/b")), src.add(1, mk("q/c"))...)
			c := startClient(t, Config{URL: b.URL(), ClientID: "poison", Backoff: fastBackoff, PoisonAfter: 3,
				Logger: logTo(t, &logs)}, src)
			src.waitSettled(t, 4, 30*time.Second)

			src.checkAckedOnce(t, append([]uint64{a}, rest...))
			src.mu.Lock()
			why := src.rejected[p]
			src.mu.Unlock()
			if !errors.Is(why, ErrPoison) {
				t.Fatalf("poison rejected with %v, want ErrPoison", why)
			}
			if want := "the broker closed the connection each time this message was sent (3 times in a row): "; !strings.HasPrefix(why.Error(), want) {
				t.Fatalf("reason %q, want it to start with %q", why, want)
			}
			var order []string
			seen := map[string]bool{}
			for _, m := range b.Received() {
				if !seen[m.Topic] {
					seen[m.Topic] = true
					order = append(order, m.Topic)
				}
			}
			if strings.Join(order, ",") != "q/a,poison,q/b,q/c" {
				t.Fatalf("first arrivals %v", order)
			}
			st := c.Status()
			// Connection 1 acked q/a before the hang-up (progress), 2..4 noted poison: 4 hang-ups.
			if st.Poisoned != 1 || st.Rejected != 1 || b.HangUps() != 4 {
				t.Log(logs.String())
				t.Fatalf("poisoned %d rejected %d hang-ups %d", st.Poisoned, st.Rejected, b.HangUps())
			}
			if !strings.Contains(logs.String(), "rejected as poison") || !strings.Contains(logs.String(), fmt.Sprintf("seq=%d topic=poison", p)) {
				t.Fatalf("log:\n%s", logs.String())
			}
			t.Logf("dead-letter reason: %v", why)
		})
	}
}

// A message the broker hangs up on only twice is delivered, not poisoned; a QoS 0 message the broker
// hangs up on is never resent and never poisons the QoS 1 message behind it.
func TestPoisonNotTriggered(t *testing.T) {
	t.Run("flaky twice", func(t *testing.T) {
		var hang atomic.Int32
		b := startHostile(t, hostilebroker.Options{HangUpOn: func(topic string, _ []byte) bool {
			return topic == "flaky" && hang.Add(1) <= 2
		}})
		src := newFakeSource()
		seqs := src.add(1, func(uint64) Message { return Message{Topic: "flaky", Payload: []byte("f"), QoS: 1} })
		seqs = append(seqs, src.add(2, qos1("q"))...)
		c := startClient(t, Config{URL: b.URL(), ClientID: "flaky", Backoff: fastBackoff, PoisonAfter: 3}, src)
		src.waitSettled(t, 3, 30*time.Second)
		src.checkAckedOnce(t, seqs)
		if st := c.Status(); st.Poisoned != 0 || b.HangUps() != 2 {
			t.Fatalf("poisoned %d, hang-ups %d", st.Poisoned, b.HangUps())
		}
	})
	t.Run("qos0 head", func(t *testing.T) {
		b := startHostile(t, hostilebroker.Options{HangUpOn: func(topic string, _ []byte) bool { return topic == "poison0" }})
		src := newFakeSource()
		src.add(1, func(uint64) Message { return Message{Topic: "poison0", Payload: []byte("x")} })
		seqs := src.add(3, qos1("q"))
		c := startClient(t, Config{URL: b.URL(), ClientID: "q0", Backoff: fastBackoff, PoisonAfter: 1}, src)
		src.waitSettled(t, 4, 30*time.Second)
		src.checkAckedOnce(t, seqs)
		if st := c.Status(); st.Poisoned != 0 || st.Rejected != 0 {
			t.Fatalf("poisoned %d rejected %d", st.Poisoned, st.Rejected)
		}
	})
}

// poisonWatch's rule as a table: only consecutive hang-ups with the same oldest seq and no progress
// count; anything else starts again.
func TestPoisonWatchRule(t *testing.T) {
	type end struct {
		hungUp, answered bool
		oldest           uint64
		poison           bool
	}
	hang := func(seq uint64) end { return end{hungUp: true, oldest: seq} }
	for _, tc := range []struct {
		name  string
		after int
		ends  []end
	}{
		{"three in a row", 3, []end{hang(5), hang(5), {true, false, 5, true}}},
		{"an ack in between", 3, []end{hang(5), hang(5), {true, true, 5, false}, hang(5), hang(5), {true, false, 5, true}}},
		{"a reset in between", 3, []end{hang(5), hang(5), {false, false, 5, false}, hang(5), hang(5), {true, false, 5, true}}},
		{"another seq", 3, []end{hang(5), hang(6), hang(6), {true, false, 6, true}}},
		{"nothing in flight", 2, []end{hang(5), {true, false, 0, false}, hang(5), {true, false, 5, true}}},
		{"off", 0, []end{hang(5), hang(5), hang(5), hang(5)}},
		{"after one", 1, []end{{true, false, 9, true}, {true, true, 9, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := poisonWatch{after: tc.after}
			for i, e := range tc.ends {
				got, times := w.observe(e.hungUp, e.answered, e.oldest)
				if got != e.poison || (got && times != tc.after) {
					t.Fatalf("end %d (%+v): poison %v after %d", i, e, got, times)
				}
			}
		})
	}
}

// Network faults while messages are in flight — resets and a dead link, with nothing acknowledged on
// the connection — never poison a good message, even with PoisonAfter 1.
func TestPoisonNotTriggeredByNetworkFaults(t *testing.T) {
	b := startHostile(t, hostilebroker.Options{})
	px, err := netproxy.New(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	src := newFakeSource()
	var ends []string
	var endsMu sync.Mutex
	c := startClient(t, Config{URL: "ws://" + px.Addr() + "/mqtt", ClientID: "faults", Backoff: fastBackoff,
		Keepalive: time.Second, PoisonAfter: 1, OnConnectError: func(err error) {
			endsMu.Lock()
			ends = append(ends, err.Error())
			endsMu.Unlock()
		}}, src)
	var all []uint64
	for round := 1; round <= 4; round++ {
		testutil.WaitFor(t, 20*time.Second, "connected", func() bool {
			st := c.Status()
			return st.State == StateConnected && st.Connects == uint64(round)
		})
		px.Blackhole() // from here on nothing is acknowledged on this connection
		all = append(all, src.add(5, qos1("f"))...)
		testutil.WaitFor(t, 10*time.Second, "messages in flight", func() bool { return c.Status().Inflight > 0 })
		if round < 4 {
			px.Cut() // connection reset
		} // round 4: the keepalive finds the dead link
		testutil.WaitFor(t, 10*time.Second, "the client to notice", func() bool { return c.Status().State != StateConnected })
		px.Restore()
	}
	src.waitSettled(t, len(all), 30*time.Second)
	src.checkAckedOnce(t, all)
	if st := c.Status(); st.Poisoned != 0 || st.Rejected != 0 || st.Connects < 5 {
		t.Fatalf("poisoned %d rejected %d connects %d", st.Poisoned, st.Rejected, st.Connects)
	}
	endsMu.Lock()
	t.Logf("connection ends: %q", ends)
	endsMu.Unlock()
}

// OnMessage runs on the connection's reader: the transport keeps no queue (and no drop rule) in front
// of it. While it is stalled the messages behind wait unacknowledged, nothing is dropped, and a QoS 1
// message is PUBACKed only after OnMessage returned; released, all arrive in order.
func TestOnMessageOnReaderNoQueue(t *testing.T) {
	b := startHostile(t, hostilebroker.Options{})
	release := make(chan struct{})
	var got received
	var first sync.Once
	entered := make(chan int, 1)
	c := startClient(t, Config{URL: b.URL(), ClientID: "onreader",
		Subscriptions: []Subscription{{Filter: "in/#", QoS: 1}},
		OnMessage: func(m Received) {
			first.Do(func() { entered <- pubacks(b); <-release })
			got.on(m)
		}}, newFakeSource())
	testutil.WaitFor(t, 10*time.Second, "subscribed", func() bool { return b.Publish("in/0", []byte("first"), 1) == 1 })
	if n := <-entered; n != 0 {
		t.Fatalf("%d PUBACKs before OnMessage returned", n)
	}
	const n = 50
	payload := make([]byte, 8<<10)
	for i := 1; i <= n; i++ {
		b.Publish(fmt.Sprintf("in/%d", i), payload, 1) // written to the socket; the client's reader is stalled
	}
	if st, acks := c.Status(), pubacks(b); acks != 0 || st.DroppedIncoming != 0 {
		t.Fatalf("while OnMessage is stalled: %d PUBACKs, %d dropped by the transport", acks, st.DroppedIncoming)
	}
	close(release)
	testutil.WaitFor(t, 20*time.Second, "every message and its PUBACK", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		return len(got.msgs) == n+1 && pubacks(b) == n+1
	})
	got.mu.Lock()
	defer got.mu.Unlock()
	for i, m := range got.msgs {
		if m.Topic != fmt.Sprintf("in/%d", i) {
			t.Fatalf("message %d is %s: out of order", i, m.Topic)
		}
	}
	if st := c.Status(); st.DroppedIncoming != 0 || st.State != StateConnected {
		t.Fatalf("status %+v", st)
	}
}

func pubacks(b *hostilebroker.Broker) int {
	n := 0
	for _, a := range b.Acks() {
		if a.Type == packets.PUBACK {
			n++
		}
	}
	return n
}
