package queue

import (
	"fmt"
	"sort"
	"time"
)

// This file holds the bookkeeping shared by every way a record leaves the
// queue other than overflow: Ack, DeadLetter, expiry and corrupt discards.
// Each is recorded in memory at once (Next skips the seq, WaitAcked answers)
// and the committer removes the record in its next transaction.

type removalKind uint8

const (
	rmAck     removalKind = iota // delivered
	rmCorrupt                    // undecodable, discarded (Stats.Corrupt)
	rmDead                       // moved to the dead-letter store
	rmExpired                    // Expires or Created+MaxAge passed
)

type removal struct {
	kind   removalKind
	reason string    // rmDead
	at     time.Time // rmDead
}

// outcome is what WaitAcked reports for a seq removed this way.
func (r removal) outcome(seq uint64) error {
	switch r.kind {
	case rmCorrupt:
		return fmt.Errorf("queue: seq %d was corrupt on disk and discarded: %w", seq, ErrDropped)
	case rmDead:
		return deadLetteredErr(seq, r.reason)
	case rmExpired:
		return fmt.Errorf("queue: seq %d: %w", seq, ErrExpired)
	}
	return nil
}

func deadLetteredErr(seq uint64, reason string) error {
	return fmt.Errorf("queue: seq %d: %w: %s", seq, ErrDeadLettered, reason)
}

// markLocked records a removal of seq unless one is already recorded, hands
// the outcome to its waiters and queues the seq for the committer. The caller
// signals the committer. It reports whether anything was recorded.
func (q *Queue) markLocked(seq uint64, r removal) bool {
	if _, ok := q.removing[seq]; ok {
		return false
	}
	q.removing[seq] = r
	q.rmQueue = append(q.rmQueue, seq)
	q.resolveLocked(seq, r.outcome(seq))
	return true
}

// removalOf returns the recorded removal of seq, if any.
func (q *Queue) removalOf(seq uint64) (removal, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r, ok := q.removing[seq]
	return r, ok
}

func (q *Queue) isRemoving(seq uint64) bool {
	_, ok := q.removalOf(seq)
	return ok
}

type seqRange struct{ lo, hi uint64 }

// seqSet remembers recently removed seqs as sorted, disjoint ranges, at most
// maxDropRanges of them (the lowest are forgotten first).
type seqSet struct{ r []seqRange }

func (s *seqSet) has(seq uint64) bool {
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].hi >= seq })
	return i < len(s.r) && s.r[i].lo <= seq
}

func (s *seqSet) add(seq uint64) {
	n := len(s.r)
	if n > 0 && s.r[n-1].hi+1 == seq { // the common case: ascending runs
		s.r[n-1].hi = seq
		return
	}
	if n == 0 || s.r[n-1].hi < seq {
		s.r = append(s.r, seqRange{seq, seq})
	} else {
		i := sort.Search(n, func(i int) bool { return s.r[i].hi+1 >= seq })
		switch {
		case s.r[i].lo <= seq && seq <= s.r[i].hi:
			return
		case s.r[i].hi+1 == seq:
			s.r[i].hi = seq
			if i+1 < len(s.r) && s.r[i+1].lo == seq+1 {
				s.r[i].hi = s.r[i+1].hi
				s.r = append(s.r[:i+1], s.r[i+2:]...)
			}
		case s.r[i].lo == seq+1:
			s.r[i].lo = seq
		default:
			s.r = append(s.r, seqRange{})
			copy(s.r[i+1:], s.r[i:])
			s.r[i] = seqRange{seq, seq}
		}
	}
	if len(s.r) > maxDropRanges {
		s.r = append(s.r[:0], s.r[len(s.r)-maxDropRanges:]...)
	}
}
