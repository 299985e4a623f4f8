package e2e

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/netproxy"
)

// testSeed returns the seed of a randomised test: $EDGE_E2E_SEED when set (to replay a run), else the
// clock. It is logged so that any failure can be replayed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EDGE_E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("EDGE_E2E_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with EDGE_E2E_SEED=%d)", seed, seed)
	return seed
}

// brokerProxy puts a netproxy in front of the broker's WebSocket listener.
func brokerProxy(t *testing.T, b *mosquitto.Broker) *netproxy.Proxy {
	t.Helper()
	wsHost := strings.TrimSuffix(strings.TrimPrefix(b.WSURL(), "ws://"), "/mqtt")
	p, err := netproxy.New(wsHost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestCrashHarness is issue 4's crash harness, on the real binary: four producers publish numbered
// streams over the Unix socket (single POSTs and NDJSON batches, concurrently, so Appends share group
// commits) while the agent is killed with SIGKILL 24 times at random moments and restarted each time.
// The kills cycle through three situations:
//   - online: the link is up, messages are appended and delivered at full speed;
//   - offline: the link is cut (RST), the queue grows under group-commit load;
//   - draining: the link is back and the agent is killed while it drains the backlog.
//
// At the end everything is restored and the test asserts that every number the API answered 202 for
// reached a real Mosquitto subscriber (lost = 0) and that per producer first arrivals are in increasing
// order. Duplicates (redeliveries after a kill) are allowed by at-least-once and reported.
func TestCrashHarness(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	b := mosquitto.Start(t)
	proxy := brokerProxy(t, b)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "crash/#")
	ag := newAgentWith(t, "ws://"+proxy.Addr()+"/mqtt", agentOptions{Keepalive: "2s"})

	const nProducers, kills = 4, 24
	st := startStream(t, ag, "crash", nProducers, seed, func(p *producer) { p.maxBatch = 40 })
	ps := st.ps

	pause := func(min, spread int) { time.Sleep(time.Duration(min+rng.IntN(spread)) * time.Millisecond) }
	var online, offline, draining, drainKillsWithBacklog int
	for i := range kills {
		switch i % 3 {
		case 0:
			proxy.Restore()
			ag.start()
			pause(300, 600)
			online++
		case 1:
			proxy.Cut()
			ag.start()
			pause(400, 800)
			offline++
		case 2:
			proxy.Restore()
			ag.start()
			ag.waitState(15*time.Second, "the agent to connect and drain", func(st apiStatus) bool { return st.State == "connected" })
			pause(0, 250)
			if st, err := ag.apiStatus(); err == nil && st.Queue.Depth > 0 {
				drainKillsWithBacklog++
			}
			draining++
		}
		ag.kill()
	}

	// Restore everything; the producers stop, the last agent drains the queue.
	st.stop(t)
	proxy.Restore()
	ag.start()
	c := newChecker("crash", ps)
	if !ag.drained(30 * time.Second) {
		res := awaitDelivery(t, sub, c, time.Second)
		t.Fatalf("the queue did not drain within 30s; subscriber: %s; missing e.g. %v; agent status: %s",
			res, c.firstMissing(5), ag.rawStatus())
	}
	res := awaitDelivery(t, sub, c, 30*time.Second)

	var singles, batches, unanswered int
	for _, p := range ps {
		singles += p.singles
		batches += p.batches
		unanswered += p.unanswered
	}
	t.Logf("kills survived %d (online %d, offline %d, draining %d of which %d with a backlog); requests answered 202: "+
		"%d single, %d NDJSON batches; %d numbers got no answer", kills, online, offline, draining, drainKillsWithBacklog,
		singles, batches, unanswered)
	t.Logf("crash harness: kills survived %d, %s", kills, res)
	if res.Lost != 0 {
		t.Fatalf("%d acknowledged messages lost, e.g. %v", res.Lost, c.firstMissing(10))
	}
	if res.Acked == 0 || singles == 0 || batches == 0 {
		t.Fatalf("the harness published too little to prove anything: %d acknowledged (%d single, %d batches)", res.Acked, singles, batches)
	}
	if drainKillsWithBacklog == 0 {
		t.Fatalf("no kill hit a drain in progress (queue depth > 0 while connected)")
	}
	if code := ag.terminate(); code != 0 {
		t.Fatalf("SIGTERM exit code %d, want 0", code)
	}
}
