package transport

import (
	"math/rand/v2"
	"time"
)

// FullJitter returns a backoff function for reconnect attempts using "full jitter": attempt n (counting
// from 0) waits a uniformly random duration in [0, min(max, base*2^n)]. Spreading reconnects over the
// whole interval is what keeps a fleet from reconnecting in lock step after a broker restart.
// A non-positive base or max yields 0. The returned function is safe for concurrent use.
func FullJitter(base, max time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		if base <= 0 || max <= 0 {
			return 0
		}
		if attempt < 0 {
			attempt = 0
		}
		ceil := max
		// base<<attempt overflows quickly; stop doubling once the cap is reached.
		if attempt < 63 && base <= max>>uint(attempt) {
			ceil = base << uint(attempt)
		}
		return time.Duration(rand.Int64N(int64(ceil) + 1))
	}
}

// FleetJitter returns the reconnect backoff for an agent that is one of many on one broker: attempt
// n (counting from 0: the first wait after a lost connection or a failed first attempt) waits a
// uniformly random duration in [min, min(max, spread·2^n)], where spread = max(min, max/2).
//
// Full jitter from a small base lets a whole fleet that lost its broker at the same moment come
// back within the first second or two (1,000 agents: all of them in the first second). Starting
// from a window of half the cap spreads the fleet over it (with the defaults 1s and 2m, at most
// 4.5 % of 1,000 agents attempt in any one second, see TestFleetRestartSimulation), and the
// doubling windows keep the retries of those that came too early from piling onto the late ones.
// The price: after a short outage of its own a single agent also waits up to max/2 (1 min with the
// defaults, 30 s on average) before it reconnects; its messages wait, durably queued. The floor min
// keeps one client id from connecting twice within min (AWS IoT allows 1 CONNECT per second per
// client id). Every wait is at most max,
// so an agent is back at most max after its broker is. A non-positive min or max yields 0.
// The returned function is safe for concurrent use.
func FleetJitter(min, max time.Duration) func(attempt int) time.Duration {
	return fleetJitter(min, max/2, max, rand.Int64N)
}

// fleetJitter is FleetJitter with its first window and its random source (int64n(n) in [0, n)) given.
func fleetJitter(min, spread, max time.Duration, int64n func(int64) int64) func(attempt int) time.Duration {
	spread = clamp(spread, min, max)
	return func(attempt int) time.Duration {
		if min <= 0 || max <= 0 {
			return 0
		}
		attempt = clamp(attempt, 0, 62)
		ceil := max
		if spread <= max>>uint(attempt) {
			ceil = spread << uint(attempt)
		}
		if ceil <= min {
			return min
		}
		return min + time.Duration(int64n(int64(ceil-min)+1))
	}
}

func clamp[T int | time.Duration](v, lo, hi T) T {
	return max(lo, min(v, hi))
}
