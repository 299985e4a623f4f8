package transport

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/aedes"
	"github.com/edge-agent/edge-agent/internal/mqtt311"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/internal/rabbitmq"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// broker311 is a real broker that speaks only MQTT 3.1.1 and 3.1.
type broker311 struct {
	name      string
	start     func(t *testing.T) (wsURL, tcpAddr string)
	forced5   string // what forcing MQTT 5 must say
	clientOpt []mqtt311.Option
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
		b := rabbitmq.Shared(t)
		return b.WSURL(), b.TCPAddr()
	}, forced5: `a broker that does not speak MQTT 5 may close the connection like this; set protocol = "auto" or "3.1.1"`},
}

// viaProxy puts a netproxy (for cuts) between the client and a ws:// URL.
func viaProxy(t *testing.T, wsURL string) (*netproxy.Proxy, string) {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	px, err := netproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	u.Host = px.Addr()
	return px, u.String()
}

// Aedes 1.x and RabbitMQ 3.10 speak only 3.1.1: the client connects by itself with protocol "auto";
// messages published across a network cut arrive in order at a 3.1.1 subscriber, none lost; what a
// 3.1.1 client publishes to our subscription reaches OnMessage; QoS 1 messages sent to our filter
// while the link is cut arrive after it is back (persistent session); forcing MQTT 5 gives the clear
// error.
func TestBrokersSpeaking311(t *testing.T) {
	for _, bk := range brokers311 {
		t.Run(bk.name, func(t *testing.T) {
			wsURL, tcpAddr := bk.start(t)
			px, url := viaProxy(t, wsURL)
			id := fmt.Sprintf("e311-%s-%d", bk.name, time.Now().UnixNano()%1e6)
			sub := mqtt311.Subscribe(t, tcpAddr, id+"/out/#", mqtt311.Persistent())
			src := newFakeSource()
			seqs := src.add(2000, qos1(id+"/out"))
			var in inbox
			var logs testutil.Buffer
			c := startClient(t, Config{URL: url, ClientID: id, Protocol: ProtocolAuto, SessionExpiry: time.Hour,
				Backoff: fastBackoff, Subscriptions: []Subscription{{Filter: id + "/in/#", QoS: 1}}, OnMessage: in.add,
				Logger: logTo(t, &logs)}, src)

			sub.WaitCount(t, 300, 30*time.Second)
			px.Cut() // mid-stream
			testutil.WaitFor(t, 10*time.Second, "the cut noticed", func() bool { return c.Status().State != StateConnected })
			for i := range 3 { // to our filter while we are away: held by the broker's session
				mqtt311.Publish(t, tcpAddr, fmt.Sprintf("%s/in/away/%d", id, i), []byte("while away"), 1)
			}
			px.Restore()
			src.waitSettled(t, len(seqs), 60*time.Second)
			src.checkAckedOnce(t, seqs)
			var got []uint64
			testutil.WaitFor(t, 30*time.Second, "every message at the 3.1.1 subscriber", func() bool {
				got = got[:0]
				seen := map[uint64]bool{}
				for _, m := range sub.Messages() {
					var q uint64
					if _, err := fmt.Sscan(string(m.Payload), &q); err != nil {
						t.Fatalf("subscriber got %q", m.Payload)
					}
					got = append(got, q)
					seen[q] = true
				}
				return len(seen) >= len(seqs)
			})
			dups := checkFirstArrivals(t, got, seqs)
			testutil.WaitFor(t, 15*time.Second, "the 3 messages published while away", func() bool { return len(in.topics(id+"/in/away/")) >= 3 })
			mqtt311.Publish(t, tcpAddr, id+"/in/now", []byte("hello"), 1)
			testutil.WaitFor(t, 10*time.Second, "a 3.1.1 client's message", func() bool { return len(in.topics(id+"/in/now")) == 1 })
			st := c.Status()
			if st.Protocol != "3.1.1" || st.Connects < 2 || !st.SessionPresent {
				t.Fatalf("status: protocol %q connects %d session present %v", st.Protocol, st.Connects, st.SessionPresent)
			}
			line := ""
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "mqtt connected") {
					line = l
				}
			}
			if !strings.Contains(line, "protocol=3.1.1") {
				t.Fatalf("log:\n%s", logs.String())
			}
			t.Logf("2000 in order across a cut, %d duplicates; %s", dups, line)

			forced := startClient(t, Config{URL: wsURL, ClientID: id + "-5", Protocol: Protocol5, Backoff: fastBackoff}, newFakeSource())
			testutil.WaitFor(t, 15*time.Second, "a refused attempt", func() bool { return forced.Status().Attempts >= 1 })
			if le := forced.Status().LastError; !strings.Contains(le, bk.forced5) {
				t.Fatalf("forced MQTT 5: %q, want it to contain %q", le, bk.forced5)
			}
			t.Logf("forced MQTT 5: %s", forced.Status().LastError)
		})
	}
}
