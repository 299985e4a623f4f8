package transport

import (
	"context"
	"time"
)

// rateLimiter is a token bucket over PUBLISH packets and publish bytes, refilled continuously, with a
// burst of one second's worth of each. It keeps a drain inside a broker's per-connection quota (AWS
// IoT: 100 publishes/s and 512 KiB/s; excess is throttled or dropped by the broker). Only the sender
// goroutine calls wait, so it needs no lock; it lives on the Client so that a reconnect does not
// reset it into a burst.
type rateLimiter struct {
	msgRate  float64 // per second; 0 = unlimited
	byteRate float64 // per second; 0 = unlimited
	msgs     float64 // tokens available
	bytes    float64
	last     time.Time

	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// newRateLimiter returns nil (no limit) when both rates are 0.
func newRateLimiter(msgRate float64, byteRate int64) *rateLimiter {
	if msgRate <= 0 && byteRate <= 0 {
		return nil
	}
	return &rateLimiter{msgRate: max(msgRate, 0), byteRate: float64(max(byteRate, 0)), now: time.Now, sleep: sleepCtx}
}

// wait blocks until one message of n bytes may be sent, then takes its tokens. A message larger than
// one second's byte budget is let through once the bucket is full (it drives the bucket negative, so
// the following messages wait for the debt to be repaid).
func (l *rateLimiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	for {
		now := l.now()
		if l.last.IsZero() {
			l.msgs, l.bytes = l.msgRate, l.byteRate // start with a full bucket
		} else if dt := now.Sub(l.last).Seconds(); dt > 0 {
			l.msgs = min(l.msgRate, l.msgs+dt*l.msgRate)
			l.bytes = min(l.byteRate, l.bytes+dt*l.byteRate)
		}
		l.last = now
		var delay float64
		if l.msgRate > 0 && l.msgs < 1 {
			delay = (1 - l.msgs) / l.msgRate
		}
		if l.byteRate > 0 {
			need := min(float64(n), l.byteRate) // an oversized message needs a full bucket
			if l.bytes < need {
				delay = max(delay, (need-l.bytes)/l.byteRate)
			}
		}
		if delay <= 0 {
			if l.msgRate > 0 {
				l.msgs--
			}
			if l.byteRate > 0 {
				l.bytes -= float64(n)
			}
			return nil
		}
		if err := l.sleep(ctx, time.Duration(delay*float64(time.Second))+time.Microsecond); err != nil {
			return err
		}
	}
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
