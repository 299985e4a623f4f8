package transport

import (
	"sync"
	"time"
)

// logLimit lets one log line through per interval and counts the ones it held back, so that a
// repeated event (a broker resending an oversized retained message) writes a bounded log that still
// tells how often it happened. Safe for concurrent use.
type logLimit struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now and, if so, how many were suppressed since the last.
func (l *logLimit) allow() (ok bool, suppressed int) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	l.last, suppressed, l.suppressed = now, l.suppressed, 0
	return true, suppressed
}
