package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/log"
)

// keepalivePinger is the paho.Pinger of every connection. It declares a link dead once no packet at all
// has been received for one Keep Alive interval K, so a link that silently stops carrying data (no FIN,
// no RST: a NAT entry gone, a cable pulled upstream) is found within K of the last packet that came in —
// within 1.5×K of the failure, the same bound a broker applies to its clients [MQTT-3.1.2-22].
//
// Why not paho's DefaultPinger: it sends PINGREQ only after K without traffic and then gives the PINGRESP
// another full K, so it detects a dead link up to 2×K after the last packet (measured 2.0 s for K = 1 s).
//
// The rules, with K the Keep Alive in force (ours, or the broker's Server Keep Alive [MQTT-3.1.2-21]):
//
//   - PINGREQ: sent when nothing has been sent, or nothing has been received, for K/2 — at most one per
//     K/2. The broker therefore hears from us at least every K/2 [MQTT-3.1.2-20], far inside its 1.5×K
//     limit [MQTT-3.1.2-22]; an idle connection costs one PINGREQ/PINGRESP pair per K/2.
//   - Dead link: nothing received for K. The broker must answer a PINGREQ with a PINGRESP
//     [MQTT-3.12.4-1]; a live broker has had at least K/2 to do so. This is the "reasonable amount of
//     time" after which a client SHOULD close the Network Connection (MQTT 5 section 3.1.2.10). Any
//     packet counts, not only PINGRESP: a broker busy sending PUBACKs is evidently alive.
//
// When Run finds the link dead it closes the connection itself, so that a PINGREQ write stuck behind a
// full socket buffer returns at once, and returns an error wrapping ErrKeepalive (also kept for Err);
// paho then tears the client down.
//
// Concurrency: PacketSent and PacketReceived are called by paho's goroutines while Run runs in its own;
// all state is under mu. Run owns the one goroutine it starts (a PINGREQ write) and waits for it.
type keepalivePinger struct {
	mu       sync.Mutex
	lastSent time.Time
	lastRecv time.Time
	running  bool
	err      error
}

func newKeepalivePinger() *keepalivePinger { return &keepalivePinger{} }

var _ paho.Pinger = (*keepalivePinger)(nil)

// minWake keeps a late or early timer from spinning.
const minWake = time.Millisecond

// Run implements paho.Pinger; it blocks until ctx is done (nil) or the link is dead (error).
func (p *keepalivePinger) Run(ctx context.Context, conn net.Conn, keepAlive uint16) error {
	if keepAlive == 0 {
		return nil // keepalive off [MQTT-3.1.2-10]
	}
	if conn == nil {
		return errors.New("keepalive pinger: no connection")
	}
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return errors.New("keepalive pinger: Run is already active")
	}
	p.running = true
	// Run starts right after the CONNACK: count it as traffic both ways.
	now := time.Now()
	p.lastSent, p.lastRecv = now, now
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()

	k := time.Duration(keepAlive) * time.Second
	half := k / 2
	var (
		pingSent  time.Time      // when the last PINGREQ write started (zero: none yet)
		writeDone chan error     // non-nil while a PINGREQ write is in progress
		wg        sync.WaitGroup // the write goroutine
		timer     = time.NewTimer(half)
	)
	defer timer.Stop()
	defer wg.Wait() // runs after conn.Close below (dead) or paho's own Close (ctx done)

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-writeDone:
			writeDone = nil
			if err != nil {
				return p.fail(conn, fmt.Errorf("sending PINGREQ: %w", err))
			}
			p.PacketSent()
		case <-timer.C:
		}

		now := time.Now()
		p.mu.Lock()
		lastSent, lastRecv := p.lastSent, p.lastRecv
		p.mu.Unlock()

		if silent := now.Sub(lastRecv); silent >= k {
			return p.fail(conn, fmt.Errorf("nothing received from the broker for %s (keepalive %s): the link is dead",
				silent.Round(time.Millisecond), k))
		}
		idleSince := lastSent
		if lastRecv.Before(idleSince) {
			idleSince = lastRecv
		}
		pingDue := idleSince.Add(half)
		if !pingSent.IsZero() && pingSent.Add(half).After(pingDue) {
			pingDue = pingSent.Add(half)
		}
		if writeDone == nil && !now.Before(pingDue) {
			pingSent = now
			writeDone = make(chan error, 1)
			wg.Add(1)
			go func(done chan<- error) {
				defer wg.Done()
				_, err := packets.NewControlPacket(packets.PINGREQ).WriteTo(conn)
				done <- err
			}(writeDone)
			pingDue = now.Add(half)
		}
		wake := lastRecv.Add(k) // the dead-link deadline
		if writeDone == nil && pingDue.Before(wake) {
			wake = pingDue
		}
		timer.Reset(max(wake.Sub(now), minWake))
	}
}

// fail records err (wrapping ErrKeepalive), closes conn and returns the recorded error.
func (p *keepalivePinger) fail(conn net.Conn, err error) error {
	err = fmt.Errorf("%w: %w", ErrKeepalive, err)
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	_ = conn.Close()
	return err
}

// Err returns why Run declared the link dead, or nil.
func (p *keepalivePinger) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// PacketSent implements paho.Pinger.
func (p *keepalivePinger) PacketSent() {
	p.mu.Lock()
	p.lastSent = time.Now()
	p.mu.Unlock()
}

// PacketReceived implements paho.Pinger; every packet, PINGRESP included, passes here.
func (p *keepalivePinger) PacketReceived() {
	p.mu.Lock()
	p.lastRecv = time.Now()
	p.mu.Unlock()
}

// PingResp implements paho.Pinger. Nothing to do: PacketReceived already saw the PINGRESP.
func (p *keepalivePinger) PingResp() {}

// SetDebug implements paho.Pinger; the pinger logs nothing (its error is reported by the caller).
func (p *keepalivePinger) SetDebug(log.Logger) {}
