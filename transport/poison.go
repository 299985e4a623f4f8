package transport

import (
	"fmt"
)

// poisonWatch finds a message that makes the broker hang up each time it is sent (a topic the broker
// refuses by closing the connection, as Mosquitto does with a control character in a topic), which would
// otherwise be resent after every reconnect and block everything queued behind it.
//
// The rule (Config.PoisonAfter = N > 0): a connection that ended because the broker hung up, with QoS 1
// publishes in flight and no PUBACK at all on that connection, notes the oldest publish in flight —
// provided it was the first message written on that connection. The same seq noted on N connections in
// a row makes it poison. Anything else at the end of a connection — a PUBACK on it (progress), a
// different oldest seq, nothing in flight, a QoS 0 message written before it, or an end that was not the
// broker's doing (keepalive timeout, reset, write failure, a packet we refused) — starts the count again.
//
// Why only QoS 1: a QoS 0 message is acknowledged to the Source as soon as it is written, so it is never
// resent and cannot block the queue. But it can be what the broker hung up on, before it ever read the
// QoS 1 message behind it: hence "the first message written". (The next connection starts with the
// QoS 1 message, since the QoS 0 one is gone, so a real poison message is still found, one connection
// later.) Why "nothing acknowledged": PUBACKs come in publish order [MQTT-4.6.0-2], so any PUBACK means
// the broker got past the messages before it; a network fault that happens to hit while a good message
// is in flight is a reset or a timeout, not a hang-up.
//
// Race with Ack: the decision is taken in Run's goroutine after every goroutine of the connection has
// stopped (its waiter settled every PUBACK that had arrived) and before the next connection's sender
// starts, so the seq is neither acked nor in flight when Source.Quarantine is called, and the next
// connection does not send it again. Not safe for concurrent use: only Run's goroutine touches it.
type poisonWatch struct {
	after int    // Config.PoisonAfter; 0 = off
	seq   uint64 // the seq noted on the last connections
	count int    // how many connections in a row noted seq
}

// observe records how one connection ended and reports whether the oldest in-flight seq is now poison
// (and after how many connections).
func (w *poisonWatch) observe(hungUp, answered bool, oldest uint64) (poison bool, times int) {
	if w.after <= 0 {
		return false, 0
	}
	if !hungUp || answered || oldest == 0 {
		w.seq, w.count = 0, 0
		return false, 0
	}
	if oldest == w.seq {
		w.count++
	} else {
		w.seq, w.count = oldest, 1
	}
	if w.count < w.after {
		return false, 0
	}
	times = w.count
	w.seq, w.count = 0, 0
	return true, times
}

// checkPoison applies poisonWatch at the end of a connection (Run's goroutine, after the waiter
// returned) and quarantines the poison message.
func (c *Client) checkPoison(p *pipeline, hungUp bool, why error) {
	oldest := p.lost.seq
	if oldest != p.firstSeq {
		oldest = 0 // something else (a QoS 0 message) went out first: it may be what the broker refused
	}
	poison, times := c.poison.observe(hungUp, p.answered, oldest)
	if !poison {
		return
	}
	seq, topic := p.lost.seq, p.lost.topic
	err := fmt.Errorf("%w (%d times in a row): %w", ErrPoison, times, why)
	c.poisoned.Add(1)
	c.rejected.Add(1)
	c.noteError(fmt.Errorf("seq %d topic %q: %w", seq, topic, err))
	c.log.Warn("mqtt message rejected as poison: the broker closed the connection each time it was sent",
		"seq", seq, "topic", topic, "times", times, "last_close", why, "poisoned_total", c.poisoned.Load())
	c.src.Quarantine(seq, err)
}
