package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
)

// keepalive of the fault tests: small, so that a dead link is found fast (config allows 1s..65535s for
// provider mqtt).
const (
	faultKeepalive    = 2 * time.Second
	faultKeepaliveStr = "2s"
)

// drainAndCheck stops the stream, waits until the agent's queue is empty and every acknowledged number
// reached the subscriber, and fails on a loss or an order violation. It returns the tally.
func drainAndCheck(t *testing.T, ag *agentProc, sub *mosquitto.Sub, s *stream, prefix string) tally {
	t.Helper()
	s.stop(t)
	if n := s.failures(); n != 0 {
		t.Fatalf("%s: %d publish requests got no answer although the agent was never stopped", prefix, n)
	}
	c := newChecker(prefix, s.ps)
	if !ag.drained(30 * time.Second) {
		res := awaitDelivery(t, sub, c, time.Second)
		t.Fatalf("%s: the queue did not drain within 30s; subscriber: %s; missing e.g. %v; agent status: %s",
			prefix, res, c.firstMissing(5), ag.rawStatus())
	}
	res := awaitDelivery(t, sub, c, 20*time.Second)
	if res.Lost != 0 {
		t.Fatalf("%s: %d acknowledged messages lost, e.g. %v", prefix, res.Lost, c.firstMissing(10))
	}
	if res.Acked == 0 {
		t.Fatalf("%s: nothing was acknowledged: the test proved nothing", prefix)
	}
	return res
}

// connected is a waitState condition.
func connected(st apiStatus) bool { return st.State == "connected" }

// Cut (RST on both sides): the agent notices at once, queues meanwhile, reconnects by itself once the
// path is back, and delivers everything, in order — with each MQTT version (Mosquitto speaks all three).
func TestFaultCut(t *testing.T) {
	for _, protocol := range []string{"5", "3.1.1", "3.1"} {
		t.Run("mqtt"+protocol, func(t *testing.T) { faultCut(t, protocol) })
	}
}

func faultCut(t *testing.T, protocol string) {
	seed := testSeed(t)
	b := mosquitto.Start(t)
	proxy := brokerProxy(t, b)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "cut/#")
	ag := newAgentWith(t, "ws://"+proxy.Addr()+"/mqtt", agentOptions{Keepalive: faultKeepaliveStr, FastReconnect: true,
		Broker: fmt.Sprintf("protocol = %q\n", protocol)})
	ag.start()
	before := ag.waitState(10*time.Second, "connected", connected)

	s := startStream(t, ag, "cut", 2, seed, nil)
	time.Sleep(500 * time.Millisecond)
	proxy.Cut()
	cutAt := time.Now()
	ag.waitState(faultKeepalive*3/2+time.Second, "the agent to notice the cut", func(st apiStatus) bool { return st.State != "connected" })
	noticed := time.Since(cutAt)
	time.Sleep(time.Second) // offline: the queue grows, reconnect attempts are reset
	depth := ag.mustStatus().Queue.Depth
	proxy.Restore()
	restoredAt := time.Now()
	ag.waitState(20*time.Second, "the agent to reconnect by itself", func(st apiStatus) bool {
		return connected(st) && st.Connects > before.Connects
	})
	back := time.Since(restoredAt)
	time.Sleep(300 * time.Millisecond)
	res := drainAndCheck(t, ag, sub, s, "cut")
	t.Logf("cut, MQTT %s: noticed after %s, queue depth %d while cut, reconnected %s after restore; %s",
		protocol, noticed.Round(time.Millisecond), depth, back.Round(time.Millisecond), res)
	if st := ag.mustStatus(); st.Protocol != protocol {
		t.Fatalf("status protocol %q, want %q", st.Protocol, protocol)
	}
	if depth == 0 {
		t.Fatalf("nothing was queued while the link was cut: the test proved nothing")
	}
}

// Blackhole (no byte moves, no FIN, no RST): keepalive must find the dead link within 1.5×keepalive —
// first on an idle link, then while publishing (PUBLISH packets keep going out, only nothing comes
// back). After Restore the agent reconnects and nothing acknowledged is lost.
func TestFaultBlackhole(t *testing.T) {
	seed := testSeed(t)
	b := mosquitto.Start(t)
	proxy := brokerProxy(t, b)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "bh/#")
	ag := newAgentWith(t, "ws://"+proxy.Addr()+"/mqtt", agentOptions{Keepalive: faultKeepaliveStr, FastReconnect: true})
	ag.start()
	bound := faultKeepalive * 3 / 2

	var s *stream
	for _, busy := range []bool{false, true} {
		name := map[bool]string{false: "idle", true: "publishing"}[busy]
		before := ag.waitState(20*time.Second, "connected", connected)
		if busy {
			s = startStream(t, ag, "bh", 2, seed, nil)
			time.Sleep(700 * time.Millisecond)
		} else {
			time.Sleep(faultKeepalive * 3 / 4) // somewhere inside the ping cycle
		}
		proxy.Blackhole()
		start := time.Now()
		st := ag.waitState(bound+time.Second+500*time.Millisecond, "the agent to notice the blackhole", func(st apiStatus) bool {
			return st.State != "connected"
		})
		polled := time.Since(start)
		byStatus := st.Since.Sub(start) // when the agent itself changed state
		t.Logf("blackhole (%s): detected after %s by the agent's clock (status poll: %s); keepalive %s, bound 1.5×K = %s; last error %q",
			name, byStatus.Round(time.Millisecond), polled.Round(time.Millisecond), faultKeepalive, bound, st.LastError)
		if polled > bound+time.Second {
			t.Fatalf("%s: dead link noticed after %s, want ≤ 1.5×keepalive + 1s = %s", name, polled, bound+time.Second)
		}
		time.Sleep(500 * time.Millisecond) // stays dark a little longer: the queue grows
		proxy.Restore()
		ag.waitState(20*time.Second, "the agent to reconnect after Restore", func(st apiStatus) bool {
			return connected(st) && st.Connects > before.Connects
		})
	}
	time.Sleep(300 * time.Millisecond)
	res := drainAndCheck(t, ag, sub, s, "bh")
	t.Logf("blackhole: %s", res)
}

// Slow link (50 ms added to every chunk, both ways): a stream of 400 messages all arrives, in order,
// over one connection — the keepalive never mistakes latency for a dead link.
func TestFaultSlowLink(t *testing.T) {
	seed := testSeed(t)
	b := mosquitto.Start(t)
	proxy := brokerProxy(t, b)
	proxy.SetDelay(50 * time.Millisecond)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "slow/#")
	ag := newAgentWith(t, "ws://"+proxy.Addr()+"/mqtt", agentOptions{Keepalive: faultKeepaliveStr, FastReconnect: true})
	ag.start()
	ag.waitState(10*time.Second, "connected", connected)

	start := time.Now()
	s := startStream(t, ag, "slow", 1, seed, func(p *producer) { p.limit = 400 })
	s.done(t, 30*time.Second)
	res := drainAndCheck(t, ag, sub, s, "slow")
	took := time.Since(start)
	st := ag.mustStatus()
	t.Logf("slow link (+50 ms per chunk each way): %s in %s, %d connection(s)", res, took.Round(time.Millisecond), st.Connects)
	if res.Acked != 400 {
		t.Fatalf("%d of 400 messages acknowledged", res.Acked)
	}
	if st.Connects != 1 {
		t.Fatalf("the slow link was dropped and reconnected (%d connects, last error %q)", st.Connects, st.LastError)
	}
}

// Flapping: the link is cut and restored every 1–3 s for 15 s while two producers publish; nothing
// acknowledged is lost and order is kept. Uses the fast-reconnect build (see buildFastReconnect): the
// shipped backoff would, by design, wait up to minutes after so many failures in a row.
func TestFaultFlapping(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	b := mosquitto.Start(t)
	proxy := brokerProxy(t, b)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "flap/#")
	ag := newAgentWith(t, "ws://"+proxy.Addr()+"/mqtt", agentOptions{Keepalive: faultKeepaliveStr, FastReconnect: true})
	ag.start()
	ag.waitState(10*time.Second, "connected", connected)

	s := startStream(t, ag, "flap", 2, seed, nil)
	cuts := 0
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); {
		proxy.Cut()
		cuts++
		time.Sleep(time.Second + time.Duration(rng.IntN(2000))*time.Millisecond)
		proxy.Restore()
		time.Sleep(time.Second + time.Duration(rng.IntN(2000))*time.Millisecond)
	}
	res := drainAndCheck(t, ag, sub, s, "flap")
	st := ag.mustStatus()
	t.Logf("flapping: %d cuts in 15 s, %d connections; %s", cuts, st.Connects, res)
	if st.Connects < 3 {
		t.Fatalf("only %d connections across %d cuts: the agent did not reconnect between them", st.Connects, cuts)
	}
}

// Broker restarts: Mosquitto is stopped (SIGTERM) and started again on the same ports 10 times while
// two producers publish and the agent delivers; nothing acknowledged is lost, order is kept.
//
// The broker runs with persistence and the checker is a persistent session, as in production: a
// message Mosquitto accepted (PUBACK) but had not yet passed to the subscriber when it stopped is saved
// and delivered after the restart. Without that the broker, not the agent, would lose it. Uses the
// fast-reconnect build so the agent is back in time for every restart.
func TestFaultBrokerRestarts(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	b := mosquitto.Start(t, mosquitto.WithPersistence())
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "restart/#", mosquitto.Persistent())
	ag := newAgentWith(t, b.WSURL(), agentOptions{Keepalive: faultKeepaliveStr, FastReconnect: true})
	ag.start()

	s := startStream(t, ag, "restart", 2, seed, nil)
	const restarts = 10
	connectedAtRestart := 0
	for range restarts {
		ag.waitState(15*time.Second, "the agent to reconnect", connected)
		time.Sleep(200*time.Millisecond + time.Duration(rng.IntN(600))*time.Millisecond)
		if st, err := ag.apiStatus(); err == nil && connected(st) {
			connectedAtRestart++
		}
		b.Restart(t)
	}
	ag.waitState(15*time.Second, "the agent to reconnect", connected)
	time.Sleep(300 * time.Millisecond)
	res := drainAndCheck(t, ag, sub, s, "restart")
	st := ag.mustStatus()
	t.Logf("broker restarts: %d restarts (agent connected at %d of them), %d connections; %s",
		restarts, connectedAtRestart, st.Connects, res)
}
