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
