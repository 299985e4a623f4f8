package e2e

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/aedes"
	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/mqtt311"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/internal/rabbitmq"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/internal/wsproxy"
)

// Issue 10 on the real binary: brokers that speak only MQTT 3.1.1 (Aedes 1.x, RabbitMQ 3.10), MQTT 3.1
// behind a WebSocket server that demands the mqttv3.1 subprotocol, persistent sessions across a network
// cut, and Mosquitto with the agent forced to each version.

// broker311 is a real broker that speaks only MQTT 3.1.1 and 3.1.
type broker311 struct {
	name    string
	start   func(t *testing.T) (wsURL, tcpAddr string)
	forced5 string // what the agent must say with protocol = "5"
}

var brokers311 = []broker311{
	{name: "aedes", start: func(t *testing.T) (string, string) {
		b := aedes.Start(t)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("aedes log:\n%s", b.LogTail())
			}
		})
		return b.WSURL(), b.TCPAddr()
	}, forced5: `the broker speaks MQTT 3.1.1 only (CONNACK return code 1: unacceptable protocol version); set protocol = "auto" or "3.1.1"`},
	{name: "rabbitmq", start: func(t *testing.T) (string, string) {
		b := rabbitmq.Shared(t) // boots in ~15 s: one per test binary, stopped by TestMain
		return b.WSURL(), b.TCPAddr()
	}, forced5: `a broker that does not speak MQTT 5 may close the connection like this; set protocol = "auto" or "3.1.1"`},
}

// sub311 is an MQTT 3.1.1 checker subscriber as a msgSource.
type sub311 struct{ *mqtt311.Sub }

func (s sub311) Messages() []mosquitto.Msg {
	in := s.Sub.Messages()
	out := make([]mosquitto.Msg, len(in))
	for i, m := range in {
		out[i] = mosquitto.Msg{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retained}
	}
	return out
}

// proxied puts a netproxy (for cuts) in front of a ws:// URL and returns it with the URL through it.
func proxied(t *testing.T, wsURL string) (*netproxy.Proxy, string) {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := netproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	u.Host = p.Addr()
	return p, u.String()
}

// cliSub is `edge-agent sub -v` running as its own process against an agent.
type cliSub struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  testutil.Buffer // its stdout and stderr
}

// startSub runs `edge-agent sub -v -t filter …args`; a t.Cleanup kills it.
func (p *agentProc) startSub(t *testing.T, filter string, args ...string) *cliSub {
	t.Helper()
	s := &cliSub{done: make(chan struct{})}
	s.cmd = exec.Command(p.bin, append([]string{"sub", "-v", "-t", filter}, args...)...)
	s.cmd.Env = append(os.Environ(), "EDGE_AGENT_SOCKET="+p.sock)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// lines returns the output lines that contain substr.
func (s *cliSub) lines(substr string) []string {
	var out []string
	for _, l := range strings.Split(s.out.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func (s *cliSub) String() string { return s.out.String() }

// probe publishes (QoS 1, with publish) to topic every 200 ms until the sub printed a line for it: the
// agent's subscription is in place end to end. It returns the number of probes sent.
func (s *cliSub) probe(t *testing.T, topic string, publish func(topic string, payload []byte)) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 1; ; i++ {
		publish(topic, []byte(fmt.Sprintf("probe-%d", i)))
		wait := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(wait) {
			if len(s.lines(topic+" probe-")) > 0 {
				return i
			}
			select {
			case <-s.done:
				t.Fatalf("edge-agent sub exited: %v\n%s", s.cmd.ProcessState, s)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge-agent sub printed no probe on %s within 20s:\n%s", topic, s)
		}
	}
}

// mqttLines is what the agent logged about its broker connections, for the report.
func (p *agentProc) mqttLines() string {
	var out []string
	for _, l := range strings.Split(p.agentLog(), "\n") {
		if strings.Contains(l, "mqtt") || strings.Contains(l, "protocol") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metric returns the /metrics lines that start with name.
func (p *agentProc) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := p.httpClient().Get("http://agent/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// statusText is `edge-agent status` (the human form).
func (p *agentProc) statusText(t *testing.T) string {
	t.Helper()
	out, errOut, code := p.cli("", "status")
	if code != 0 {
		t.Fatalf("edge-agent status: exit %d: %s", code, errOut)
	}
	return out
}

// TestBrokers311 runs issue 10's acceptance against Aedes 1.x and RabbitMQ 3.10, which speak only MQTT
// 3.1.1: the agent connects by itself with the default protocol; 2,000 messages published through the
// local API while the link is cut and the agent is killed with SIGKILL (and restarted on the same state
// dir) all reach a 3.1.1 subscriber, first arrivals in order, none of the acknowledged ones lost;
// `edge-agent sub` prints what a 3.1.1 client publishes; protocol = "5" gives the clear error in the log
// and in `edge-agent status`.
func TestBrokers311(t *testing.T) {
	seed := testSeed(t)
	for _, bk := range brokers311 {
		t.Run(bk.name, func(t *testing.T) {
			wsURL, tcpAddr := bk.start(t)
			proxy, url := proxied(t, wsURL)
			prefix := fmt.Sprintf("e311%s%d", bk.name, time.Now().UnixNano()%1e6)
			sub := sub311{mqtt311.Subscribe(t, tcpAddr, prefix+"/#", mqtt311.Persistent())}
			ag := newAgentWith(t, url, agentOptions{Keepalive: faultKeepaliveStr, FastReconnect: true})
			ag.start()
			st := ag.waitState(20*time.Second, "connected with the default protocol", connected)
			if st.Protocol != "3.1.1" {
				t.Fatalf("status protocol %q, want 3.1.1 (status %s)", st.Protocol, ag.rawStatus())
			}
			acrossCutAndKill(t, ag, proxy, sub, prefix, seed)

			// `edge-agent sub` prints what a 3.1.1 client publishes to its filter.
			pubber := mqtt311.Connect(t, tcpAddr)
			cs := ag.startSub(t, prefix+"/down/#")
			probes := cs.probe(t, prefix+"/down/probe", func(topic string, p []byte) { pubber.Publish(t, topic, p, 1) })
			pubber.Publish(t, prefix+"/down/cmd", []byte("reboot please"), 1)
			testutil.WaitFor(t, 10*time.Second, "sub to print the 3.1.1 client's message", func() bool {
				return len(cs.lines(prefix+"/down/cmd reboot please")) == 1
			})
			t.Logf("%s: edge-agent sub printed %q after %d probe(s)", bk.name, cs.lines(prefix + "/down/cmd")[0], probes)

			t.Logf("%s: agent log (mqtt lines):\n%s", bk.name, ag.mqttLines())
			t.Logf("%s: edge-agent status:\n%s", bk.name, ag.statusText(t))
			t.Logf("%s: status JSON: %s", bk.name, ag.rawStatus())
			if m := ag.metric(t, "edge_agent_mqtt_protocol_info"); !strings.Contains(m, `protocol="3.1.1"`) {
				t.Fatalf("/metrics: %q, want edge_agent_mqtt_protocol_info{protocol=\"3.1.1\"}", m)
			} else {
				t.Logf("%s: /metrics: %s", bk.name, m)
			}

			forced5(t, bk, wsURL)
		})
	}
}

// acrossCutAndKill publishes 2,000 numbered messages from two producers (single POSTs and NDJSON
// batches) while the link is cut and the agent is killed with SIGKILL and restarted, then checks that
// every acknowledged one reached sub, first arrivals in order per producer.
func acrossCutAndKill(t *testing.T, ag *agentProc, proxy *netproxy.Proxy, sub msgSource, prefix string, seed uint64) {
	t.Helper()
	start := time.Now()
	s := startStream(t, ag, prefix, 2, seed, func(p *producer) { p.limit, p.maxBatch, p.pause = 1000, 10, 40*time.Millisecond })
	finished := make(chan struct{})
	go func() { s.wait(); close(finished) }()
	c := newChecker(prefix, s.ps)
	testutil.WaitFor(t, 30*time.Second, "300 messages at the subscriber before the cut", func() bool {
		c.ingest(sub.Messages())
		return len(c.seen[0])+len(c.seen[1]) >= 300
	})
	proxy.Cut()
	cutAt := time.Now()
	ag.waitState(10*time.Second, "the agent to notice the cut", func(st apiStatus) bool { return !connected(st) })
	depthAtKill := ag.waitState(20*time.Second, "500 messages queued while cut", func(st apiStatus) bool { return st.Queue.Depth >= 500 }).Queue.Depth
	ag.kill() // kill -9 with the producers running and the link cut
	ag.start()
	depthAfter := ag.waitState(20*time.Second, "the queue to grow after the restart", func(st apiStatus) bool {
		select {
		case <-finished:
			return true
		default:
			return st.Queue.Depth > depthAtKill+400
		}
	}).Queue.Depth
	proxy.Restore()
	restoredAt := time.Now()
	cut := restoredAt.Sub(cutAt)
	st := ag.waitState(20*time.Second, "the restarted agent to connect", connected)
	back := time.Since(restoredAt)
	if st.Protocol != "3.1.1" {
		t.Fatalf("after kill -9 and restart: protocol %q, want 3.1.1", st.Protocol)
	}
	s.done(t, 60*time.Second)
	if !ag.drained(60 * time.Second) {
		res := awaitDelivery(t, sub, c, time.Second)
		t.Fatalf("the queue did not drain within 60s; subscriber: %s; missing e.g. %v; status %s", res, c.firstMissing(5), ag.rawStatus())
	}
	res := awaitDelivery(t, sub, c, 30*time.Second)
	if res.Lost != 0 {
		t.Fatalf("%d acknowledged messages lost, e.g. %v", res.Lost, c.firstMissing(10))
	}
	unanswered := 0
	for _, p := range s.ps {
		unanswered += p.unanswered
	}
	if res.Acked+unanswered != 2000 {
		t.Fatalf("%d acknowledged + %d unanswered, want 2000 published", res.Acked, unanswered)
	}
	t.Logf("2000 published (%d unanswered by the killed agent): %s; link cut for %s, queue %d at the kill -9, %d before restore; reconnected %s after restore; whole run %s",
		unanswered, res, cut.Round(time.Millisecond), depthAtKill, depthAfter, back.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// forced5 starts a second agent with protocol = "5" against the broker and checks the clear error in
// its status, in `edge-agent status` and in its log.
func forced5(t *testing.T, bk broker311, wsURL string) {
	t.Helper()
	ag := newAgentWith(t, wsURL, agentOptions{FastReconnect: true, Broker: "protocol = \"5\"\n"})
	ag.start()
	st := ag.waitState(20*time.Second, "a refused connection attempt", func(st apiStatus) bool {
		return strings.Contains(st.LastError, bk.forced5)
	})
	if st.State == "connected" || st.Connects != 0 {
		t.Fatalf("forced MQTT 5 connected to a 3.1.1-only broker: %s", ag.rawStatus())
	}
	text := ag.statusText(t)
	if !strings.Contains(text, bk.forced5) {
		t.Fatalf("edge-agent status does not say %q:\n%s", bk.forced5, text)
	}
	logged := strings.ReplaceAll(bk.forced5, `"`, `\"`) // as logfmt quotes it
	testutil.WaitFor(t, 10*time.Second, "the error in the log", func() bool { return strings.Contains(ag.agentLog(), logged) })
	t.Logf("%s, protocol = \"5\": edge-agent status:\n%s", bk.name, text)
	t.Logf("%s, protocol = \"5\": agent log (mqtt lines):\n%s", bk.name, ag.mqttLines())
}

// TestMQTT31Subprotocol: a WebSocket server that accepts only the "mqttv3.1" subprotocol, in front of
// Mosquitto's TCP listener. The agent forced to "3.1", and the agent on "auto" (the server refuses the
// upgrades that offer "mqtt" with HTTP 400, so auto steps down to 3.1, whose upgrade offers mqttv3.1),
// speaks MQTT 3.1 (protocol name MQIsdp, level 3) to it, and store-and-forward works.
func TestMQTT31Subprotocol(t *testing.T) {
	b := mosquitto.Start(t)
	for _, protocol := range []string{"3.1", "auto"} {
		t.Run(protocol, func(t *testing.T) {
			gate := wsproxy.Start(t, b.TCPAddr())
			topic := "v31" + strings.ReplaceAll(protocol, ".", "")
			sub := mosquitto.Subscribe(t, b.TCPAddr(), topic+"/#")
			ag := newAgentWith(t, gate.URL(), agentOptions{FastReconnect: true, Broker: fmt.Sprintf("protocol = %q\n", protocol)})
			ag.start()
			st := ag.waitState(20*time.Second, "connected through the mqttv3.1 gate", connected)
			storeAndForward(t, ag, sub, topic, 200)
			var levels []string
			for _, c := range gate.Connects() {
				levels = append(levels, fmt.Sprintf("%s/%d", c.ProtocolName, c.ProtocolLevel))
			}
			if st.Protocol != "3.1" || len(levels) == 0 || levels[len(levels)-1] != "MQIsdp/3" {
				t.Fatalf("protocol %q, CONNECTs relayed %v; want 3.1 (MQIsdp/3)", st.Protocol, levels)
			}
			t.Logf("protocol = %q: status protocol %s, CONNECTs relayed %v, upgrades refused %d; log:\n%s",
				protocol, st.Protocol, levels, gate.Refused(), ag.mqttLines())
		})
	}
}

// storeAndForward publishes n numbered messages with `edge-agent pub -l` (the agent connected), then
// checks they reach sub in order.
func storeAndForward(t *testing.T, ag *agentProc, sub *mosquitto.Sub, topic string, n int) {
	t.Helper()
	if _, errOut, code := ag.cli(numbered(1, n), "pub", "-t", topic+"/seq", "-q", "1", "-l"); code != 0 {
		t.Fatalf("pub -l: exit %d: %s", code, errOut)
	}
	msgs, err := sub.WaitDistinct(n, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mosquitto.CheckNumbered(msgs, n); err != nil {
		t.Fatal(err)
	}
}

// TestPersistentSessionAcrossCut: a local `edge-agent sub` is open while the agent's link is cut; QoS 1
// messages another client publishes to its filter during the cut reach it once the link is back — for
// MQTT 5 (Mosquitto) and 3.1.1 (Aedes, and Mosquitto with the agent forced to 3.1.1). With
// session_expiry = "0" (a clean session on every connection) they do not: the control.
func TestPersistentSessionAcrossCut(t *testing.T) {
	mosq := mosquitto.Start(t)
	aed := aedes.Start(t)
	for _, tc := range []struct {
		name, wsURL, tcpAddr, broker string
		protocol                     string // the version the agent must end on
		clean                        bool
	}{
		{"mosquitto 5 auto", mosq.WSURL(), mosq.TCPAddr(), "", "5", false}, // the defaults: auto, session_expiry 1h
		{"aedes 3.1.1 auto", aed.WSURL(), aed.TCPAddr(), "", "3.1.1", false},
		{"mosquitto 3.1.1", mosq.WSURL(), mosq.TCPAddr(), "protocol = \"3.1.1\"\n", "3.1.1", false},
		{"mosquitto 5 clean", mosq.WSURL(), mosq.TCPAddr(), "protocol = \"5\"\nsession_expiry = \"0\"\n", "5", true},
		{"aedes 3.1.1 clean", aed.WSURL(), aed.TCPAddr(), "session_expiry = \"0\"\n", "3.1.1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, url := proxied(t, tc.wsURL)
			ag := newAgentWith(t, url, agentOptions{Keepalive: faultKeepaliveStr, FastReconnect: true, Broker: tc.broker})
			ag.start()
			before := ag.waitState(20*time.Second, "connected", connected)
			prefix := fmt.Sprintf("cmd/%d", time.Now().UnixNano()%1e9)
			pubber := mqtt311.Connect(t, tc.tcpAddr)
			publish := func(topic string, p []byte) { pubber.Publish(t, topic, p, 1) }
			cs := ag.startSub(t, prefix+"/#")
			cs.probe(t, prefix+"/probe", publish)

			proxy.Cut()
			ag.waitState(10*time.Second, "the agent to notice the cut", func(st apiStatus) bool { return !connected(st) })
			const away = 5
			for i := range away {
				publish(fmt.Sprintf("%s/away/%d", prefix, i), []byte("while the gateway was offline"))
			}
			proxy.Restore()
			restoredAt := time.Now()
			st := ag.waitState(20*time.Second, "reconnected", func(st apiStatus) bool {
				return connected(st) && st.Connects > before.Connects
			})
			if tc.clean {
				// Anything the broker held would arrive before a probe sent after the reconnect.
				cs.probe(t, prefix+"/probe2", publish)
				if got := cs.lines(prefix + "/away/"); len(got) != 0 || st.SessionPresent || st.Protocol != tc.protocol {
					t.Fatalf("session_expiry = 0: sub printed %q, session present %v, protocol %q", got, st.SessionPresent, st.Protocol)
				}
				t.Logf("%s: clean session: none of the %d messages sent during the cut arrived (session present false)", tc.name, away)
				return
			}
			testutil.WaitFor(t, 15*time.Second, "the messages sent during the cut", func() bool {
				return len(cs.lines(prefix+"/away/")) >= away
			})
			took := time.Since(restoredAt)
			if st.Protocol != tc.protocol || !st.SessionPresent {
				t.Fatalf("want protocol %s and session_present true after reconnecting to a persistent session: %s", tc.protocol, ag.rawStatus())
			}
			got := cs.lines(prefix + "/away/")
			t.Logf("%s: %d of %d messages sent during the cut printed by edge-agent sub %s after restore (%d lines, duplicates %d); status protocol %s, session_present %v",
				tc.name, away, away, took.Round(time.Millisecond), len(got), len(got)-away, st.Protocol, st.SessionPresent)
		})
	}
}

// TestMosquittoEachVersion: Mosquitto speaks 5, 3.1.1 and 3.1; with the agent forced to each, a
// store-and-forward run passes: messages published while the link is cut, a kill -9 of the agent while
// they are queued, then the link back: all arrive, in order.
func TestMosquittoEachVersion(t *testing.T) {
	b := mosquitto.Start(t)
	for _, v := range []string{"5", "3.1.1", "3.1"} {
		t.Run(v, func(t *testing.T) {
			proxy, url := proxied(t, b.WSURL())
			topic := "each" + strings.ReplaceAll(v, ".", "")
			sub := mosquitto.Subscribe(t, b.TCPAddr(), topic+"/#")
			ag := newAgentWith(t, url, agentOptions{Keepalive: faultKeepaliveStr, FastReconnect: true, Broker: fmt.Sprintf("protocol = %q\n", v)})
			proxy.Cut()
			ag.start()
			const n = 500
			if _, errOut, code := ag.cli(numbered(1, n), "pub", "-t", topic+"/seq", "-q", "1", "-l"); code != 0 {
				t.Fatalf("pub -l: exit %d: %s", code, errOut)
			}
			if d := ag.mustStatus().Queue.Depth; d != n {
				t.Fatalf("queue depth offline %d, want %d", d, n)
			}
			ag.kill()
			ag.start()
			proxy.Restore()
			restoredAt := time.Now()
			msgs, err := sub.WaitDistinct(n, 30*time.Second)
			if err != nil {
				t.Fatalf("after restore: %v; status %s", err, ag.rawStatus())
			}
			took := time.Since(restoredAt)
			dups, err := mosquitto.CheckNumbered(msgs, n)
			if err != nil {
				t.Fatal(err)
			}
			if !ag.drained(10 * time.Second) {
				t.Fatalf("queue not drained: %s", ag.rawStatus())
			}
			st := ag.mustStatus()
			if st.Protocol != v {
				t.Fatalf("status protocol %q, want %q", st.Protocol, v)
			}
			t.Logf("MQTT %s: %d queued offline across a kill -9, all delivered in order %s after restore, %d duplicates; %s",
				v, n, took.Round(time.Millisecond), dups, ag.metric(t, "edge_agent_mqtt_protocol_info"))
		})
	}
}
