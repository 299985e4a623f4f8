package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
)

// A message that expires while it waits for the publish rate is not sent, and it is reported as
// expired: wait=delivered answers 410, the expired counter counts it, the delivered counter does not.
// (Issue 9's bug: the transport's rejection used to become an Ack, so the last publish below answered
// 200 {"delivered":true} although the broker never got it.)
func TestExpiredOnTheWayOutIsNotReportedDelivered(t *testing.T) {
	b := mosquitto.Start(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "ttl/#")
	// One message a second with a burst of one: five messages published at once reach the wire about a
	// second apart, so the later ones outlive their 2 s ttl in the sender, after the queue handed them out.
	ta := startAgent(t, b.WSURL(), "max_publish_rate = 1\n")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })
	for i := 1; i <= 4; i++ {
		if r := ta.do("POST", fmt.Sprintf("/v1/publish?topic=ttl/%d&ttl=2s", i), "", []byte("x")); r.status != 202 {
			t.Fatalf("publish %d: %d %s", i, r.status, r.raw)
		}
	}
	r := ta.do("POST", "/v1/publish?topic=ttl/5&ttl=2s&wait=delivered&timeout=30s", "", []byte("x"))
	if r.status != 410 {
		t.Fatalf("the last message expired before it could be sent, yet wait=delivered answered %d %s\n%s", r.status, r.raw, ta.logs)
	}
	var st localapi.Status
	testutil.WaitFor(t, 15*time.Second, "every message settled", func() bool {
		st = ta.status()
		return st.Queue.Depth == 0 && st.Queue.Expired > 0
	})
	got, err := sub.WaitCount(int(st.Delivered), 10*time.Second)
	if err != nil {
		t.Fatalf("the broker did not get the %d messages counted delivered: %v", st.Delivered, err)
	}
	time.Sleep(300 * time.Millisecond) // nothing else may arrive
	got = sub.Messages()
	for _, m := range got {
		if m.Topic == "ttl/5" {
			t.Fatalf("ttl/5 reached the broker although it was reported expired")
		}
	}
	if st.Delivered != uint64(len(got)) {
		t.Fatalf("delivered counter %d, but the broker got %d messages: %v", st.Delivered, len(got), got)
	}
	if st.Delivered+st.Queue.Expired != 5 {
		t.Fatalf("delivered %d + expired %d, want 5 messages accounted for exactly once", st.Delivered, st.Queue.Expired)
	}
}
