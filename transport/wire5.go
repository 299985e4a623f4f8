package transport

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
)

// wire5 is an MQTT 5 session: paho.golang's client over our wsConn, with our connSession (session.go)
// and keepalivePinger (pinger.go). paho's client never reconnects by itself; Run's loop does.
type wire5 struct {
	cli  *paho.Client
	sess *connSession
	out  pubWriter       // the sender's PUBLISHes
	pub  packets.Publish // the sender's, handed to the session for its packet identifier
}

// connect5 sends an MQTT 5 CONNECT on ws and waits for the CONNACK. On failure ws is closed.
func (c *Client) connect5(ctx context.Context, ws *wsConn, pinger *keepalivePinger) (wire, connInfo, error) {
	sess := newConnSession()
	pcfg := paho.ClientConfig{
		ClientID:      c.cfg.ClientID,
		Conn:          ws,
		Session:       sess,
		PingHandler:   pinger,
		PacketTimeout: c.cfg.ConnectTimeout,
	}
	if c.cfg.OnMessage != nil {
		pcfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			c.onPublish(Received{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain})
			return true, nil // paho sends the PUBACK when this returns
		}}
	}
	cli := paho.NewClient(pcfg)
	maxIn := c.cfg.MaxPacketSize
	cp := &paho.Connect{
		ClientID: c.cfg.ClientID,
		// A persistent session (SessionExpiry > 0) keeps our subscriptions' QoS 1 messages at the broker
		// while we are away; outbound, our Source stays the only record (see doc.go).
		CleanStart: c.cfg.SessionExpiry == 0,
		KeepAlive:  uint16(c.cfg.Keepalive / time.Second),
		// Announced so a conforming broker never sends more [MQTT-3.1.2-24], [MQTT-3.1.2-25]; enforced
		// in any case by the connection's inboundGuard.
		// No Receive Maximum: paho.golang sizes its reader-to-router queue by it, and its session state
		// holds a lock while its reader waits on that queue that the router needs to send a PUBACK, so a
		// small one deadlocks under a flood (seen with 32: e2e TestAttack/slow_subscribers stalled).
		Properties: &paho.ConnectProperties{MaximumPacketSize: &maxIn},
	}
	if c.cfg.SessionExpiry > 0 {
		secs := uint32(min(c.cfg.SessionExpiry/time.Second, math.MaxUint32))
		cp.Properties.SessionExpiryInterval = &secs
	}
	if c.cfg.Username != "" {
		cp.Username, cp.UsernameFlag = c.cfg.Username, true
	}
	if c.cfg.Password != nil {
		cp.Password, cp.PasswordFlag = c.cfg.Password, true
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	ca, err := cli.Connect(cctx, cp)
	cancel()
	if err != nil {
		_ = ws.Close()
		return nil, connInfo{}, connectError(err, ca, ws, c.cfg.ConnectTimeout)
	}
	// Absent properties: Receive Maximum 65535 [MQTT-3.2.2.3.3], Maximum QoS 2, Retain Available.
	info := connInfo{version: Protocol5, receiveMax: 65535, maxQoS: 2, retainOK: true, sessionPresent: ca.SessionPresent}
	if pr := ca.Properties; pr != nil {
		if pr.ReceiveMaximum != nil {
			info.receiveMax = *pr.ReceiveMaximum
		}
		if pr.MaximumPacketSize != nil {
			info.maxPacket = *pr.MaximumPacketSize
		}
		if pr.MaximumQoS != nil {
			info.maxQoS = *pr.MaximumQoS
		}
		info.retainOK = pr.RetainAvailable
	}
	return &wire5{cli: cli, sess: sess, out: pubWriter{conn: ws, pinger: pinger, v5: true}}, info, nil
}

func (w *wire5) done() <-chan struct{}   { return w.cli.Done() }
func (w *wire5) brokerDisconnect() error { return w.sess.disconnectReason() }
func (w *wire5) disconnect(code byte)    { _ = w.cli.Disconnect(&paho.Disconnect{ReasonCode: code}) }

func (w *wire5) publish(m Message, expiry uint32) (<-chan packets.ControlPacket, error) {
	if m.QoS == 0 {
		return nil, w.out.write(m, 0, expiry)
	}
	// paho's State gives the packet identifier and routes the PUBACK its reader receives to the
	// channel our connSession captured (session.go).
	w.pub = packets.Publish{QoS: 1, Topic: m.Topic}
	err := w.sess.AddToSession(context.Background(), &w.pub, nil)
	resp := w.sess.takeCaptured()
	if err != nil || resp == nil { // never entered the session: nothing was sent
		return nil, firstErr(err, errConnectionGone)
	}
	return resp, w.out.write(m, w.pub.PacketID, expiry) // on a failed write the connection is dying
}

func (w *wire5) subscribe(ctx context.Context, subs []Subscription) ([]byte, error) {
	opts := make([]paho.SubscribeOptions, len(subs))
	for i, s := range subs {
		opts[i] = paho.SubscribeOptions{Topic: s.Filter, QoS: s.QoS}
	}
	sa, err := w.cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if sa == nil {
		return nil, goneOr(err)
	}
	return sa.Reasons, nil // a refusal is in the codes; paho's error only repeats it
}

func (w *wire5) unsubscribe(ctx context.Context, filters []string) error {
	ua, err := w.cli.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters})
	if err == nil {
		return nil
	}
	if ua != nil {
		return fmt.Errorf("%w: UNSUBACK for %s: %w", ErrRefused, strings.Join(filters, ", "), err)
	}
	return goneOr(err)
}

// goneOr turns paho's "connection lost" errors into errConnectionGone.
func goneOr(err error) error {
	if errors.Is(err, paho.ErrConnectionLost) || errors.Is(err, session.ErrNoConnection) {
		return fmt.Errorf("%w: %w", errConnectionGone, err)
	}
	return err
}

// connectError explains a failed CONNECT in words a person can act on.
// A 3.x broker's CONNACK (which paho.golang cannot decode) is read from the connection's first bytes.
func connectError(err error, ca *paho.Connack, ws *wsConn, timeout time.Duration) error {
	if rc, ok := ws.connack3(); ok {
		return connack3Error(rc, Protocol5)
	}
	switch {
	case ca != nil && ca.ReasonCode >= 0x80:
		reason := ""
		if ca.Properties != nil && ca.Properties.ReasonString != "" {
			reason = ": " + ca.Properties.ReasonString
		}
		if ca.ReasonCode == 0x84 {
			return &versionError{"the broker does not speak MQTT 5 (CONNACK reason 0x84: unsupported protocol version" + reason + ")"}
		}
		return fmt.Errorf("%w: CONNACK reason 0x%02x (%s)%s", ErrRefused, ca.ReasonCode, connackText(ca.ReasonCode), reason)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no CONNACK within %s: %w", timeout, err)
	case ws.Err() != nil && !ws.received(): // closed before a single byte of an answer
		return fmt.Errorf("%w: %w", ErrClosedAfterConnect, ws.Err())
	default:
		return fmt.Errorf("mqtt connect: %w", err)
	}
}

func connackText(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x81:
		return "malformed packet"
	case 0x82:
		return "protocol error"
	case 0x84:
		return "unsupported protocol version"
	case 0x85:
		return "client identifier not valid"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x89:
		return "server busy"
	case 0x8A:
		return "banned"
	case 0x8C:
		return "bad authentication method"
	case 0x95:
		return "packet too large"
	case 0x97:
		return "quota exceeded"
	case 0x9F:
		return "connection rate exceeded"
	}
	return "see MQTT 5 spec 3.2.2.2"
}
