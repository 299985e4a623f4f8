package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/mqttwire"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/topic"
)

// A topic the broker would refuse (MQTT 5 §1.5.4: control characters, noncharacters) is refused at
// the socket with 400 and never queued, so it can never wedge the queue (issue 7, item 1). The
// messages around it are delivered.
func TestTopicRulesAtTheSocket(t *testing.T) {
	b := mosquitto.Start(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "rules/#")
	ta := startAgent(t, b.WSURL(), "")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

	if r := ta.publish("rules/before", "1"); r.status != http.StatusAccepted {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	for _, c := range []struct {
		topic, want string
	}{
		{"rules/a\x01b", "control character U+0001 at byte 7"},
		{"rules/\x1f", "control character U+001F"},
		{"rules/\x7f", "control character U+007F"},
		{"rules/\u0085", "control character U+0085"},
		{"rules/\ufdd0", "noncharacter U+FDD0"},
		{"rules/\uffff", "noncharacter U+FFFF"},
		{"rules/\U0010ffff", "noncharacter U+10FFFF"},
	} {
		r := ta.do("POST", "/v1/publish?topic="+url.QueryEscape(c.topic), "", []byte("x"))
		if r.status != http.StatusBadRequest || !strings.Contains(r.raw, c.want) {
			t.Errorf("POST topic %q: %d %s, want 400 saying %q", c.topic, r.status, r.raw, c.want)
		}
		line, _ := json.Marshal(map[string]string{"topic": c.topic, "payload": "x"})
		r = ta.do("POST", "/v1/publish", "application/x-ndjson", append(append([]byte(`{"topic":"rules/ok","payload":"y"}`+"\n"), line...), '\n'))
		if r.status != http.StatusBadRequest || !strings.Contains(r.raw, c.want) || !strings.Contains(r.raw, "2") {
			t.Errorf("NDJSON line 2 with topic %q: %d %s, want 400 naming the line", c.topic, r.status, r.raw)
		}
		r = ta.do("GET", "/v1/subscribe?topic="+url.QueryEscape(c.topic+"/#"), "", nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.raw, c.want) {
			t.Errorf("subscribe %q: %d %s, want 400", c.topic+"/#", r.status, r.raw)
		}
	}
	// The raw %01 form of the example.
	if r := ta.do("POST", "/v1/publish?topic=a%01b", "", []byte("x")); r.status != http.StatusBadRequest {
		t.Errorf("POST ?topic=a%%01b: %d %s, want 400", r.status, r.raw)
	}
	if r := ta.do("POST", "/v1/publish?topic=a%EF%BF%BF", "", []byte("x")); r.status != http.StatusBadRequest {
		t.Errorf("POST ?topic=a%%EF%%BF%%BF (U+FFFF): %d %s, want 400", r.status, r.raw)
	}
	if r := ta.publish("rules/after", "2"); r.status != http.StatusAccepted {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	msgs, err := sub.WaitCount(2, 10*time.Second)
	if err != nil {
		t.Fatalf("broker got %v: %v", msgs, err)
	}
	if msgs[0].Topic != "rules/before" || msgs[1].Topic != "rules/after" {
		t.Fatalf("broker got %s, %s", msgs[0].Topic, msgs[1].Topic)
	}
	testutil.WaitFor(t, 10*time.Second, "an empty queue", func() bool { return ta.status().Queue.Depth == 0 })
	if st := ta.status(); st.Accepted != 2 {
		t.Fatalf("accepted %d, want 2: a refused topic must not be queued", st.Accepted)
	}
}

// The topic rules refuse exactly what a real Mosquitto refuses: for each character class, a raw
// MQTT 5 PUBLISH (QoS 1) and SUBSCRIBE is sent over WebSocket and the broker's answer compared with
// topic.Validate / topic.ValidateFilter. Mosquitto 2.0 answers DISCONNECT 0x81 (malformed packet) to
// each refused string, and PUBACK / SUBACK to the others.
func TestTopicRulesAgreeWithMosquitto(t *testing.T) {
	b := mosquitto.Start(t)
	for i, s := range []string{
		"ok/a", "a\x00b", "a\x01b", "a\tb", "a\x1fb", "a b~", "a\x7fb", "a\u0080b", "a\u009fb", "a\u00a0b",
		"a\ufdcfb", "a\ufdd0b", "a\ufdefb", "a\ufdf0b", "a\ufffdb", "a\ufffeb", "a\uffffb",
		"a\U0001fffeb", "a\U0010fffdb", "a\U0010ffffb",
	} {
		pub := mosquittoAnswer(t, b.WSURL(), fmt.Sprintf("rules-p%d", i), 0x32, append(append(mqttwire.String(s), 0, 1, 0), 'x'))
		sub := mosquittoAnswer(t, b.WSURL(), fmt.Sprintf("rules-s%d", i), 0x82, append(append([]byte{0, 1, 0}, mqttwire.String(s+"/#")...), 1))
		pubRefused, subRefused := pub == "DISCONNECT 0x81", sub == "DISCONNECT 0x81"
		perr, ferr := topic.Validate(s), topic.ValidateFilter(s+"/#")
		t.Logf("%-14q PUBLISH: %-16s SUBSCRIBE: %-16s ours: %v", s, pub, sub, perr)
		if pubRefused != (perr != nil) || subRefused != (ferr != nil) {
			t.Errorf("%q: Mosquitto answers PUBLISH with %s and SUBSCRIBE with %s; topic.Validate = %v, topic.ValidateFilter = %v",
				s, pub, sub, perr, ferr)
		}
	}
}

// mosquittoAnswer connects with MQTT 5 over WebSocket, sends one packet of type typ and body, and
// describes the broker's first answer.
func mosquittoAnswer(t *testing.T, wsURL, clientID string, typ byte, body []byte) string {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial(wsURL, http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	connect := append(append(mqttwire.String("MQTT"), 5, 0x02, 0, 30, 0), mqttwire.String(clientID)...) // v5, clean start, keepalive 30 s
	if err := conn.WriteMessage(websocket.BinaryMessage, mqttwire.Packet(0x10, connect)); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := conn.ReadMessage(); err != nil || len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK: % x %v", ack, err)
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, mqttwire.Packet(typ, body)); err != nil {
		t.Fatal(err)
	}
	_, r, err := conn.ReadMessage()
	switch {
	case err != nil:
		return "closed"
	case r[0] == 0x40:
		return "PUBACK"
	case r[0] == 0x90:
		return fmt.Sprintf("SUBACK 0x%02x", r[len(r)-1])
	case r[0] == 0xe0 && len(r) > 2:
		return fmt.Sprintf("DISCONNECT 0x%02x", r[2])
	}
	return fmt.Sprintf("% x", r)
}
