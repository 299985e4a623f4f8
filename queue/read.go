package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// This file is the consumer side: Next, Ack and WaitAcked.

// Next blocks until at least one message with Seq > after exists (or ctx
// ends, or Close), and returns up to max of them in seq order, skipping
// acked and dead-lettered ones. It never returns an expired record (its
// Expires or Created+Options.MaxAge has passed): it records the removal
// (committed in the background like an ack, counted in Stats.Expired, its
// WaitAcked callers get an error wrapping ErrExpired) and moves on. A record
// that cannot be decoded is logged, counted in Stats.Corrupt and discarded
// (so it cannot block the queue), and its WaitAcked callers get an error
// wrapping ErrDropped. Apart from those two cases Next removes nothing.
func (q *Queue) Next(ctx context.Context, after uint64, max int) ([]Message, error) {
	if max <= 0 {
		return nil, fmt.Errorf("queue: Next: max must be at least 1, got %d", max)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, ErrClosed
		}
		notify := q.notify // taken before reading: an Append after this point closes it
		empty := after >= q.lastSeq || q.depth == 0
		q.mu.Unlock()

		if !empty {
			msgs, err := q.scan(after, max, time.Now())
			if err != nil {
				return nil, err
			}
			if len(msgs) > 0 {
				return msgs, nil
			}
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.done:
			return nil, ErrClosed
		}
	}
}

// read returns up to max stored messages with Seq > after that are not being
// removed, expired or not (a raw view for tests and tools).
func (q *Queue) read(after uint64, max int) ([]Message, error) {
	return q.scan(after, max, time.Time{})
}

// scan returns up to max messages with Seq > after that are not being
// removed, using one cursor Seek in one read transaction. With a non-zero
// now, expired records are skipped and their removal recorded.
//
// Records being removed (acked, dead-lettered, expired, corrupt) stay in the
// file until a commit deletes them, and the committer may defer that. So that
// a reader starting from the head (a new connection asks for after = 0) does
// not walk over them again and again, scan remembers in q.skipTo the end of
// the run of removed records it skipped from there: every seq <= skipTo is
// removed or being removed (a removal is final; Requeue gives new seqs), and
// the next scan seeks past it. Each removed record is skipped at most once
// that way, whatever the number of records waiting for their commit.
func (q *Queue) scan(after uint64, max int, now time.Time) ([]Message, error) {
	msgs := make([]Message, 0, min(max, 256))
	var corrupt, expired []uint64
	var skipped uint64 // last seq of the run of removed records at the start of this scan
	var extend bool    // the scan started right after q.skipTo, so the run extends it
	var dec recordDecoder
	err := q.view(func(tx *bolt.Tx) error {
		q.mu.Lock()
		from := after
		if q.skipTo >= from {
			from, extend = q.skipTo, true
		}
		q.mu.Unlock()
		run := true // every record seen so far was skipped
		c := tx.Bucket(q.keys.data).Cursor()
		for k, v := c.Seek(be64(from + 1)); k != nil && len(msgs) < max; k, v = c.Next() {
			seq := seqOf(k)
			if q.isRemoving(seq) {
				if run {
					skipped = seq
				}
				continue
			}
			if !now.IsZero() {
				if created, expires, ok := recordTimes(v); ok && q.isExpired(created, expires, now) {
					expired = append(expired, seq)
					if run {
						skipped = seq
					}
					continue
				}
			}
			dec.want = max - len(msgs)
			m, err := dec.decode(v)
			if err != nil {
				q.log.Error("queue: discarding undecodable record", "path", q.path, "seq", seq, "err", err)
				corrupt = append(corrupt, seq)
				if run {
					skipped = seq
				}
				continue
			}
			run = false
			m.Seq = seq
			msgs = append(msgs, m)
		}
		return nil
	})
	q.mu.Lock()
	if extend && skipped > q.skipTo {
		q.skipTo = skipped
	}
	if len(msgs) > 0 {
		if last := msgs[len(msgs)-1].Seq; last > q.readSeq {
			q.readSeq = last
		}
	}
	q.mu.Unlock()
	if len(corrupt) > 0 || len(expired) > 0 {
		q.discard(corrupt, expired)
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", q.path, err)
	}
	return msgs, nil
}

// discard records the removal of corrupt and expired records found by Next.
func (q *Queue) discard(corrupt, expired []uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	for _, seq := range corrupt {
		if q.markLocked(seq, removal{kind: rmCorrupt}) {
			q.corrupt++
		}
	}
	for _, seq := range expired {
		q.markLocked(seq, removal{kind: rmExpired})
	}
	if len(expired) > 0 {
		q.log.Debug("queue: messages expired before delivery", "count", len(expired), "first_seq", expired[0])
	}
	q.signal()
}

// Ack marks seqs delivered. It never blocks: the seqs are recorded in memory
// (Next skips them from now on, WaitAcked returns nil) and the records are
// deleted by the committer in its next transaction (group-committed with
// other acks and appends). A crash before that commit means redelivery after
// Open, which at-least-once permits; Flush or Close make removals durable.
// Acking an unknown, dropped, dead-lettered, expired or already acked seq is
// a no-op.
func (q *Queue) Ack(seqs ...uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	added, before := false, len(q.rmQueue)
	for _, seq := range seqs {
		if !q.mayBeStoredLocked(seq) {
			continue
		}
		added = q.markLocked(seq, removal{kind: rmAck}) || added
	}
	if added && q.ackWakeLocked(before) {
		q.signal()
	}
}

// Expire marks seqs expired on their way out: the sender found their Expires
// time passed before it could put them on the wire. Like Ack it never blocks
// and the records are removed by the committer's next transaction; they are
// counted in Stats.Expired and their WaitAcked callers get an error wrapping
// ErrExpired. An unknown, acked, dropped, dead-lettered or already expired seq
// is a no-op.
func (q *Queue) Expire(seqs ...uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	added := false
	for _, seq := range seqs {
		if !q.mayBeStoredLocked(seq) {
			continue
		}
		added = q.markLocked(seq, removal{kind: rmExpired}) || added
	}
	if added {
		q.signal()
	}
}

// ackWakeLocked reports whether the committer must hear of the acks just recorded. It decides only
// when removals are due (see run), so it needs waking when the first pending removal arms its timer,
// when the pending removals reach their bound, or when removals are not delayed at all; and, so that a
// timer is armed again after a failed commit put its removals back, each time the count passes a
// multiple of ackWakeEvery. (A wake per acknowledgement woke the committer once per message of a
// drain.)
func (q *Queue) ackWakeLocked(before int) bool {
	n := len(q.rmQueue)
	return before == 0 || n/ackWakeEvery != before/ackWakeEvery || n >= q.opts.MaxPendingRemovals || q.opts.RemovalDelay < 0
}

const ackWakeEvery = 64

// mayBeStoredLocked is a cheap test that seq may still be in the data
// bucket and not known to be gone.
//
// Next may return records of a commit whose result is not applied yet (the read transaction
// sees the data as soon as bbolt has committed it), and their PUBACK may come back before
// apply runs: so the upper bound is the highest seq Next has handed out, not only lastSeq.
func (q *Queue) mayBeStoredLocked(seq uint64) bool {
	if seq == 0 || seq > max(q.lastSeq, q.readSeq) || seq < q.oldestSeq {
		return false
	}
	if q.depth == 0 && seq <= q.lastSeq {
		return false // every record up to lastSeq is known to be gone
	}
	return !q.dropSet.has(seq) && !q.expSet.has(seq)
}

// WaitAcked blocks until seq is acked (nil), dropped by overflow (an error
// wrapping ErrDropped), moved to the dead-letter store (ErrDeadLettered, with
// the reason), expired (ErrExpired), ctx ends (ctx.Err()) or the queue is
// closed (ErrClosed).
//
// Called after the fact it answers from what is known: a seq in the
// dead-letter store reports ErrDeadLettered (also after a restart). A seq
// that is no longer stored counts as dropped or expired if this process
// removed it so recently (the last 1024 runs of each are remembered),
// otherwise as acked. After a restart, drops and expiries made before it are
// not remembered and such a seq reports nil; so does a dead letter that was
// requeued, deleted or evicted. A seq that was never assigned is an error.
func (q *Queue) WaitAcked(ctx context.Context, seq uint64) error {
	ch, err := q.registerWaiter(seq)
	if ch == nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
	case <-q.done:
	}
	q.mu.Lock()
	removed := q.removeWaiterLocked(seq, ch)
	q.mu.Unlock()
	if !removed {
		return <-ch // resolved meanwhile: the answer is already there
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return ErrClosed
}

// registerWaiter returns a channel that receives the outcome for seq, or nil
// and the outcome when it is already known.
func (q *Queue) registerWaiter(seq uint64) (chan error, error) {
	// Hold commitMu so the committer cannot change the file or the memory
	// state between the checks below.
	q.commitMu.Lock()
	defer q.commitMu.Unlock()

	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, ErrClosed
	}
	if seq == 0 || seq > q.lastSeq {
		last := q.lastSeq
		q.mu.Unlock()
		return nil, fmt.Errorf("queue: WaitAcked: seq %d was never assigned (last seq is %d)", seq, last)
	}
	if r, ok := q.removing[seq]; ok {
		q.mu.Unlock()
		return nil, r.outcome(seq)
	}
	if q.dropSet.has(seq) {
		q.mu.Unlock()
		return nil, fmt.Errorf("queue: seq %d: %w", seq, ErrDropped)
	}
	if q.expSet.has(seq) {
		q.mu.Unlock()
		return nil, fmt.Errorf("queue: seq %d: %w", seq, ErrExpired)
	}
	maybeData := q.depth > 0 && seq >= q.oldestSeq
	maybeDead := q.deadN > 0
	q.mu.Unlock()
	if !maybeData && !maybeDead {
		return nil, nil // gone and not a known drop: it was acked and removed
	}

	stored := false
	var dead []byte
	err := q.view(func(tx *bolt.Tx) error {
		if maybeData {
			stored = tx.Bucket(q.keys.data).Get(be64(seq)) != nil
		}
		if !stored && maybeDead {
			if v := tx.Bucket(q.keys.dead).Get(be64(seq)); v != nil {
				dead = append([]byte{}, v...)
			}
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("queue: WaitAcked: read %s: %w", q.path, err)
	}
	if dead != nil {
		reason := "(undecodable dead-letter record)"
		if dl, err := decodeDeadLetter(dead); err == nil {
			reason = dl.Reason
		}
		return nil, deadLetteredErr(seq, reason)
	}
	if !stored {
		return nil, nil // removed after an ack
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	if r, ok := q.removing[seq]; ok {
		return nil, r.outcome(seq) // removed while we looked
	}
	ch := make(chan error, 1)
	q.waiters[seq] = append(q.waiters[seq], ch)
	return ch, nil
}

// resolveLocked hands err to every waiter of seq.
func (q *Queue) resolveLocked(seq uint64, err error) {
	for _, w := range q.waiters[seq] {
		w <- err
	}
	delete(q.waiters, seq)
}

func (q *Queue) removeWaiterLocked(seq uint64, ch chan error) bool {
	ws := q.waiters[seq]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			if len(ws) == 0 {
				delete(q.waiters, seq)
			} else {
				q.waiters[seq] = ws
			}
			return true
		}
	}
	return false
}
