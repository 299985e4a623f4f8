package queue

import "time"

// clockFloor: a timestamp before it was taken from a clock that was not set
// yet (a gateway without an RTC boots near 1970 until NTP answers). Such a
// Created or Expires is not used for expiry, and while the queue's own clock
// reads before it nothing expires: an unset clock must not throw a backlog
// away the moment it is corrected.
var clockFloor = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// isExpired reports whether a record with these times must not be sent at
// now: Expires has passed, or Created+MaxAge has.
func (q *Queue) isExpired(created, expires, now time.Time) bool {
	if now.Before(clockFloor) {
		return false
	}
	if !expires.IsZero() && !expires.Before(clockFloor) && !now.Before(expires) {
		return true
	}
	if max := q.opts.MaxAge; max > 0 && !created.Before(clockFloor) && now.Sub(created) >= max {
		return true
	}
	return false
}
