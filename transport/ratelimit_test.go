package transport

import (
	"context"
	"testing"
	"time"
)

// fakeClock drives a rateLimiter without real waiting: sleep advances time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return nil
}

func limiterWithClock(msgRate float64, byteRate int64) (*rateLimiter, *fakeClock) {
	l := newRateLimiter(msgRate, byteRate)
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l.now, l.sleep = c.now, c.sleep
	return l, c
}

// sentPerWindow sends count messages of size bytes and returns, for every one-second window after the
// first, how many were let through.
func sentPerWindow(t *testing.T, l *rateLimiter, c *fakeClock, count, size int) (maxMsgs, maxBytes int, total time.Duration) {
	t.Helper()
	start := c.t
	var times []time.Time
	for i := 0; i < count; i++ {
		if err := l.wait(context.Background(), size); err != nil {
			t.Fatal(err)
		}
		times = append(times, c.t)
	}
	// Sliding one-second windows.
	j := 0
	for i := range times {
		for times[i].Sub(times[j]) >= time.Second {
			j++
		}
		if n := i - j + 1; n > maxMsgs {
			maxMsgs = n
		}
	}
	return maxMsgs, maxMsgs * size, c.t.Sub(start)
}

func TestRateLimiterMessages(t *testing.T) {
	l, c := limiterWithClock(100, 0)
	maxMsgs, _, total := sentPerWindow(t, l, c, 1000, 10)
	// A full bucket allows a burst of 100 at once, then 100/s: never more than 200 in any second, and
	// 1000 messages take at least 9 simulated seconds.
	if maxMsgs > 200 {
		t.Fatalf("%d messages within one second, limit 100/s (burst 100)", maxMsgs)
	}
	if total < 9*time.Second {
		t.Fatalf("1000 messages at 100/s took %v of simulated time", total)
	}
	// Steady state: after the burst, windows hold about 100.
	l2, c2 := limiterWithClock(100, 0)
	for i := 0; i < 100; i++ { // use up the burst
		l2.wait(context.Background(), 1)
	}
	m2, _, _ := sentPerWindow(t, l2, c2, 500, 1)
	if m2 > 101 {
		t.Fatalf("steady state lets %d through in one second, want <= 101", m2)
	}
}

func TestRateLimiterBytes(t *testing.T) {
	const rate = 512 << 10
	l, c := limiterWithClock(0, rate)
	_, _, total := sentPerWindow(t, l, c, 100, 64<<10) // 6.25 MiB
	if min := time.Duration(float64(100*(64<<10)-rate) / rate * float64(time.Second)); total < min {
		t.Fatalf("6.25 MiB at 512 KiB/s took %v, want >= %v", total, min)
	}
	// A message larger than a second's budget still goes through (after a full bucket).
	l2, _ := limiterWithClock(0, 1000)
	if err := l2.wait(context.Background(), 5000); err != nil {
		t.Fatal(err)
	}
	if err := l2.wait(context.Background(), 5000); err != nil {
		t.Fatal(err)
	}
}

func TestRateLimiterNilAndCancel(t *testing.T) {
	if l := newRateLimiter(0, 0); l != nil {
		t.Fatal("no rates must mean no limiter")
	}
	var l *rateLimiter
	if err := l.wait(context.Background(), 1<<20); err != nil {
		t.Fatal(err)
	}
	real := newRateLimiter(1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	real.wait(ctx, 1) // burst
	cancel()
	if err := real.wait(ctx, 1); err == nil {
		t.Fatal("wait ignored a cancelled context")
	}
}
