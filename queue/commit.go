package queue

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file is the queue's commit path: Append and Flush hand requests to the
// committer goroutine, which writes everything pending in one transaction.

// request is one Append (or Flush, with no records) waiting for a commit.
type request struct {
	recs  [][]byte
	size  int64
	taken bool // set by the committer under q.mu; after that the request cannot be withdrawn

	// results, written by the committer before done is closed
	seqs []uint64
	err  error
	done chan struct{}
}

// Append stores msgs atomically (all or none) and returns their seqs only
// after fsync. Concurrent Appends share one commit (group commit). Over
// MaxBytes: DropOldest deletes the oldest in the same transaction and counts
// them; Reject returns ErrFull and stores nothing. A message or call bigger
// than MaxBytes fails with ErrTooLarge; an unstorable message with ErrInvalid.
//
// If ctx ends before the committer took the call, nothing is stored and
// ctx.Err() is returned; once the commit has started, Append waits for its
// outcome (one fsync) so that its answer is always the truth.
// msgs is not modified.
func (q *Queue) Append(ctx context.Context, msgs ...Message) ([]uint64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &request{recs: make([][]byte, len(msgs)), done: make(chan struct{})}
	now := time.Now()
	for i := range msgs {
		m := msgs[i]
		if m.Created.IsZero() {
			m.Created = now
		}
		if err := validate(&m); err != nil {
			return nil, fmt.Errorf("queue: message %d of %d (topic %.64q): %w: %s", i+1, len(msgs), m.Topic, ErrInvalid, err)
		}
		rec := encodeRecord(&m)
		if q.opts.MaxBytes > 0 && int64(len(rec)) > q.opts.MaxBytes {
			return nil, fmt.Errorf("queue: message %d of %d (topic %.64q) is %d bytes encoded, max_bytes is %d: %w",
				i+1, len(msgs), m.Topic, len(rec), q.opts.MaxBytes, ErrTooLarge)
		}
		r.recs[i] = rec
		r.size += int64(len(rec))
	}
	if q.opts.MaxBytes > 0 && r.size > q.opts.MaxBytes {
		return nil, fmt.Errorf("queue: %d messages are %d bytes encoded together, max_bytes is %d (send fewer at once): %w",
			len(msgs), r.size, q.opts.MaxBytes, ErrTooLarge)
	}
	if err := q.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.seqs, r.err
}

// Flush returns once everything given to Append and Ack before the call is
// committed: in particular the removal of acked records is then durable.
func (q *Queue) Flush(ctx context.Context) error {
	r := &request{done: make(chan struct{})}
	if err := q.submit(ctx, r); err != nil {
		return err
	}
	return r.err
}

// submit enqueues r for the committer and waits for its outcome. A non-nil
// return means r was not committed (withdrawn or queue closed); otherwise the
// outcome is in r.
func (q *Queue) submit(ctx context.Context, r *request) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.pending = append(q.pending, r)
	q.mu.Unlock()
	q.signal()

	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if !r.taken {
		for i, p := range q.pending {
			if p == r {
				q.pending = append(q.pending[:i], q.pending[i+1:]...)
				break
			}
		}
		q.mu.Unlock()
		return ctx.Err()
	}
	q.mu.Unlock()
	<-r.done // the commit holding r is running; it ends with one fsync
	return nil
}

// run is the committer goroutine, owned by Open/Close.
func (q *Queue) run() {
	defer q.wg.Done()
	for {
		select {
		case <-q.wake:
			_ = q.commit()
		case <-q.done:
			// Close set q.closed before closing done, so nothing new can
			// arrive: this last commit takes everything that is left.
			q.finalErr = q.commit()
			return
		}
	}
}

// commitResult is the state after a successful transaction.
type commitResult struct {
	depth     int
	bytes     int64
	dropped   uint64
	oldestSeq uint64
	oldest    time.Time
	lastSeq   uint64

	appended  uint64
	removed   []uint64 // acked seqs taken by this commit (whether or not the record still existed)
	ackedN    uint64   // of those, records that existed and were not discarded as corrupt
	dropSeqs  []uint64 // seqs deleted by DropOldest, ascending
	ackedDrop []uint64 // acked seqs that DropOldest met first; removed, not counted as dropped
}

// commit writes everything pending in one transaction and publishes the
// outcome. It returns the transaction's error (already handed to callers).
func (q *Queue) commit() error {
	q.commitMu.Lock()
	defer q.commitMu.Unlock()
	if hook := q.testHookBeforeCommit; hook != nil {
		hook()
	}

	q.mu.Lock()
	reqs := q.pending
	q.pending = nil
	for _, r := range reqs {
		r.taken = true
	}
	acks := q.ackQueue
	q.ackQueue = nil
	res := commitResult{depth: q.depth, bytes: q.bytes, dropped: q.dropped, removed: acks}
	q.mu.Unlock()

	hasRecs := false
	for _, r := range reqs {
		if len(r.recs) > 0 {
			hasRecs = true
			break
		}
	}
	if !hasRecs && len(acks) == 0 {
		for _, r := range reqs {
			close(r.done)
		}
		return nil
	}

	err := q.db.Update(func(tx *bolt.Tx) error { return q.write(tx, reqs, &res) })
	if err != nil {
		err = fmt.Errorf("queue: commit to %s failed, nothing of it was stored: %w", q.path, err)
		q.log.Error("queue commit failed", "path", q.path, "appends", len(reqs), "acks", len(acks), "err", err)
		q.mu.Lock()
		// Keep the acks for the next commit; they are still in q.acked.
		q.ackQueue = append(acks, q.ackQueue...)
		q.mu.Unlock()
		for _, r := range reqs {
			r.seqs, r.err = nil, err
			close(r.done)
		}
		return err
	}

	q.publish(&res)
	for _, r := range reqs {
		close(r.done)
	}
	return nil
}

// write runs inside the write transaction. Per-call problems (Reject) are
// stored in the request and do not fail the transaction; any error returned
// fails the whole commit.
func (q *Queue) write(tx *bolt.Tx, reqs []*request, res *commitResult) error {
	// Earlier attempts of a failed commit may have set results; start clean.
	for _, r := range reqs {
		r.seqs, r.err = nil, nil
	}
	res.appended, res.ackedN, res.dropSeqs, res.ackedDrop = 0, 0, nil, nil

	b := tx.Bucket(dataBucket)
	for _, seq := range res.removed {
		k := be64(seq)
		v := b.Get(k)
		if v == nil {
			continue // dropped, already removed, or never stored
		}
		res.bytes -= int64(len(v))
		res.depth--
		if !q.isCorruptDiscard(seq) {
			res.ackedN++
		}
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete acked seq %d: %w", seq, err)
		}
	}

	max := q.opts.MaxBytes
	for _, r := range reqs {
		if len(r.recs) == 0 {
			continue
		}
		if max > 0 && res.bytes+r.size > max {
			if q.opts.Overflow == Reject {
				r.err = fmt.Errorf("queue: %d bytes stored + %d new > max_bytes %d (overflow = reject): %w",
					res.bytes, r.size, max, ErrFull)
				continue
			}
			if err := q.dropOldest(b, r.size, res); err != nil {
				return err
			}
		}
		r.seqs = make([]uint64, len(r.recs))
		for i, rec := range r.recs {
			seq, err := b.NextSequence()
			if err != nil {
				return fmt.Errorf("next sequence: %w", err)
			}
			if err := b.Put(be64(seq), rec); err != nil {
				return fmt.Errorf("store seq %d: %w", seq, err)
			}
			r.seqs[i] = seq
		}
		res.bytes += r.size
		res.depth += len(r.recs)
		res.appended += uint64(len(r.recs))
	}

	if len(res.dropSeqs) > 0 {
		if err := tx.Bucket(metaBucket).Put(keyDropped, be64(res.dropped)); err != nil {
			return fmt.Errorf("store dropped counter: %w", err)
		}
	}
	res.lastSeq = b.Sequence()
	res.oldestSeq, res.oldest = 0, time.Time{}
	if k, v := b.Cursor().First(); k != nil {
		res.oldestSeq = seqOf(k)
		res.oldest, _ = recordCreated(v)
	}
	return nil
}

// dropOldest deletes records from the head until need more bytes fit.
func (q *Queue) dropOldest(b *bolt.Bucket, need int64, res *commitResult) error {
	c := b.Cursor()
	for res.bytes+need > q.opts.MaxBytes {
		k, v := c.First()
		if k == nil {
			break // cannot happen: need <= MaxBytes was checked by Append
		}
		seq := seqOf(k)
		size := int64(len(v))
		if err := c.Delete(); err != nil {
			return fmt.Errorf("drop seq %d: %w", seq, err)
		}
		res.bytes -= size
		res.depth--
		if q.isAcked(seq) {
			// Acked while this commit was being prepared: it was delivered, so
			// it is a removal, not a loss.
			res.ackedDrop = append(res.ackedDrop, seq)
			continue
		}
		res.dropSeqs = append(res.dropSeqs, seq)
		res.dropped++
	}
	return nil
}

// publish makes a committed result visible: counters, waiters, Next wakeups.
func (q *Queue) publish(res *commitResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.commits++
	q.depth, q.bytes, q.dropped = res.depth, res.bytes, res.dropped
	q.oldestSeq, q.oldest = res.oldestSeq, res.oldest
	q.lastSeq = res.lastSeq
	q.appended += res.appended
	q.ackedN += res.ackedN + uint64(len(res.ackedDrop))
	for _, seq := range res.removed {
		delete(q.acked, seq)
	}
	for _, seq := range res.ackedDrop {
		delete(q.acked, seq)
	}
	for _, seq := range res.dropSeqs {
		q.rememberDropLocked(seq)
		q.resolveLocked(seq, fmt.Errorf("queue: seq %d: %w", seq, ErrDropped))
	}
	if len(res.dropSeqs) > 0 {
		q.log.Warn("queue full: dropped oldest messages", "count", len(res.dropSeqs),
			"first_seq", res.dropSeqs[0], "last_seq", res.dropSeqs[len(res.dropSeqs)-1],
			"dropped_total", q.dropped, "max_bytes", q.opts.MaxBytes)
	}
	if res.appended > 0 {
		close(q.notify)
		q.notify = make(chan struct{})
	}
}

func (q *Queue) isAcked(seq uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.acked[seq]
	return ok
}

func (q *Queue) isCorruptDiscard(seq uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.acked[seq]
}

// rememberDropLocked records a dropped seq for late WaitAcked calls. Drops
// happen in ascending seq order, so the ranges stay sorted.
func (q *Queue) rememberDropLocked(seq uint64) {
	if n := len(q.dropRanges); n > 0 && q.dropRanges[n-1].hi+1 == seq {
		q.dropRanges[n-1].hi = seq
		return
	}
	if len(q.dropRanges) == maxDropRanges {
		copy(q.dropRanges, q.dropRanges[1:])
		q.dropRanges = q.dropRanges[:maxDropRanges-1]
	}
	q.dropRanges = append(q.dropRanges, seqRange{seq, seq})
}
