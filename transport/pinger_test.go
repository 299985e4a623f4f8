package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/devbroker"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// detectSlack covers the status poll (5 ms) and the connection teardown after the pinger's verdict.
const detectSlack = 300 * time.Millisecond

// startBehindProxy starts a devbroker, a netproxy in front of it and a client with keepalive k through
// the proxy, and waits until it is connected.
func startBehindProxy(t *testing.T, k time.Duration, src *fakeSource) (*netproxy.Proxy, *running) {
	t.Helper()
	b := startBroker(t, devbroker.Options{})
	p, err := netproxy.New(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c := startClient(t, Config{URL: "ws://" + p.Addr() + "/mqtt", ClientID: "ka-" + t.Name(), Keepalive: k,
		Backoff: fastBackoff, ConnectTimeout: 20 * time.Second}, src)
	testutil.WaitFor(t, 5*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
	return p, c
}

// A broker behind a blackhole (no byte either way, no FIN, no RST) is declared dead at most K after the
// last packet received — within 1.5×K of the blackhole — whether the link was idle or busy publishing,
// and the client reconnects once the path is back.
func TestKeepaliveBlackholeDetectedWithinOneAndAHalfK(t *testing.T) {
	const k = time.Second
	for _, busy := range []bool{false, true} {
		name := map[bool]string{false: "idle", true: "publishing"}[busy]
		t.Run(name, func(t *testing.T) {
			src := newFakeSource()
			p, c := startBehindProxy(t, k, src)
			if busy {
				// QoS 1 messages keep flowing until the blackhole: the pinger must not be fooled by
				// packets SENT (paho's DefaultPinger only pings once nothing was sent or received for K).
				src.add(200, qos1("ka"))
				src.waitSettled(t, 200, 10*time.Second)
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					tick := time.NewTicker(20 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							src.add(5, qos1("ka"))
						}
					}
				}()
				defer func() { close(stop); <-done }()
				time.Sleep(300 * time.Millisecond)
			} else {
				time.Sleep(k * 7 / 10) // somewhere inside the ping cycle
			}
			connects := c.Status().Connects
			p.Blackhole()
			start := time.Now()
			testutil.WaitFor(t, 5*time.Second, "the dead link to be noticed", func() bool { return c.Status().State != StateConnected })
			took := time.Since(start)
			t.Logf("%s: blackhole detected after %s (keepalive %s, bound %s)", name, took.Round(time.Millisecond), k, k*3/2)
			if took > k*3/2+detectSlack {
				t.Fatalf("dead link noticed after %s; the bound is 1.5×keepalive = %s (+%s slack)", took, k*3/2, detectSlack)
			}
			if st := c.Status(); !strings.Contains(st.LastError, ErrKeepalive.Error()) {
				t.Fatalf("last error %q does not say %q", st.LastError, ErrKeepalive)
			}
			p.Restore()
			testutil.WaitFor(t, 10*time.Second, "reconnect after Restore", func() bool {
				st := c.Status()
				return st.State == StateConnected && st.Connects > connects
			})
		})
	}
}

// An idle connection to a live broker is never dropped by the pinger: it stays up for well over 3×K,
// PINGREQ/PINGRESP pairs keeping it alive. (K = 2 s: a live broker then has a full second to answer each
// PINGREQ, so a loaded test machine cannot turn this into a flake.)
func TestKeepaliveIdleConnectionStaysUp(t *testing.T) {
	t.Parallel()
	const k = 2 * time.Second
	p, c := startBehindProxy(t, k, newFakeSource())
	before := p.Stats()
	deadline := time.Now().Add(k*3 + k/2)
	for time.Now().Before(deadline) {
		if st := c.Status(); st.State != StateConnected || st.Connects != 1 {
			t.Fatalf("idle connection dropped: state %s, connects %d, last error %q", st.State, st.Connects, st.LastError)
		}
		time.Sleep(10 * time.Millisecond)
	}
	after := p.Stats()
	// PINGREQ and PINGRESP are 2 bytes each, in a WebSocket frame of 2 (+4 mask from the client) bytes.
	pings := (after.ToTarget - before.ToTarget) / 8
	if pings < 3 {
		t.Fatalf("only %d bytes went to the broker in %s idle: the pinger did not ping", after.ToTarget-before.ToTarget, k*3+k/2)
	}
	if after.FromTarget == before.FromTarget {
		t.Fatalf("no PINGRESP came back")
	}
	t.Logf("idle for %s: ~%d PINGREQs, connection kept", k*3+k/2, pings)
}

// Run on its own, against a scripted broker on a net.Pipe: PINGREQs go out every K/2 while answered;
// once the answers stop, Run gives up K after the last one with an ErrKeepalive error and closes the
// connection. Keep Alive 0 turns the pinger off.
func TestKeepalivePingerRun(t *testing.T) {
	t.Parallel()
	const k = time.Second
	p := newKeepalivePinger()
	if err := p.Run(context.Background(), nil, 0); err != nil {
		t.Fatalf("Run with keepalive 0 = %v, want nil", err)
	}
	client, server := net.Pipe()
	defer server.Close()
	const answered = 3
	var lastAnswer atomic.Int64
	brokerDone := make(chan []time.Time, 1)
	go func() {
		var pings []time.Time
		buf := make([]byte, 2)
		for {
			if _, err := io.ReadFull(server, buf); err != nil {
				brokerDone <- pings
				return
			}
			if buf[0] != 0xC0 || buf[1] != 0 {
				t.Errorf("pinger wrote % x, want a PINGREQ (c0 00)", buf)
			}
			pings = append(pings, time.Now())
			if len(pings) <= answered {
				lastAnswer.Store(time.Now().UnixNano())
				p.PacketReceived() // the PINGRESP
			}
		}
	}()
	start := time.Now()
	err := p.Run(context.Background(), client, uint16(k/time.Second))
	end := time.Now()
	pings := <-brokerDone // the pinger closed the pipe
	if !errors.Is(err, ErrKeepalive) || !errors.Is(p.Err(), ErrKeepalive) {
		t.Fatalf("Run = %v (Err %v), want ErrKeepalive", err, p.Err())
	}
	if len(pings) < answered+1 {
		t.Fatalf("%d PINGREQs, want at least %d", len(pings), answered+1)
	}
	if first := pings[0].Sub(start); first < k/2-10*time.Millisecond || first >= k {
		t.Fatalf("first PINGREQ after %s, want K/2 = %s (and surely before K)", first, k/2)
	}
	// Never before K of silence (a live broker had K/2 to answer), and inside the 1.5×K guarantee.
	silent := end.Sub(time.Unix(0, lastAnswer.Load()))
	if silent < k || silent >= k*3/2 {
		t.Fatalf("gave up %s after the last packet received, want K = %s (at most 1.5×K)", silent, k)
	}
	t.Logf("%d PINGREQs; dead link declared %s after the last PINGRESP: %v", len(pings), silent.Round(time.Millisecond), err)
}
