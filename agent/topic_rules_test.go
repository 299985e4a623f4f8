package agent

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
)

// A topic the broker would refuse (MQTT 5 §1.5.4: control characters, noncharacters) is refused at
// the socket with 400 and never queued, so it can never wedge the queue (issue 7, item 1). The
// messages around it are delivered.
func TestTopicRulesAtTheSocket(t *testing.T) {
	b := mosquitto.Start(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "rules/#")
	ta := startAgent(t, b.WSURL(), "")
	waitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

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
	waitFor(t, 10*time.Second, "an empty queue", func() bool { return ta.status().Queue.Depth == 0 })
	if st := ta.status(); st.Accepted != 2 {
		t.Fatalf("accepted %d, want 2: a refused topic must not be queued", st.Accepted)
	}
}
