package transport

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/devbroker"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// blackholeProxy forwards TCP to a target until frozen; frozen connections stay open but carry nothing
// (a dead link that TCP alone would not report for minutes). New connections after freeze work again.
type blackholeProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	frozen atomic.Bool
	wg     sync.WaitGroup
}

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.frozen.Store(false)
			u, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			gen := &atomic.Bool{}
			p.wg.Add(2)
			go p.pipe(c, u, gen)
			go p.pipe(u, c, gen)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// pipe copies until frozen; once this connection is frozen it reads and discards.
func (p *blackholeProxy) pipe(dst, src net.Conn, frozen *atomic.Bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.frozen.Load() {
			frozen.Store(true)
		}
		if err != nil {
			if !frozen.Load() { // a frozen link does not even pass on a close
				_ = dst.Close()
			}
			return
		}
		if frozen.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// A link that silently stops carrying data is found by keepalive (no PINGRESP) and replaced.
func TestKeepaliveDetectsDeadLink(t *testing.T) {
	for _, v := range []Protocol{Protocol5, Protocol311} { // the pinger is shared by every version
		t.Run(string(v), func(t *testing.T) {
			b := startBroker(t, devbroker.Options{})
			p := newBlackholeProxy(t, b.Addr())
			url := "ws://" + p.ln.Addr().String() + "/mqtt"
			c := startClient(t, Config{URL: url, ClientID: "ka", Keepalive: time.Second, Backoff: fastBackoff, Protocol: v}, newFakeSource())
			testutil.WaitFor(t, 5*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
			p.frozen.Store(true)
			start := time.Now()
			testutil.WaitFor(t, 10*time.Second, "reconnect after the link died", func() bool { return c.Status().Connects >= 2 })
			t.Logf("dead link replaced after %s", time.Since(start).Round(time.Millisecond))
			st := c.Status()
			if !strings.Contains(st.LastError, "keepalive") && !strings.Contains(st.LastError, "PINGRESP") {
				t.Fatalf("last error %q does not say keepalive", st.LastError)
			}
			if st.Protocol != string(v) {
				t.Fatalf("protocol %q", st.Protocol)
			}
		})
	}
}
