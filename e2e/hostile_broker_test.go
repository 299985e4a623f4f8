// Attacks from a hostile broker (internal/hostilebroker) on the real binary, in the 64 MiB memory cgroup.

package e2e

import (
	"bytes"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/hostilebroker"
)

// TestAttackHostileBroker attacks the real agent binary from the broker's side, under the unit's memory
// conditions (memcg_test.go): a PUBLISH header announcing the largest MQTT length, a 100 MB retained
// message on a subscribed topic, and a broker that hangs up on one particular message.
func TestAttackHostileBroker(t *testing.T) {
	t.Run("huge_header", hostileHugeHeader)
	t.Run("huge_retained", hostileHugeRetained)
	t.Run("hang_up_on_poison", hostileHangUp)
}

// startHostile starts a hostile broker with o and a fresh agent for it under the memory harness, with
// toml appended to its config (right after the [broker] table, so bare keys land there).
func startHostile(t *testing.T, o hostilebroker.Options, toml string) (*hostilebroker.Broker, *memAgent) {
	t.Helper()
	b, err := hostilebroker.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m := startMemAgent(t, b.URL(), memOptions{agentOptions: agentOptions{FastReconnect: true}, TOML: toml})
	return b, m
}

// agentLog is everything the agent logged so far.
func (p *agentProc) agentLog() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// maxPacketAnnounced checks that every CONNECT carried a Maximum Packet Size far below the largest
// MQTT length, and returns them.
func maxPacketAnnounced(t *testing.T, b *hostilebroker.Broker) []uint32 {
	t.Helper()
	sizes := b.MaxPacketSizes()
	if len(sizes) == 0 {
		t.Errorf("the broker saw no CONNECT")
	}
	for i, s := range sizes {
		if s == 0 || s >= 268435455 {
			t.Errorf("CONNECT %d announced Maximum Packet Size %d: want a bound (e.g. the AWS payload limit plus headers)", i+1, s)
		}
	}
	return sizes
}

// (i) A PUBLISH header announcing 268,435,455 bytes after the SUBACK, then silence: the agent allocates
// nothing for it, survives under 64 MiB, and its log names max_packet_size for the oversized packet.
// (Whether it disconnects at once or drains the announced bytes until the link is found dead is the
// transport's choice; the agent's keepalive here is 5 s.)
func hostileHugeHeader(t *testing.T) {
	b, m := startHostile(t, hostilebroker.Options{HugeHeaderAfterSubscribe: true},
		"\n[[subscribe]]\ntopic = \"hostile/#\"\nqos = 1\n")
	logLine := func() string {
		for _, line := range strings.Split(m.agentLog(), "\n") {
			if strings.Contains(line, "max_packet_size") {
				return line
			}
		}
		return ""
	}
	deadline := time.Now().Add(20 * time.Second)
	for logLine() == "" && time.Now().Before(deadline) && m.alive() {
		time.Sleep(50 * time.Millisecond)
	}
	m.failIfDown(t, "a PUBLISH header announcing 268,435,455 bytes")
	line := logLine()
	t.Logf("huge header: %d connects, Maximum Packet Size in CONNECT %v; status %s", b.Connects(), maxPacketAnnounced(t, b), m.rawStatus())
	t.Logf("log line for the oversized inbound packet: %s", line)
	if line == "" {
		t.Errorf("the agent's log does not mention max_packet_size within 20s of an oversized inbound packet")
	}
	m.assertSurvived(t, "a PUBLISH header announcing 268,435,455 bytes")
}

// (ii) A 100 MB retained message on a subscribed topic, sent again on every SUBSCRIBE: the agent is
// not OOM-killed nor restarted, and keeps delivering what it is given to publish.
func hostileHugeRetained(t *testing.T) {
	const n = 20
	b, m := startHostile(t, hostilebroker.Options{RetainedSize: 100 << 20, RetainedQoS: 1},
		"\n[[subscribe]]\ntopic = \"hostile/#\"\nqos = 1\n")
	pid := m.pid
	c := m.client(15 * time.Second)
	for i := range n {
		a := do(c, http.MethodPost, "/v1/publish?topic=other/"+strconv.Itoa(i), "text/plain", strings.NewReader("msg-"+strconv.Itoa(i)))
		if a.status != http.StatusAccepted {
			m.failIfDown(t, "a 100 MB retained message")
			t.Fatalf("publish %d: %s", i, a)
		}
	}
	got := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && m.alive(); time.Sleep(100 * time.Millisecond) {
		seen := map[string]bool{}
		for _, r := range b.Received() {
			if strings.HasPrefix(r.Topic, "other/") {
				seen[r.Topic] = true
			}
		}
		if got = len(seen); got == n {
			break
		}
	}
	f := m.assertSurvived(t, "a 100 MB retained message on a subscribed topic")
	t.Logf("huge retained: %d of %d messages delivered, %d connects, Maximum Packet Size in CONNECT %v; %s",
		got, n, b.Connects(), maxPacketAnnounced(t, b), f)
	if m.pid != pid || !m.alive() {
		t.Errorf("the agent was restarted or died")
	}
	if got != n {
		t.Errorf("%d of %d messages delivered while the broker pushed a 100 MB retained message; status %s", got, n, m.rawStatus())
	}
}

// (iii) The broker hangs up (DISCONNECT 0x81, as Mosquitto does) each time it gets the message on topic
// "poison": a, poison, b are published in that order; a and b are delivered, poison goes to the dead-letter store with the reason.
func hostileHangUp(t *testing.T) {
	const reason = "closed the connection each time this message was sent"
	b, m := startHostile(t, hostilebroker.Options{HangUpOn: func(topic string, _ []byte) bool { return topic == "poison" }, HangUpWith: hostilebroker.HangUpDisconnect},
		"poison_after = 3\n")
	m.waitState(15*time.Second, "connected", connected)
	c := m.client(15 * time.Second)
	for _, topic := range []string{"a", "poison", "b"} {
		if a := do(c, http.MethodPost, "/v1/publish?topic="+topic, "text/plain", strings.NewReader("payload-"+topic)); a.status != http.StatusAccepted {
			t.Fatalf("publish %s: %s", topic, a)
		}
	}
	delivered := func() (a, bOK bool) {
		for _, r := range b.Received() {
			a = a || (r.Topic == "a" && bytes.Equal(r.Payload, []byte("payload-a")))
			bOK = bOK || (r.Topic == "b" && bytes.Equal(r.Payload, []byte("payload-b")))
		}
		return a, bOK
	}
	var dl deadLetter
	found := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && m.alive(); time.Sleep(100 * time.Millisecond) {
		a, bOK := delivered()
		if all, _, _, err := walkDeadLetters(c); err == nil {
			for _, d := range all {
				if d.Topic == "poison" {
					dl, found = d, true
				}
			}
		}
		if a && bOK && found {
			break
		}
	}
	m.failIfDown(t, "a broker that hangs up on one message")
	a, bOK := delivered()
	t.Logf("hang-up on poison: a delivered %v, b delivered %v, %d connects; dead letter found %v, reason %q; status %s",
		a, bOK, b.Connects(), found, dl.Reason, m.rawStatus())
	if !a || !bOK {
		t.Errorf("the messages around the poison one were not both delivered (a %v, b %v)", a, bOK)
	}
	switch {
	case !found:
		t.Errorf("the poison message is not in GET /v1/deadletters")
	case !strings.Contains(dl.Reason, reason):
		t.Errorf("dead-letter reason %q does not say %q", dl.Reason, reason)
	}
	if st, err := m.statusJSON(); err == nil {
		if n, ok := sumKey(st, "dead_lettered"); ok && n < 1 {
			t.Errorf("status counts %v dead-lettered messages", n)
		}
	}
	m.assertSurvived(t, "a broker that hangs up on one message")
}
