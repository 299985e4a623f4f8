package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file is the queue's commit path: Append, Flush, Requeue and
// DeleteDeadLetters hand requests to the committer goroutine, which writes
// everything pending — those requests and every recorded removal (acks, dead
// letters, expiries, corrupt discards) — in one transaction.

type requestKind uint8

const (
	reqAppend     requestKind = iota // Append (recs) or Flush (no recs)
	reqRequeue                       // Requeue: dead letters back to the tail
	reqDeleteDead                    // DeleteDeadLetters
	reqPutDead                       // salvage: store dead-letter records (recs) under new seqs
)

// request is one call waiting for a commit.
type request struct {
	kind  requestKind
	recs  [][]byte
	size  int64
	dead  []uint64 // reqRequeue, reqDeleteDead: the seqs given
	taken bool     // set by the committer under q.mu; after that the request cannot be withdrawn

	// results, written by the committer before done is closed
	seqs []uint64 // reqAppend, reqPutDead: new seqs; reqRequeue: new seq of dead[i]
	n    int      // reqDeleteDead: dead letters deleted
	err  error
	done chan struct{}
}

func (r *request) hasWork() bool {
	return len(r.recs) > 0 || len(r.dead) > 0
}

// Append stores msgs atomically (all or none) and returns their seqs only
// after fsync. Concurrent Appends share one commit (group commit). Over
// MaxBytes: DropOldest deletes the oldest in the same transaction and counts
// them; Reject returns ErrFull and stores nothing. A message or call bigger
// than MaxBytes fails with ErrTooLarge; an unstorable message with ErrInvalid.
// A commit that fails because the disk is full returns an error wrapping
// ErrDiskFull and the system's error (syscall.ENOSPC); the queue stays usable.
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

// Flush returns once everything given to Append, Ack and DeadLetter before
// the call (and every expiry Next found) is committed: in particular the
// removal of acked records is then durable.
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
//
// Calls (Append, Flush, Requeue, …) are committed at once. Removals alone
// (acks, dead letters, expiries, discards) are not worth an fsync of their
// own: they wait for the next commit that happens anyway, for at most
// Options.RemovalDelay (a timer, armed by the first of them) and at most
// Options.MaxPendingRemovals of them. A one-message-at-a-time producer thus
// pays one commit per message, its earlier messages' removals riding along.
func (q *Queue) run() {
	defer q.wg.Done()
	var timer *time.Timer
	var fire <-chan time.Time
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer, fire = nil, nil
		}
	}
	defer stopTimer()
	for {
		select {
		case <-q.wake:
			if !q.commitDue() {
				if timer == nil {
					timer = time.NewTimer(q.opts.RemovalDelay)
					fire = timer.C
				}
				continue
			}
			stopTimer()
			if q.commit() == nil {
				q.maybeCompact()
			}
		case <-fire:
			timer, fire = nil, nil
			if q.commit() == nil {
				q.maybeCompact()
			}
		case <-q.done:
			// Close set q.closed before closing done, so nothing new can
			// arrive: this last commit takes everything that is left.
			q.finalErr = q.commit()
			return
		}
	}
}

// commitDue reports whether what is pending must be committed now: a call
// waits, removals are not to be delayed, or too many removals are pending.
func (q *Queue) commitDue() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending) > 0 || q.opts.RemovalDelay < 0 || len(q.rmQueue) >= q.opts.MaxPendingRemovals
}

// rmItem is a removal taken by a commit.
type rmItem struct {
	seq uint64
	removal
}

// commitResult is the state after a successful transaction.
type commitResult struct {
	depth        int
	bytes        int64
	dropped      uint64
	oldestSeq    uint64
	oldest       time.Time
	lastSeq      uint64
	expired      uint64
	deadN        int
	deadB        int64
	deadLettered uint64
	deadDropped  uint64

	appended    uint64
	removed     []uint64 // seqs taken from rmQueue (whether or not the record still existed)
	lateRemoved []uint64 // seqs recorded for removal after the snapshot that DropOldest removed
	ackedN      uint64   // acked records removed
	dropSeqs    []uint64 // seqs deleted by DropOldest (or discarded as corrupt), for WaitAcked
	expSeqs     []uint64 // seqs removed as expired
	headExpired []uint64 // of those, found by the committer at the head (waiters not yet told)
	deadFirst   rmItem   // the first record moved to the dead-letter store, for the log
	counters    bool     // a persisted counter changed
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
	rmSeqs := q.rmQueue
	q.rmQueue = nil
	rms := make([]rmItem, 0, len(rmSeqs))
	for _, seq := range rmSeqs {
		if r, ok := q.removing[seq]; ok {
			rms = append(rms, rmItem{seq, r})
		}
	}
	res := commitResult{depth: q.depth, bytes: q.bytes, dropped: q.dropped, removed: rmSeqs,
		expired: q.expired, deadN: q.deadN, deadB: q.deadB, deadLettered: q.deadLettered, deadDropped: q.deadDropped}
	q.mu.Unlock()

	hasWork := len(rms) > 0
	for _, r := range reqs {
		hasWork = hasWork || r.hasWork()
	}
	if !hasWork {
		q.publishRemovedOnly(rmSeqs)
		for _, r := range reqs {
			close(r.done)
		}
		return nil
	}

	base := res
	err := q.db.Update(func(tx *bolt.Tx) error {
		res = base // an earlier attempt of this function may have changed it
		data := tx.Bucket(dataBucket)
		// Keys only ever grow (NextSequence), so new records always land in the last leaf: fill
		// pages completely instead of splitting them half full (half the pages written, and half the
		// dirty pages held in memory during a large commit).
		data.FillPercent = 1.0
		w := &writer{q: q, tx: tx, data: data, dead: tx.Bucket(deadBucket),
			meta: tx.Bucket(metaBucket), res: &res, now: time.Now()}
		return w.write(reqs, rms)
	})
	if err != nil {
		err = q.commitError(err)
		q.log.Error("queue commit failed", "path", q.path, "calls", len(reqs), "removals", len(rms), "err", err)
		q.mu.Lock()
		// Keep the removals for the next commit; they are still in q.removing.
		q.rmQueue = append(rmSeqs, q.rmQueue...)
		q.mu.Unlock()
		for _, r := range reqs {
			r.seqs, r.n, r.err = nil, 0, err
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

// commitError says what failed; a full disk is named as such and wraps
// ErrDiskFull and the system's error.
func (q *Queue) commitError(err error) error {
	full := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	if !full && strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		// bbolt formats some errors (growing the file) with %s: the errno is
		// only in the text. Put it back for errors.Is.
		err = errnoText{err, syscall.ENOSPC}
		full = true
	}
	if full {
		return fmt.Errorf("queue: %w: commit to %s failed, nothing of it was stored; free space on the file system holding %s (the queue resumes by itself once there is room): %w",
			ErrDiskFull, q.path, filepath.Dir(q.path), err)
	}
	return fmt.Errorf("queue: commit to %s failed, nothing of it was stored: %w", q.path, err)
}

// errnoText is an error whose text names an errno it does not wrap.
type errnoText struct {
	err   error
	errno syscall.Errno
}

func (e errnoText) Error() string   { return e.err.Error() }
func (e errnoText) Unwrap() []error { return []error{e.err, e.errno} }

// writer is one write transaction of the committer.
type writer struct {
	q                *Queue
	tx               *bolt.Tx
	data, dead, meta *bolt.Bucket
	res              *commitResult
	now              time.Time
}

// write runs inside the write transaction. Per-call problems (Reject, an
// unknown dead letter) are stored in the request and do not fail the
// transaction; any error returned fails the whole commit.
func (w *writer) write(reqs []*request, rms []rmItem) error {
	q, res := w.q, w.res
	if hook := q.testHookWrite; hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	// Earlier attempts of a failed commit may have set results; start clean.
	for _, r := range reqs {
		r.seqs, r.n, r.err = nil, 0, nil
	}

	for _, it := range rms {
		k := be64(it.seq)
		v := w.data.Get(k)
		if v == nil {
			continue // dropped, already removed, or never stored
		}
		if err := w.remove(it.seq, v, it.removal); err != nil {
			return err
		}
		if err := w.data.Delete(k); err != nil {
			return fmt.Errorf("delete seq %d: %w", it.seq, err)
		}
	}
	if err := w.expireHead(); err != nil {
		return err
	}

	for _, r := range reqs {
		var err error
		switch r.kind {
		case reqAppend:
			err = w.append(r)
		case reqRequeue:
			err = w.requeue(r)
		case reqDeleteDead:
			err = w.deleteDead(r)
		case reqPutDead:
			err = w.putDead(r)
		}
		if err != nil {
			return err
		}
	}
	if err := w.trimDeadLetters(); err != nil {
		return err
	}

	if res.counters {
		for _, c := range []struct {
			key []byte
			v   uint64
		}{{keyDropped, res.dropped}, {keyExpired, res.expired}, {keyDeadLettered, res.deadLettered}, {keyDeadDropped, res.deadDropped}} {
			if err := w.meta.Put(c.key, be64(c.v)); err != nil {
				return fmt.Errorf("store counter %s: %w", c.key, err)
			}
		}
	}
	res.lastSeq = w.data.Sequence()
	res.oldestSeq, res.oldest = 0, time.Time{}
	if k, v := w.data.Cursor().First(); k != nil {
		res.oldestSeq = seqOf(k)
		res.oldest, _ = recordCreated(v)
	}
	return nil
}

// remove accounts for the removal of the stored record seq (value v) and,
// for a dead letter, stores it in the dead-letter bucket. The caller deletes
// the record from the data bucket.
func (w *writer) remove(seq uint64, v []byte, r removal) error {
	res := w.res
	res.bytes -= int64(len(v))
	res.depth--
	switch r.kind {
	case rmAck:
		res.ackedN++
	case rmCorrupt:
		res.dropSeqs = append(res.dropSeqs, seq) // counted in Stats.Corrupt when found
	case rmExpired:
		res.expired++
		res.expSeqs = append(res.expSeqs, seq)
		res.counters = true
	case rmDead:
		dl := encodeDeadLetter(r.reason, r.at, v) // copies v before the caller deletes it
		if err := w.dead.Put(be64(seq), dl); err != nil {
			return fmt.Errorf("store dead letter seq %d: %w", seq, err)
		}
		if res.deadFirst.seq == 0 {
			res.deadFirst = rmItem{seq, r}
		}
		res.deadN++
		res.deadB += int64(len(dl))
		res.deadLettered++
		res.counters = true
	}
	return nil
}

// maxExpireAtHead bounds the records one commit removes from the head
// because they expired, so a commit stays short.
const maxExpireAtHead = 1024

// expireHead removes expired records at the head of the queue (the oldest),
// so that Stats.Oldest, Depth and Bytes do not keep counting them and they
// do not cause drops or rejections. Records further back expire when Next
// meets them.
func (w *writer) expireHead() error {
	q := w.q
	c := w.data.Cursor()
	for i := 0; i < maxExpireAtHead; i++ {
		k, v := c.First()
		if k == nil {
			return nil
		}
		seq := seqOf(k)
		if q.isRemoving(seq) {
			return nil // its own removal comes with the next commit
		}
		created, expires, ok := recordTimes(v)
		if !ok || !q.isExpired(created, expires, w.now) {
			return nil
		}
		if err := w.remove(seq, v, removal{kind: rmExpired}); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("delete expired seq %d: %w", seq, err)
		}
		w.res.headExpired = append(w.res.headExpired, seq)
	}
	return nil
}

// append stores the records of an Append call, or fails the call with
// ErrFull (Reject) without failing the transaction.
func (w *writer) append(r *request) error {
	if len(r.recs) == 0 {
		return nil
	}
	q, res := w.q, w.res
	if max := q.opts.MaxBytes; max > 0 && res.bytes+r.size > max {
		if q.opts.Overflow == Reject {
			r.err = fmt.Errorf("queue: %d bytes stored + %d new > max_bytes %d (overflow = reject): %w",
				res.bytes, r.size, max, ErrFull)
			return nil
		}
		if err := w.dropOldest(r.size); err != nil {
			return err
		}
	}
	r.seqs = make([]uint64, len(r.recs))
	for i, rec := range r.recs {
		seq, err := w.data.NextSequence()
		if err != nil {
			return fmt.Errorf("next sequence: %w", err)
		}
		if err := w.data.Put(be64(seq), rec); err != nil {
			return fmt.Errorf("store seq %d: %w", seq, err)
		}
		r.seqs[i] = seq
	}
	res.bytes += r.size
	res.depth += len(r.recs)
	res.appended += uint64(len(r.recs))
	return nil
}

// dropOldest deletes records from the head until need more bytes fit.
func (w *writer) dropOldest(need int64) error {
	q, res := w.q, w.res
	c := w.data.Cursor()
	for res.bytes+need > q.opts.MaxBytes {
		k, v := c.First()
		if k == nil {
			break // cannot happen: need <= MaxBytes was checked by Append
		}
		seq := seqOf(k)
		if r, ok := q.removalOf(seq); ok {
			// Acked (or dead-lettered, …) while this commit was being
			// prepared: carry out that removal instead, it is not a loss.
			if err := w.remove(seq, v, r); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return fmt.Errorf("remove seq %d: %w", seq, err)
			}
			res.lateRemoved = append(res.lateRemoved, seq)
			continue
		}
		size := int64(len(v))
		if err := c.Delete(); err != nil {
			return fmt.Errorf("drop seq %d: %w", seq, err)
		}
		res.bytes -= size
		res.depth--
		res.dropSeqs = append(res.dropSeqs, seq)
		res.dropped++
		res.counters = true
	}
	return nil
}

// publish makes a committed result visible: counters, waiters, Next wakeups.
func (q *Queue) publish(res *commitResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.commits++
	dropsBefore, deadBefore := q.dropped, q.deadLettered
	q.depth, q.bytes, q.dropped = res.depth, res.bytes, res.dropped
	q.oldestSeq, q.oldest = res.oldestSeq, res.oldest
	q.lastSeq = res.lastSeq
	q.expired = res.expired
	q.deadN, q.deadB, q.deadLettered, q.deadDropped = res.deadN, res.deadB, res.deadLettered, res.deadDropped
	q.appended += res.appended
	q.ackedN += res.ackedN
	for _, seq := range res.removed {
		delete(q.removing, seq)
	}
	for _, seq := range res.lateRemoved {
		delete(q.removing, seq)
	}
	for _, seq := range res.dropSeqs {
		q.dropSet.add(seq)
		q.resolveLocked(seq, fmt.Errorf("queue: seq %d: %w", seq, ErrDropped))
	}
	for _, seq := range res.expSeqs {
		q.expSet.add(seq)
	}
	for _, seq := range res.headExpired {
		q.resolveLocked(seq, fmt.Errorf("queue: seq %d: %w", seq, ErrExpired))
	}
	if n := q.dropped - dropsBefore; n > 0 {
		q.log.Warn("queue full: dropped oldest messages", "count", n,
			"dropped_total", q.dropped, "max_bytes", q.opts.MaxBytes)
	}
	if n := q.deadLettered - deadBefore; n > 0 {
		q.log.Warn("queue: moved messages to the dead-letter store", "count", n, "first_seq", res.deadFirst.seq,
			"first_reason", res.deadFirst.reason, "dead_letters", q.deadN, "dead_lettered_total", q.deadLettered)
	}
	if len(res.headExpired) > 0 {
		q.log.Info("queue: removed expired messages", "count", len(res.headExpired), "expired_total", q.expired)
	}
	if res.appended > 0 {
		close(q.notify)
		q.notify = make(chan struct{})
	}
}

// publishRemovedOnly forgets removals whose records were already gone, when
// a commit had nothing to write.
func (q *Queue) publishRemovedOnly(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, seq := range seqs {
		delete(q.removing, seq)
	}
}
