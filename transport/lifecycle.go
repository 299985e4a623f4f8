package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The life of one connection, in the order Run goes through it:
//
//	open      dial the WebSocket and CONNECT, trying the next MQTT version while the broker refuses one
//	attach    make it current (c.cur) for Subscribe/Unsubscribe; status, log, OnConnected
//	serve     restore subscriptions, run the sender and the waiter until the connection ends
//	detach    c.cur = nil
//	teardown  on shutdown drain in-flight PUBACKs and DISCONNECT; settle what arrived; poison check
//
// c.cur is set in attach and cleared in detach, nowhere else.

// connection runs one connection from dial to teardown. It returns how long the connection was up
// (0 if CONNACK never succeeded) and why it ended.
func (c *Client) connection(ctx context.Context) (time.Duration, error) {
	c.setState(StateConnecting, nil)
	l, err := c.open(ctx)
	if err != nil {
		return 0, err
	}
	connectedAt := time.Now()
	c.attach(l)
	p, why := c.serve(ctx, l)
	c.detach()
	why = c.teardown(ctx, l, p, why)
	return time.Since(connectedAt), why
}

// open connects with the first MQTT version the broker accepts (see candidates and versionRefused).
// Under ProtocolAuto the version that worked is kept for the life of the Client.
func (c *Client) open(ctx context.Context) (*link, error) {
	versions := c.candidates()
	var refused []string
	for i, v := range versions {
		l, err := c.dial(ctx, v)
		if err == nil {
			if c.cfg.Protocol == ProtocolAuto {
				c.mu.Lock()
				c.settled = v
				c.mu.Unlock()
			}
			return l, nil
		}
		if ctx.Err() != nil || i == len(versions)-1 || !c.versionRefused(err) {
			if len(refused) > 0 {
				err = fmt.Errorf("the broker accepted no MQTT version (%s; %s: %w)", strings.Join(refused, "; "), v, err)
			}
			return nil, c.versionHint(v, err)
		}
		refused = append(refused, fmt.Sprintf("%s: %v", v, err))
		c.log.Info("mqtt broker refused the protocol version; trying the next one", "protocol", v, "next", versions[i+1],
			"error", err)
	}
	return nil, errors.New("no MQTT version to try") // unreachable: candidates is never empty
}

// dial opens a WebSocket with v's subprotocol and sends v's CONNECT over it.
func (c *Client) dial(ctx context.Context, v Protocol) (*link, error) {
	rawURL, header := c.cfg.URL, http.Header(nil)
	if c.cfg.Endpoint != nil { // every attempt: a presigned URL is fresh
		u, h, err := c.cfg.Endpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEndpoint, err)
		}
		rawURL, header = u, h
		c.mu.Lock()
		c.url = redactURLString(rawURL)
		c.mu.Unlock()
	}
	ws, err := dialWebSocket(ctx, rawURL, header, c.cfg.TLS, c.cfg.ConnectTimeout, c.writeTimeout(),
		int(c.cfg.MaxPacketSize), v.subprotocol())
	if err != nil {
		return nil, err
	}
	pinger := newKeepalivePinger() // dead link found within 1.5×Keepalive; see pinger.go
	ws.onTooLarge = c.inboundOversized
	ws.onProgress = pinger.PacketReceived // a big PUBLISH still arriving shows the link is alive
	ws.mqtt3 = v != Protocol5
	var w wire
	var info connInfo
	if v == Protocol5 {
		w, info, err = c.connect5(ctx, ws, pinger)
	} else {
		w, info, err = c.connect3(ctx, ws, pinger, v)
	}
	if err != nil {
		return nil, err
	}
	return &link{wire: w, ws: ws, pinger: pinger, info: info}, nil
}

// attach makes l the current connection and reports it.
func (c *Client) attach(l *link) {
	window := min(c.cfg.MaxInflight, int(l.info.receiveMax))
	if l.info.version != Protocol5 {
		window = c.cfg.MaxInflight3 // no Receive Maximum in 3.x
	}
	c.connects.Add(1)
	c.mu.Lock()
	c.cur = l
	c.attempts, c.recvMax, c.window = 0, l.info.receiveMax, window
	c.proto, c.session = l.info.version, l.info.sessionPresent
	url := c.url
	c.mu.Unlock()
	c.setState(StateConnected, nil)
	c.log.Info("mqtt connected", "url", url, "client_id", c.cfg.ClientID, "protocol", l.info.version,
		"session_present", l.info.sessionPresent, "receive_maximum", l.info.receiveMax, "window", window,
		"keepalive", c.cfg.Keepalive)
	if c.cfg.OnConnected != nil {
		c.cfg.OnConnected()
	}
}

// detach ends l's time as the current connection: Subscribe/Unsubscribe no longer use it.
func (c *Client) detach() {
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
}

// serve restores the subscriptions, then runs the publish pipeline (sender and waiter, sender.go)
// until the connection ends, the sender fails or ctx is done. The sender has stopped when it returns;
// the waiter goes on until the connection is gone (teardown waits for it through p.waiterDone).
func (c *Client) serve(ctx context.Context, l *link) (*pipeline, error) {
	c.restoreSubscriptions(ctx, l)
	window := c.Status().Window
	maxPacket := l.info.maxPacket
	if l.info.version != Protocol5 {
		maxPacket = c.cfg.MaxPacketSize // no Maximum Packet Size in 3.x: ours bounds both directions
	}
	p := &pipeline{
		wire:       l.wire,
		conn:       l.ws,
		v5:         l.info.version == Protocol5,
		window:     make(chan struct{}, window),
		pending:    make(chan pendingPub, window),
		senderDone: make(chan struct{}),
		drained:    make(chan struct{}),
		waiterDone: make(chan struct{}),
		done:       l.done(),
		maxPacket:  maxPacket,
		maxQoS:     l.info.maxQoS,
		retainOK:   l.info.retainOK,
	}
	sendCtx, stopSend := context.WithCancel(ctx)
	defer func() {
		stopSend()
		<-p.senderDone
	}()
	senderErr := make(chan error, 1)
	go func() { senderErr <- c.send(sendCtx, p) }()
	go func() {
		defer close(p.waiterDone)
		c.await(p)
	}()

	select {
	case <-p.done:
	case err := <-senderErr:
		if ctx.Err() == nil {
			l.disconnect(0x80) // unspecified error
			return p, err
		}
	case <-ctx.Done():
	}
	return p, nil
}

// teardown ends the connection: on shutdown (ctx done) it gives in-flight PUBACKs DrainTimeout and
// sends DISCONNECT; then it waits for the connection's goroutines, settles or forgets what is still in
// flight and applies the poison rule. It returns why the connection ended.
func (c *Client) teardown(ctx context.Context, l *link, p *pipeline, why error) error {
	if ctx.Err() != nil && why == nil {
		t := time.NewTimer(c.cfg.DrainTimeout)
		select {
		case <-p.drained:
		case <-p.done:
		case <-t.C:
			c.log.Info("mqtt shutdown: in-flight messages not acknowledged in time; they stay queued",
				"inflight", p.outstanding.Load())
		}
		t.Stop()
		l.disconnect(0) // normal disconnection; waits for the session to stop
	}
	<-p.done
	<-p.waiterDone
	// The waiter may have returned before the sender queued its last publish (written, then the
	// connection died at once): settle or forget it too, so Inflight and the poison check see it.
	c.abandon(p)
	if why == nil {
		why = firstErr(l.brokerDisconnect(), l.pinger.Err(), l.ws.Err(), errConnectionGone)
	}
	if ctx.Err() == nil { // a shutdown tells nothing about the messages in flight
		hungUp := l.brokerDisconnect() != nil || (l.pinger.Err() == nil && l.ws.hungUp())
		c.checkPoison(p, hungUp, why)
	}
	return why
}
