package transport

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/edge-agent/edge-agent/topic"
)

// The publish pipeline of one connection. One sender goroutine takes the Source's messages in Seq order
// (read one batch ahead by its reader goroutine, see send) and writes each message through the
// connection's wire (wire.go: encoded by the sender itself, pubWriter), so the wire order is the Seq
// order. Before a QoS 1 message it takes a slot in window (capacity W = min(MaxInflight, Receive
// Maximum); MQTT 3.x: MaxInflight3); the waiter
// goroutine gives the slot back when the PUBACK arrives, so at most W QoS 1 publishes are ever
// unacknowledged. The waiter reads outcomes in FIFO order (brokers send PUBACKs in PUBLISH order
// [MQTT-4.6.0-2]; an out-of-order PUBACK merely waits in its buffered channel) and calls Source.Ack only
// after a successful PUBACK, Source.Quarantine on a reason code >= 0x80. When the connection ends, outcomes
// not yet received are abandoned: those messages were neither acked nor quarantined, so the next connection's
// sender (which starts again from after=0) sends them again.
type pipeline struct {
	wire        wire
	conn        *wsConn
	v5          bool            // MQTT 5: Message Expiry on the wire
	window      chan struct{}   // QoS 1 slots; send = acquire, receive = release
	pending     chan pendingPub // QoS 1 publishes awaiting their outcome, in wire order
	outstanding atomic.Int64    // len(pending) + the one the waiter holds
	senderDone  chan struct{}   // closed when the sender returns
	drained     chan struct{}   // closed by the waiter once the sender is done and nothing is outstanding
	waiterDone  chan struct{}   // closed when the waiter returns
	done        <-chan struct{} // the wire's done: the connection is gone
	maxPacket   uint32          // outbound packet limit (MQTT 5: the broker's Maximum Packet Size); 0 = none
	maxQoS      byte            // broker's Maximum QoS from CONNACK (2 when absent, and for 3.x)
	retainOK    bool            // broker's Retain Available from CONNACK (true when absent, and for 3.x)

	// Written by the waiter only; read by connection() after the waiter returned (poison.go).
	answered bool       // a PUBACK (any reason code) arrived on this connection
	lost     pendingPub // the oldest QoS 1 publish whose outcome never arrived (seq 0: none)
	// Written by the sender only; read by connection() after senderDone.
	firstSeq uint64 // the first message written on this connection, any QoS (0: none)
}

type pendingPub struct {
	seq   uint64
	topic string
	resp  <-chan packets.ControlPacket
}

// send is the sender goroutine. It returns nil when ctx is done, otherwise the error that should end the
// connection.
//
// Reading the Source is not on its path: a reader goroutine (read) calls Next for the batch after the one
// being sent, so that the Source's work (a read transaction and the decoding of a batch; disk reads when
// the backlog is not in the page cache) overlaps the wait for window slots instead of adding to each
// round trip. Memory stays bounded: the reader asks for the next batch only while the batches handed to
// the sender and not yet sent hold at most readAheadBytes, so at most one batch more than that is ever
// held (the same bound as without read-ahead, plus readAheadBytes).
func (c *Client) send(ctx context.Context, p *pipeline) error {
	defer close(p.senderDone)
	batch := min(max(cap(p.window), 32), 256)
	ra := &readAhead{batches: make(chan readResult), sent: make(chan struct{}, 1)}
	readCtx, stopRead := context.WithCancel(ctx)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		c.read(readCtx, batch, ra)
	}()
	defer func() {
		stopRead()
		<-readDone
	}()
	// Packets written while messages are at hand are coalesced (wsConn.cork) and flushed before every
	// wait: for the next batch here, for a window slot or the rate limiter in publishOne.
	defer func() { _ = p.conn.flush() }()
	var after uint64 // a new connection always starts over: everything unacked is sent again
	for {
		var r readResult
		select {
		case r = <-ra.batches:
		default:
			if err := p.conn.flush(); err != nil {
				return fmt.Errorf("publishing: %w", err)
			}
			select {
			case r = <-ra.batches:
			case <-ctx.Done():
				return nil
			}
		}
		p.conn.cork()
		if r.err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the outgoing queue: %w", r.err)
		}
		for _, m := range r.msgs {
			if m.Seq <= after {
				continue // a Source must return Seq > after; never send out of order
			}
			after = m.Seq
			if err := c.publishOne(ctx, p, m); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		ra.done(r.bytes)
	}
}

// readAheadBytes bounds the bytes (topic + payload) of batches handed to the sender and not yet sent
// for which the reader still reads ahead.
const readAheadBytes = 1 << 20

// readAhead connects the reader and the sender of one connection.
type readAhead struct {
	batches chan readResult // unbuffered: the reader holds at most one batch it read ahead
	pending atomic.Int64    // bytes of batches handed to the sender and not yet sent
	sent    chan struct{}   // capacity 1: pending went down
}

// done is called by the sender when a batch of n bytes is sent.
func (ra *readAhead) done(n int64) {
	ra.pending.Add(-n)
	select {
	case ra.sent <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// readResult is one Next call's answer.
type readResult struct {
	msgs  []Message
	bytes int64 // topic + payload bytes of msgs
	err   error
}

// read is the reader goroutine of one connection, owned by send: it calls Source.Next in Seq order and
// hands each batch to the sender. It returns after handing over an error, or when ctx is done.
func (c *Client) read(ctx context.Context, batch int, ra *readAhead) {
	var after uint64
	for {
		for ra.pending.Load() > readAheadBytes {
			select {
			case <-ra.sent:
			case <-ctx.Done():
				return
			}
		}
		msgs, err := c.src.Next(ctx, after, batch)
		r := readResult{msgs: msgs, err: err}
		for _, m := range msgs {
			r.bytes += int64(len(m.Topic) + len(m.Payload))
		}
		if err == nil && len(msgs) == 0 {
			continue // a Source should block instead; ask again
		}
		ra.pending.Add(r.bytes)
		select {
		case ra.batches <- r:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
		after = max(after, msgs[len(msgs)-1].Seq)
	}
}

// lifetimeLeft is m's Message Expiry Interval: the seconds left, rounded up (0 = m never expires), and
// false once m has expired. Taken right before the PUBLISH is written, after every wait, so that
// nothing goes out past its expiry.
func lifetimeLeft(m Message) (uint32, bool) {
	if m.Expires.IsZero() {
		return 0, true
	}
	left := time.Until(m.Expires)
	if left <= 0 {
		return 0, false
	}
	return uint32(min((left+time.Second-1)/time.Second, math.MaxUint32)), true // never 0 (= no expiry)
}

func (c *Client) publishOne(ctx context.Context, p *pipeline, m Message) error {
	if err := topic.Validate(m.Topic); err != nil {
		c.reject(m.Seq, fmt.Errorf("%w: seq %d: %w", ErrInvalidMessage, m.Seq, err))
		return nil
	}
	if m.QoS > 1 {
		c.reject(m.Seq, fmt.Errorf("%w: seq %d topic %q has QoS %d; only 0 and 1 are supported", ErrInvalidMessage, m.Seq, m.Topic, m.QoS))
		return nil
	}
	// What paho's PublishWithOptions refused with ErrInvalidArguments, checked here since the sender
	// writes its PUBLISH itself (pubWriter).
	if m.QoS > p.maxQoS {
		c.reject(m.Seq, fmt.Errorf("%w: seq %d topic %q has QoS %d; the broker's Maximum QoS is %d", ErrInvalidMessage, m.Seq, m.Topic, m.QoS, p.maxQoS))
		return nil
	}
	if m.Retain && !p.retainOK {
		c.reject(m.Seq, fmt.Errorf("%w: seq %d topic %q is retained; the broker does not support retained messages", ErrInvalidMessage, m.Seq, m.Topic))
		return nil
	}
	expiry, ok := lifetimeLeft(m) // for its size here; taken again right before it is written
	if !ok {
		c.expire(m)
		return nil
	}

	if size := publishSize(m, expiry, p.v5); p.maxPacket > 0 && size > int(p.maxPacket) {
		// Sending it would only get us disconnected, again on every reconnect [MQTT-3.1.2-24].
		c.reject(m.Seq, fmt.Errorf("%w: seq %d topic %q is a %d-byte packet; the broker's Maximum Packet Size is %d",
			ErrInvalidMessage, m.Seq, m.Topic, size, p.maxPacket))
		return nil
	}

	if c.limiter != nil {
		if err := p.conn.flush(); err != nil {
			return fmt.Errorf("publishing seq %d: %w", m.Seq, err)
		}
		if err := c.limiter.wait(ctx, len(m.Topic)+len(m.Payload)); err != nil {
			return err
		}
		p.conn.cork()
	}
	if m.QoS == 0 {
		if expiry, ok = lifetimeLeft(m); !ok { // the wait may have outlasted it
			c.expire(m)
			return nil
		}
		if _, err := p.wire.publish(m, expiry); err != nil {
			return fmt.Errorf("publishing seq %d: %w", m.Seq, err)
		}
		// Acked once written: so it must be on the socket now, not held by the cork.
		if err := p.conn.flush(); err != nil {
			return fmt.Errorf("publishing seq %d: %w", m.Seq, firstErr(p.conn.Err(), errConnectionGone))
		}
		p.conn.cork()
		c.wrote(p, m.Seq)
		c.ack(m.Seq)
		return nil
	}

	select { // take a window slot
	case p.window <- struct{}{}:
	default:
		// The window is full: what the cork holds must go out before waiting for its PUBACKs.
		if err := p.conn.flush(); err != nil {
			return fmt.Errorf("publishing seq %d: %w", m.Seq, err)
		}
		select {
		case p.window <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return errConnectionGone
		}
		p.conn.cork()
	}
	if expiry, ok = lifetimeLeft(m); !ok { // the waits may have outlasted it
		<-p.window
		c.expire(m)
		return nil
	}
	c.addInflight(1) // counted from before the write until the outcome: an upper bound of what is on the wire
	// The wire gives the packet identifier and routes the PUBACK to resp.
	resp, err := p.wire.publish(m, expiry)
	if resp == nil { // never entered the session: nothing was sent
		<-p.window
		c.addInflight(-1)
		return fmt.Errorf("publishing seq %d: %w", m.Seq, firstErr(err, errConnectionGone))
	}
	c.wrote(p, m.Seq)
	p.outstanding.Add(1)
	p.pending <- pendingPub{seq: m.Seq, topic: m.Topic, resp: resp} // never blocks: capacity equals the window
	if err != nil {
		// In the session but the write failed; the connection is dying.
		return fmt.Errorf("publishing seq %d: %w", m.Seq, firstErr(p.conn.Err(), err))
	}
	return nil
}

// await is the waiter goroutine; it returns when the connection is gone.
func (c *Client) await(p *pipeline) {
	senderDone := p.senderDone
	drained := false
	checkDrained := func() {
		if drained || p.outstanding.Load() != 0 {
			return
		}
		select {
		case <-p.senderDone:
			close(p.drained)
			drained = true
		default:
		}
	}
	for {
		select {
		case pp := <-p.pending:
			select {
			case cp := <-pp.resp:
				c.settle(p, pp, cp)
				checkDrained()
			case <-p.done:
				c.abandon(p, pp)
				return
			}
		case <-senderDone:
			senderDone = nil
			checkDrained()
		case <-p.done:
			c.abandon(p)
			return
		}
	}
}

// settle applies one outcome. An empty packet means paho dropped the transaction (connection lost).
func (c *Client) settle(p *pipeline, pp pendingPub, cp packets.ControlPacket) {
	c.addInflight(-1)
	p.outstanding.Add(-1)
	<-p.window // release the slot last, so the counters never exceed the window
	pa, ok := cp.Content.(*packets.Puback)
	if !ok || cp.Type != packets.PUBACK {
		p.noteLost(pp)
		return // not acknowledged: the next connection sends it again
	}
	p.answered = true
	if pa.ReasonCode >= 0x80 {
		reason := pa.Reason()
		if pa.Properties != nil && pa.Properties.ReasonString != "" {
			reason += " " + pa.Properties.ReasonString
		}
		c.reject(pp.seq, fmt.Errorf("%w: PUBACK reason 0x%02x for seq %d: %s", ErrRefused, pa.ReasonCode, pp.seq, reason))
		return
	}
	c.ack(pp.seq)
}

// abandon settles, in order, every outcome that already arrived and forgets the rest.
func (c *Client) abandon(p *pipeline, head ...pendingPub) {
	settleOrForget := func(pp pendingPub) {
		select {
		case cp := <-pp.resp:
			c.settle(p, pp, cp)
		default:
			p.outstanding.Add(-1)
			c.addInflight(-1)
			p.noteLost(pp)
		}
	}
	for _, pp := range head {
		settleOrForget(pp)
	}
	for {
		select {
		case pp := <-p.pending:
			settleOrForget(pp)
		default:
			return
		}
	}
}

// wrote counts a message written to the connection and remembers the first one (sender only).
func (c *Client) wrote(p *pipeline, seq uint64) {
	c.published.Add(1)
	if p.firstSeq == 0 {
		p.firstSeq = seq
	}
}

// noteLost remembers the oldest QoS 1 publish of the connection that got no outcome (waiter only).
func (p *pipeline) noteLost(pp pendingPub) {
	if p.lost.seq == 0 {
		p.lost = pendingPub{seq: pp.seq, topic: pp.topic}
	}
}

func (c *Client) ack(seq uint64) {
	c.acked.Add(1)
	c.src.Ack(seq)
}

// reject quarantines a message that can never be delivered.
func (c *Client) reject(seq uint64, err error) {
	if n := c.rejected.Add(1); n&(n-1) == 0 { // 1st, 2nd, 4th… so a flood cannot fill the disk with logs
		c.log.Warn("mqtt message rejected", "seq", seq, "error", err, "rejected_total", n)
	}
	c.noteError(err)
	c.src.Quarantine(seq, err)
}

// expire hands back a message whose Expires time passed before it could be sent.
func (c *Client) expire(m Message) {
	if n := c.expired.Add(1); n&(n-1) == 0 { // 1st, 2nd, 4th…
		c.log.Info("mqtt message expired before it could be sent", "seq", m.Seq, "topic", m.Topic,
			"expired_at", m.Expires.UTC().Format(time.RFC3339), "expired_total", n)
	}
	c.src.Expire(m.Seq)
}

func (c *Client) addInflight(d int64) {
	n := c.inflight.Add(d)
	if c.testHooks != nil {
		c.testHooks.inflight(n)
	}
}
