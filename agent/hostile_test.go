package agent

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/hostilebroker"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// startHostile starts an in-process hostile broker and stops it when the test ends.
func startHostile(t *testing.T, opts hostilebroker.Options) *hostilebroker.Broker {
	t.Helper()
	b, err := hostilebroker.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A message the broker hangs up on every time it is sent goes to the dead-letter store after
// broker.poison_after connections, with the reason, and the messages behind it are delivered in
// order: one accepted message can no longer stop the queue.
func TestHangUpMessageIsDeadLettered(t *testing.T) {
	for _, how := range []string{hostilebroker.HangUpDisconnect, hostilebroker.HangUpClose, hostilebroker.HangUpTCP} {
		t.Run(how, func(t *testing.T) {
			b := startHostile(t, hostilebroker.Options{
				HangUpOn:   func(topic string, _ []byte) bool { return topic == "plant/poison" },
				HangUpWith: how,
			})
			ta := startAgent(t, b.URL(), "poison_after = 3")
			for _, topic := range []string{"plant/a", "plant/poison", "plant/b", "plant/c"} {
				if r := ta.publish(topic, "payload of "+topic); r.status != 202 {
					t.Fatalf("publish %s: %d %s", topic, r.status, r.raw)
				}
			}
			testutil.WaitFor(t, 30*time.Second, "a, b, c delivered and the poison message dead-lettered", func() bool {
				st := ta.status()
				return st.Queue.Depth == 0 && st.Queue.DeadLetters == 1 && st.Delivered == 3
			})
			var got []string
			for _, m := range b.Received() {
				if m.Topic != "plant/poison" && (len(got) == 0 || got[len(got)-1] != m.Topic) {
					got = append(got, m.Topic)
				}
			}
			if strings.Join(got, ",") != "plant/a,plant/b,plant/c" {
				t.Fatalf("broker received %v, want a, b, c in order", got)
			}
			// Counted from the connections on which it was the first message written: 3, plus the
			// first connection, where a went out before it.
			if n := b.HangUps(); n < 3 || n > 4 {
				t.Errorf("broker hung up %d times, want poison_after = 3 (+1 for the connection that sent a first)", n)
			}
			r := ta.do("GET", "/v1/deadletters", "", nil)
			var dl struct {
				DeadLetters []struct {
					Topic  string `json:"topic"`
					Reason string `json:"reason"`
				} `json:"dead_letters"`
			}
			if err := json.Unmarshal([]byte(r.raw), &dl); err != nil || len(dl.DeadLetters) != 1 {
				t.Fatalf("dead letters: %v %s", err, r.raw)
			}
			d := dl.DeadLetters[0]
			if d.Topic != "plant/poison" || !strings.Contains(d.Reason, "the broker closed the connection each time this message was sent (3 times in a row)") {
				t.Fatalf("dead letter %+v", d)
			}
			t.Logf("dead-letter reason: %s", d.Reason)
			st := ta.status()
			if st.Poisoned != 1 || st.Rejected != 1 {
				t.Errorf("status poisoned %d rejected %d, want 1 and 1", st.Poisoned, st.Rejected)
			}
			if m := ta.do("GET", "/metrics", "", nil).raw; !strings.Contains(m, "edge_agent_poisoned_total 1\n") {
				t.Errorf("metrics lack edge_agent_poisoned_total 1:\n%s", m)
			}
		})
	}
}

// A broker that sends a retained message far over broker.max_packet_size on a subscribed topic (on
// every subscribe) neither crashes the agent nor cuts its link: the message is discarded unread,
// counted, logged naming the key, and publishing goes on.
func TestOversizedRetainedMessageIsDiscarded(t *testing.T) {
	const size = 64 << 20
	b := startHostile(t, hostilebroker.Options{RetainedSize: size, RetainedQoS: 1})
	ta := startAgent(t, b.URL(), `max_packet_size = "64KiB"
[[subscribe]]
topic = "cmd/#"
qos = 1`)
	testutil.WaitFor(t, 30*time.Second, "the oversized retained message discarded", func() bool {
		return ta.status().InboundDropped["too_large"] >= 1
	})
	for i := range 5 {
		if r := ta.publish("plant/after", fmt.Sprint(i)); r.status != 202 {
			t.Fatalf("publish: %d %s", r.status, r.raw)
		}
	}
	testutil.WaitFor(t, 30*time.Second, "publishes after the discard delivered", func() bool { return ta.status().Delivered == 5 })
	st := ta.status()
	if st.Connects != 1 || st.InboundTooLarge < 1 || st.MaxPacketSize != 64<<10 {
		t.Fatalf("connects %d (want 1: the link stays up), inbound_too_large %d, max_packet_size %d",
			st.Connects, st.InboundTooLarge, st.MaxPacketSize)
	}
	if got := b.MaxPacketSizes(); len(got) == 0 || got[0] != 64<<10 {
		t.Fatalf("CONNECT announced Maximum Packet Size %v, want 65536", got)
	}
	logs := ta.logs.String()
	if !strings.Contains(logs, "broker.max_packet_size") {
		t.Fatalf("no log line names broker.max_packet_size:\n%s", logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "max_packet_size") {
			t.Logf("log: %s", line)
			break
		}
	}
	if m := ta.do("GET", "/metrics", "", nil).raw; !strings.Contains(m, `edge_agent_inbound_dropped_total{reason="too_large"} 1`) {
		t.Errorf("metrics lack the too_large drop:\n%s", m)
	}
}
