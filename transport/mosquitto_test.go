package transport

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// startMosquitto starts a real Mosquitto (plain TCP listener for the mosquitto_sub/pub checkers,
// WebSocket listener for the client) that grants a window of 64, and logs its log tail if the test fails.
func startMosquitto(t testing.TB) *mosquitto.Broker {
	t.Helper()
	m := mosquitto.Start(t, mosquitto.WithConfig("max_inflight_messages 64"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.LogTail())
		}
	})
	return m
}

// seqsOf returns the seqs (decimal payloads) of msgs in arrival order, leaving out readiness probes
// (topics containing "/probe/"); any other message fails the test.
func seqsOf(t testing.TB, msgs []mosquitto.Msg) []uint64 {
	t.Helper()
	seqs := make([]uint64, 0, len(msgs))
	for _, m := range msgs {
		if strings.Contains(m.Topic, "/probe/") {
			continue
		}
		q, err := strconv.ParseUint(string(m.Payload), 10, 64)
		if err != nil {
			t.Fatalf("subscriber got %q on %q, which is not a seq", m.Payload, m.Topic)
		}
		seqs = append(seqs, q)
	}
	return seqs
}

// awaitSubscribed publishes probes on topic, which sub's filter matches, until sub receives one: after a
// broker restart, mosquitto_sub has reconnected and its subscription is active again.
func awaitSubscribed(t testing.TB, m *mosquitto.Broker, sub *mosquitto.Sub, topic string) {
	t.Helper()
	testutil.WaitFor(t, 15*time.Second, "the subscriber to receive a probe on "+topic, func() bool {
		n := len(sub.Messages())
		mosquitto.Publish(t, m.TCPAddr(), topic, []byte("probe"), 1, false)
		msgs, _ := sub.WaitCount(n+1, 200*time.Millisecond) // a timeout only means: probe again
		for _, msg := range msgs {
			if msg.Topic == topic {
				return true
			}
		}
		return false
	})
}

func TestMosquittoPublishInOrder(t *testing.T) {
	m := startMosquitto(t)
	sub := mosquitto.Subscribe(t, m.TCPAddr(), "m/#")
	src := newFakeSource()
	seqs := src.add(2000, qos1("m"))
	c := startClient(t, Config{URL: m.WSURL(), ClientID: "mpub", MaxInflight: 32}, src)
	src.waitSettled(t, len(seqs), 30*time.Second)
	src.checkAckedOnce(t, seqs)
	if _, err := sub.WaitCount(len(seqs), 10*time.Second); err != nil {
		t.Fatalf("all at the subscriber: %v", err)
	}
	if dups := checkFirstArrivals(t, seqsOf(t, sub.Messages()), seqs); dups != 0 {
		t.Fatalf("%d duplicates without a reconnect", dups)
	}
	t.Logf("mosquitto status: %+v", c.Status())
}

// Mosquitto is SIGKILLed mid-stream and restarted on the same ports. Every message that was not acked
// before the kill must reach the subscriber after the restart (resent), first arrivals stay in order,
// and every message is acked exactly once. Messages Mosquitto PUBACKed before it died but had not yet
// forwarded are the broker's loss (it took responsibility with the PUBACK); they are allowed to be
// missing, and nothing else is.
func TestMosquittoKillRestart(t *testing.T) {
	m := startMosquitto(t)
	sub := mosquitto.Subscribe(t, m.TCPAddr(), "k/#", mosquitto.Persistent())

	var gateMu sync.Mutex
	gate := make(chan struct{})
	close(gate)
	var calls int
	src := newFakeSource()
	seqs := src.add(2000, qos1("k"))
	c := startClient(t, Config{ClientID: "kpub", MaxInflight: 64,
		Backoff: FullJitter(20*time.Millisecond, 300*time.Millisecond),
		Endpoint: func(ctx context.Context) (string, http.Header, error) {
			gateMu.Lock()
			g := gate
			calls++
			gateMu.Unlock()
			select { // hold reconnects until the subscriber is back, so it can see the resends
			case <-g:
			case <-ctx.Done():
				return "", nil, ctx.Err()
			}
			return m.WSURL(), nil, nil
		}}, src)

	if _, err := sub.WaitCount(300, 20*time.Second); err != nil {
		t.Fatalf("300 messages at the subscriber: %v", err)
	}
	gateMu.Lock()
	gate = make(chan struct{})
	gateMu.Unlock()
	m.Kill()
	src.mu.Lock()
	ackedBefore := map[uint64]bool{}
	for q := range src.acked {
		ackedBefore[q] = true
	}
	src.mu.Unlock()
	m.Restart(t)
	awaitSubscribed(t, m, sub, fmt.Sprintf("k/probe/%d", time.Now().UnixNano()))
	gateMu.Lock()
	close(gate)
	gateMu.Unlock()

	src.waitSettled(t, len(seqs), 30*time.Second)
	src.checkAckedOnce(t, seqs)
	var mustArrive []uint64
	for _, q := range seqs {
		if !ackedBefore[q] {
			mustArrive = append(mustArrive, q)
		}
	}
	if len(mustArrive) == 0 {
		t.Fatal("everything was acked before the kill; the test proved nothing")
	}
	testutil.WaitFor(t, 10*time.Second, "resent messages at the subscriber", func() bool {
		got := map[uint64]bool{}
		for _, q := range seqsOf(t, sub.Messages()) {
			got[q] = true
		}
		for _, q := range mustArrive {
			if !got[q] {
				return false
			}
		}
		return true
	})
	dups := checkFirstArrivals(t, seqsOf(t, sub.Messages()), mustArrive)
	st := c.Status()
	if st.Connects < 2 {
		t.Fatalf("connects = %d", st.Connects)
	}
	gateMu.Lock()
	n := calls
	gateMu.Unlock()
	t.Logf("acked before kill: %d, resent and received after restart: %d, duplicates: %d, endpoint calls: %d, last error: %s",
		len(ackedBefore), len(mustArrive), dups, n, st.LastError)
}
