package transport

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

var allVersions = []Protocol{Protocol5, Protocol311, Protocol31}

// inbox collects what OnMessage receives.
type inbox struct {
	mu  sync.Mutex
	got []Received
}

func (b *inbox) add(m Received) { b.mu.Lock(); b.got = append(b.got, m); b.mu.Unlock() }

func (b *inbox) topics(prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.got {
		if strings.HasPrefix(m.Topic, prefix) {
			out = append(out, m.Topic)
		}
	}
	return out
}

// awaitInbound publishes probes on prefix+"probe/N" through Mosquitto until one reaches the client: its
// subscription is in place.
func awaitInbound(t testing.TB, m *mosquitto.Broker, in *inbox, prefix string) {
	t.Helper()
	for i := 0; ; i++ {
		topic := fmt.Sprintf("%sprobe/%d", prefix, i)
		mosquitto.Publish(t, m.TCPAddr(), topic, []byte("probe"), 1, false)
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			for _, got := range in.topics(prefix) {
				if got == topic {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if i > 75 {
			t.Fatalf("no probe on %s reached the client", prefix)
		}
	}
}

// Mosquitto speaks all three versions: with the transport forced to each, messages arrive in order
// and acked once, a broker message reaches OnMessage, and Status and the log name the version.
func TestMosquittoEachVersion(t *testing.T) {
	m := startMosquitto(t)
	for _, v := range allVersions {
		t.Run(string(v), func(t *testing.T) {
			prefix := "v" + strings.ReplaceAll(string(v), ".", "") + "/"
			sub := mosquitto.Subscribe(t, m.TCPAddr(), prefix+"#")
			src := newFakeSource()
			seqs := src.add(500, qos1(strings.TrimSuffix(prefix, "/")))
			var in inbox
			var logs testutil.Buffer
			c := startClient(t, Config{URL: m.WSURL(), ClientID: "each-" + string(v), Protocol: v, MaxInflight3: 16,
				Subscriptions: []Subscription{{Filter: "in/" + prefix + "#", QoS: 1}}, OnMessage: in.add,
				Logger: logTo(t, &logs)}, src)
			src.waitSettled(t, len(seqs), 30*time.Second)
			src.checkAckedOnce(t, seqs)
			if _, err := sub.WaitCount(len(seqs), 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if dups := checkFirstArrivals(t, seqsOf(t, sub.Messages()), seqs); dups != 0 {
				t.Fatalf("%d duplicates without a reconnect", dups)
			}
			awaitInbound(t, m, &in, "in/"+prefix)
			st := c.Status()
			wantWindow := 64
			if v != Protocol5 {
				wantWindow = 16
			}
			if st.Protocol != string(v) || st.Window != wantWindow {
				t.Fatalf("status protocol %q window %d, want %q and %d", st.Protocol, st.Window, v, wantWindow)
			}
			if !strings.Contains(logs.String(), "protocol="+string(v)) {
				t.Fatalf("the connect log line does not name the version:\n%s", logs.String())
			}
		})
	}
}

// Store and forward per version: Mosquitto is killed mid-stream and restarted; everything not acked
// before the kill arrives after the restart, in order of first arrival, each message acked once.
func TestMosquittoKillRestartEachVersion(t *testing.T) {
	for _, v := range allVersions {
		t.Run(string(v), func(t *testing.T) {
			m := startMosquitto(t)
			sub := mosquitto.Subscribe(t, m.TCPAddr(), "k/#", mosquitto.Persistent())
			src := newFakeSource()
			seqs := src.add(1000, qos1("k"))
			c := startClient(t, Config{URL: m.WSURL(), ClientID: "kill-" + string(v), Protocol: v,
				Backoff: FullJitter(20*time.Millisecond, 300*time.Millisecond)}, src)
			if _, err := sub.WaitCount(200, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			m.Kill()
			src.mu.Lock()
			ackedBefore := len(src.acked)
			src.mu.Unlock()
			m.Restart(t)
			awaitSubscribed(t, m, sub, fmt.Sprintf("k/probe/%d", time.Now().UnixNano()))
			src.waitSettled(t, len(seqs), 30*time.Second)
			src.checkAckedOnce(t, seqs)
			if c.Status().Connects < 2 || c.Status().Protocol != string(v) {
				t.Fatalf("status %+v", c.Status())
			}
			t.Logf("acked before the kill: %d of %d", ackedBefore, len(seqs))
		})
	}
}

// A 3.x broker refuses a message by disconnecting (no PUBACK reason codes): the poison rule
// dead-letters it and the messages behind it are delivered, for every version.
func TestPoisonEachVersion(t *testing.T) {
	m := startMosquitto(t)
	for _, v := range allVersions {
		t.Run(string(v), func(t *testing.T) {
			g := startGate(t, m.TCPAddr(), gateOptions{hangUpOn: "poison"})
			sub := mosquitto.Subscribe(t, m.TCPAddr(), "pz/#")
			src := newFakeSource()
			mk := func(topic string) func(uint64) Message {
				return func(uint64) Message { return Message{Topic: topic, Payload: []byte(topic), QoS: 1} }
			}
			a := src.add(1, mk("pz/a"))[0]
			p := src.add(1, mk("poison"))[0]
			b := src.add(1, mk("pz/b"))[0]
			// A window of 1: the gate hangs up before Mosquitto's PUBACK for the message ahead could come
			// back, so with a wider window that one would be the oldest in flight.
			c := startClient(t, Config{URL: g.URL(), ClientID: "poison-" + string(v), Protocol: v, Backoff: fastBackoff,
				PoisonAfter: 3, MaxInflight: 1, MaxInflight3: 1}, src)
			src.waitSettled(t, 3, 30*time.Second)
			src.checkAckedOnce(t, []uint64{a, b})
			src.mu.Lock()
			why := src.rejected[p]
			src.mu.Unlock()
			if !errors.Is(why, ErrPoison) {
				t.Fatalf("poison message: %v, want ErrPoison", why)
			}
			if _, err := sub.WaitCount(2, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if st := c.Status(); st.Poisoned != 1 || g.hangUps.Load() < 3 {
				t.Fatalf("poisoned %d, hang-ups %d", st.Poisoned, g.hangUps.Load())
			}
		})
	}
}

// protocol = "auto" against brokers that do not speak MQTT 5: one answers MQTT 5 with a 3.1.1 CONNACK
// return code 1 (Aedes 1.x), one closes the WebSocket with 1011 (RabbitMQ 3.10). The client falls back
// to 3.1.1 at once, keeps it for later connections, and says so in Status and the log. A broker that
// refuses 3.1.1 as well gets 3.1.
func TestAutoNegotiation(t *testing.T) {
	m := startMosquitto(t)
	for _, tc := range []struct {
		name   string
		gate   gateOptions
		want   Protocol
		levels string // CONNECT protocol levels the gate saw on the first connection, in order
	}{
		{"rc1", gateOptions{refuse: "rc1", refuseLevels: []byte{5}}, Protocol311, "5,4"},
		{"close1011", gateOptions{refuse: "close1011", refuseLevels: []byte{5}}, Protocol311, "5,4"},
		{"only 3.1", gateOptions{refuse: "rc1", refuseLevels: []byte{5, 4}}, Protocol31, "5,4,3"},
		{"speaks 5", gateOptions{}, Protocol5, "5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGate(t, m.TCPAddr(), tc.gate)
			sub := mosquitto.Subscribe(t, m.TCPAddr(), "auto/#")
			src := newFakeSource()
			seqs := src.add(50, qos1("auto"))
			var logs testutil.Buffer
			c := startClient(t, Config{URL: g.URL(), ClientID: "auto-" + tc.name, Protocol: ProtocolAuto,
				Backoff: fastBackoff, Logger: logTo(t, &logs)}, src)
			src.waitSettled(t, len(seqs), 20*time.Second)
			src.checkAckedOnce(t, seqs)
			if _, err := sub.WaitCount(len(seqs), 10*time.Second); err != nil {
				t.Fatal(err)
			}
			var levels []string
			for _, l := range []byte{5, 4, 3} {
				if g.count(&g.levels, l) > 0 {
					levels = append(levels, fmt.Sprint(l))
				}
			}
			st := c.Status()
			if st.Protocol != string(tc.want) || st.Connects != 1 || strings.Join(levels, ",") != tc.levels {
				t.Fatalf("protocol %q connects %d levels tried %v; want %q, 1 and %s", st.Protocol, st.Connects, levels, tc.want, tc.levels)
			}
			if !strings.Contains(logs.String(), "mqtt connected") || !strings.Contains(logs.String(), "protocol="+string(tc.want)) {
				t.Fatalf("log:\n%s", logs.String())
			}
			// The version is kept: a reconnect tries only it.
			before := g.count(&g.levels, byte(5))
			c.Status() // (no-op: keeps the read above close to the kick)
			m.Kill()
			m.Restart(t)
			testutil.WaitFor(t, 20*time.Second, "reconnected", func() bool {
				st := c.Status()
				return st.Connects >= 2 && st.State == StateConnected
			})
			if tc.want != Protocol5 && g.count(&g.levels, byte(5)) != before {
				t.Fatalf("the reconnect tried MQTT 5 again; the version that worked must be kept")
			}
			if g.count(&g.subs, "mqttv3.1") > 0 != (tc.want == Protocol31) {
				t.Fatalf("subprotocols used: mqttv3.1 %d times", g.count(&g.subs, "mqttv3.1"))
			}
		})
	}
}

// Forced versions give clear errors: MQTT 5 against a 3.1.1-only broker names the fix; a close before
// CONNACK mentions the version as a likely cause, except with ClosedIsNotVersion (AWS IoT), where it
// is a policy problem and auto does not fall back.
func TestForcedVersionErrors(t *testing.T) {
	m := startMosquitto(t)
	for _, tc := range []struct {
		name    string
		gate    gateOptions
		cfg     Config
		want    string
		notWant string
	}{
		{"5 vs 3.1.1 only", gateOptions{refuse: "rc1", refuseLevels: []byte{5}}, Config{Protocol: Protocol5},
			`the broker speaks MQTT 3.1.1 only (CONNACK return code 1: unacceptable protocol version); set protocol = "auto" or "3.1.1"`, ""},
		{"5 vs close", gateOptions{refuse: "close1011", refuseLevels: []byte{5}}, Config{Protocol: Protocol5},
			`a broker that does not speak MQTT 5 may close the connection like this; set protocol = "auto" or "3.1.1"`, ""},
		{"3.1.1 vs 3.1 only", gateOptions{refuse: "rc1", refuseLevels: []byte{5, 4}}, Config{Protocol: Protocol311},
			`the broker does not speak MQTT 3.1.1 (CONNACK return code 1: unacceptable protocol version); set protocol = "auto"`, ""},
		{"aws close", gateOptions{refuse: "close1011", refuseLevels: []byte{5}}, Config{Protocol: ProtocolAuto, ClosedIsNotVersion: true},
			"connection closed by the broker right after CONNECT", "protocol"},
		{"3.1 needs its subprotocol", gateOptions{demand: "mqttv3.1"}, Config{Protocol: Protocol5},
			"HTTP 400 Bad Request: 400 Bad Request: subprotocol mqttv3.1 required", "<"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGate(t, m.TCPAddr(), tc.gate)
			cfg := tc.cfg
			cfg.URL, cfg.ClientID, cfg.Backoff = g.URL(), "forced", fastBackoff
			c := startClient(t, cfg, newFakeSource())
			testutil.WaitFor(t, 10*time.Second, "a failed attempt", func() bool { return c.Status().Attempts >= 2 })
			st := c.Status()
			if st.Connects != 0 || !strings.Contains(st.LastError, tc.want) || (tc.notWant != "" && strings.Contains(st.LastError, tc.notWant)) {
				t.Fatalf("connects %d, last error:\n%s\nwant it to contain %q", st.Connects, st.LastError, tc.want)
			}
			if tc.cfg.ClosedIsNotVersion && g.count(&g.levels, byte(4)) > 0 {
				t.Fatal("a close before CONNACK made the client try 3.1.1 although ClosedIsNotVersion")
			}
			t.Logf("last error: %s", st.LastError)
		})
	}
}

// MQTT 3.1 through a server that demands the mqttv3.1 subprotocol.
func TestMQTT31Subprotocol(t *testing.T) {
	m := startMosquitto(t)
	g := startGate(t, m.TCPAddr(), gateOptions{demand: "mqttv3.1"})
	sub := mosquitto.Subscribe(t, m.TCPAddr(), "v31/#")
	src := newFakeSource()
	seqs := src.add(100, qos1("v31"))
	c := startClient(t, Config{URL: g.URL(), ClientID: "v31", Protocol: Protocol31}, src)
	src.waitSettled(t, len(seqs), 20*time.Second)
	src.checkAckedOnce(t, seqs)
	if _, err := sub.WaitCount(len(seqs), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st.Protocol != "3.1" || g.count(&g.levels, byte(3)) == 0 {
		t.Fatalf("protocol %q", st.Protocol)
	}
}

// Persistent session: with SessionExpiry, QoS 1 messages published to our subscription while the link
// is cut are delivered after it is back (session present); with a clean session they are lost.
func TestPersistentSession(t *testing.T) {
	m := startMosquitto(t)
	for _, tc := range []struct {
		v      Protocol
		expiry time.Duration
	}{
		{Protocol5, time.Hour}, {Protocol311, time.Hour}, {Protocol5, 0},
	} {
		name := fmt.Sprintf("%s expiry %s", tc.v, tc.expiry)
		t.Run(name, func(t *testing.T) {
			px, err := netproxy.New(strings.TrimSuffix(strings.TrimPrefix(m.WSURL(), "ws://"), "/mqtt"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = px.Close() })
			prefix := fmt.Sprintf("cmd/%s/%d/", strings.ReplaceAll(string(tc.v), ".", ""), tc.expiry/time.Second)
			var in inbox
			c := startClient(t, Config{URL: "ws://" + px.Addr() + "/mqtt", ClientID: "persist-" + strings.ReplaceAll(name, " ", "-"),
				Protocol: tc.v, SessionExpiry: tc.expiry, Backoff: fastBackoff,
				Subscriptions: []Subscription{{Filter: prefix + "#", QoS: 1}}, OnMessage: in.add}, newFakeSource())
			awaitInbound(t, m, &in, prefix)
			px.Cut()
			testutil.WaitFor(t, 10*time.Second, "the cut noticed", func() bool { return c.Status().State != StateConnected })
			for i := range 5 {
				mosquitto.Publish(t, m.TCPAddr(), fmt.Sprintf("%smissed/%d", prefix, i), []byte("while away"), 1, false)
			}
			px.Restore()
			testutil.WaitFor(t, 10*time.Second, "reconnected", func() bool { return c.Status().Connects >= 2 })
			if tc.expiry == 0 {
				awaitInbound(t, m, &in, prefix) // anything held would have arrived before this probe
				if got := in.topics(prefix + "missed/"); len(got) != 0 || c.Status().SessionPresent {
					t.Fatalf("clean session: got %v, session present %v", got, c.Status().SessionPresent)
				}
				return
			}
			testutil.WaitFor(t, 10*time.Second, "the 5 messages sent while away", func() bool { return len(in.topics(prefix+"missed/")) >= 5 })
			if !c.Status().SessionPresent {
				t.Fatal("session present is false after a reconnect to a persistent session")
			}
			t.Logf("after the cut: %v", in.topics(prefix+"missed/"))
		})
	}
}
