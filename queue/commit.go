package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	to    []Targets // Store.Append: the lanes of recs[i]; nil for a lane's own request
	dead  []uint64  // reqRequeue, reqDeleteDead: the seqs given
	taken bool      // set by the committer under q.mu; after that the request cannot be withdrawn

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
// after fsync. Concurrent Appends share one commit (group commit).
//
// MaxBytes bounds the sum of encoded record sizes (the bbolt values, not keys
// or page overhead). Over it, DropOldest deletes the oldest records in the
// same transaction, counts them in Stats.Dropped (persisted) and tells their
// WaitAcked callers ErrDropped (with a tiny bound this may include records of
// an earlier Append in the same commit: they were the oldest); Reject returns
// ErrFull and stores nothing. Records awaiting removal (acked, dead-lettered,
// expired) and expired records at the head are removed at the start of every
// commit, so they never cause a drop or a rejection. A message or call bigger
// than MaxBytes fails with ErrTooLarge (which wraps ErrFull) in both modes; an
// unstorable message with ErrInvalid.
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
	r, err := encodeMessages(msgs)
	if err != nil {
		return nil, err
	}
	for i, rec := range r.recs {
		if q.opts.MaxBytes > 0 && int64(len(rec)) > q.opts.MaxBytes {
			return nil, fmt.Errorf("queue: message %d of %d (topic %.64q) is %d bytes encoded, max_bytes is %d: %w",
				i+1, len(msgs), msgs[i].Topic, len(rec), q.opts.MaxBytes, ErrTooLarge)
		}
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

// encodeMessages validates and encodes msgs (Created set to now where zero)
// into an append request.
func encodeMessages(msgs []Message) (*request, error) {
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
		r.recs[i] = encodeRecord(&m)
		r.size += int64(len(r.recs[i]))
	}
	return r, nil
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
	return q.enqueue(ctx, &q.mu, &q.closed, &q.pending, r)
}

// enqueue appends r to *pending (guarded by mu; refused once *closed), wakes
// the committer and waits for r's outcome. If ctx ends before the committer
// took r, r is withdrawn and ctx.Err() returned; once taken, its commit's
// outcome is awaited (one fsync), so that the answer is always the truth.
func (c *core) enqueue(ctx context.Context, mu *sync.Mutex, closed *bool, pending *[]*request, r *request) error {
	mu.Lock()
	if *closed {
		mu.Unlock()
		return ErrClosed
	}
	*pending = append(*pending, r)
	mu.Unlock()
	c.signal()

	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	mu.Lock()
	if !r.taken {
		if i := slices.Index(*pending, r); i >= 0 {
			*pending = slices.Delete(*pending, i, i+1)
		}
		mu.Unlock()
		return ctx.Err()
	}
	mu.Unlock()
	<-r.done // the commit holding r is running; it ends with one fsync
	return nil
}

// run is the committer goroutine, owned by openStore/close; it commits for
// every lane of the file.
//
// Calls (Append, Flush, Requeue, …) are committed at once. Removals alone
// (acks, dead letters, expiries, discards) are not worth an fsync of their
// own: they wait for the next commit that happens anyway, for at most
// Options.RemovalDelay (a timer, armed by the first of them) and at most
// Options.MaxPendingRemovals of them. A one-message-at-a-time producer thus
// pays one commit per message, its earlier messages' removals riding along.
func (c *core) run() {
	defer c.wg.Done()
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
		case <-c.wake:
			if !c.commitDue() {
				if timer == nil {
					timer = time.NewTimer(c.opts.RemovalDelay)
					fire = timer.C
				}
				continue
			}
			stopTimer()
			if c.commit() == nil {
				c.maybeCompact()
			}
		case <-fire:
			timer, fire = nil, nil
			if c.commit() == nil {
				c.maybeCompact()
			}
		case <-c.done:
			// close set every lane closed before closing done, so nothing new
			// can arrive: this last commit takes everything that is left.
			c.finalErr = c.commit()
			return
		}
	}
}

// commitDue reports whether what is pending must be committed now: a call
// waits, removals are not to be delayed, or too many removals are pending.
func (c *core) commitDue() bool {
	if c.opts.RemovalDelay < 0 {
		return true
	}
	c.gmu.Lock()
	due := len(c.groups) > 0
	c.gmu.Unlock()
	for _, q := range c.lanes {
		if due {
			break
		}
		q.mu.Lock()
		due = len(q.pending) > 0 || len(q.rmQueue) >= q.opts.MaxPendingRemovals
		q.mu.Unlock()
	}
	return due
}

// laneWork is one lane's share of a commit.
type laneWork struct {
	q      *Queue
	reqs   []*request
	rmSeqs []uint64
	rms    []rmItem
	base   commitResult
	res    commitResult
}

func (lw *laneWork) hasWork() bool {
	if len(lw.rms) > 0 {
		return true
	}
	for _, r := range lw.reqs {
		if r.hasWork() {
			return true
		}
	}
	return false
}

// take hands what is pending in q to a commit.
func (q *Queue) take() laneWork {
	q.mu.Lock()
	defer q.mu.Unlock()
	lw := laneWork{q: q, reqs: q.pending, rmSeqs: q.rmQueue}
	q.pending, q.rmQueue = nil, nil
	for _, r := range lw.reqs {
		r.taken = true
	}
	lw.rms = make([]rmItem, 0, len(lw.rmSeqs))
	for _, seq := range lw.rmSeqs {
		if r, ok := q.removing[seq]; ok {
			lw.rms = append(lw.rms, rmItem{seq, r})
		}
	}
	lw.base = commitResult{fileState: q.fileState, removed: lw.rmSeqs}
	return lw
}

// commit writes everything pending in every lane, and the Store.Append calls
// waiting, in one transaction and applies the outcome. It returns the
// transaction's error (already handed to callers).
func (c *core) commit() error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	if hook := c.testHookBeforeCommit; hook != nil {
		hook()
	}

	c.gmu.Lock()
	groups := c.groups
	c.groups = nil
	for _, g := range groups {
		g.taken = true
	}
	c.gmu.Unlock()
	work := make([]laneWork, len(c.lanes))
	hasWork := false
	for _, g := range groups {
		hasWork = hasWork || g.hasWork()
	}
	for i, q := range c.lanes {
		work[i] = q.take()
		hasWork = hasWork || work[i].hasWork()
	}
	if !hasWork {
		for i := range work {
			work[i].q.forgetRemovals(work[i].rmSeqs)
			for _, r := range work[i].reqs {
				close(r.done)
			}
		}
		for _, g := range groups {
			close(g.done)
		}
		return nil
	}

	err := c.db.Update(func(tx *bolt.Tx) error {
		t := &txn{c: c, meta: tx.Bucket(metaBucket), now: time.Now()}
		for i := range work {
			lw := &work[i]
			lw.res = lw.base // an earlier attempt of this function may have changed it
			data := tx.Bucket(lw.q.keys.data)
			// Keys only ever grow (NextSequence), so new records always land in the last leaf: fill
			// pages completely instead of splitting them half full (half the pages written, and half the
			// dirty pages held in memory during a large commit).
			data.FillPercent = 1.0
			t.ws = append(t.ws, &writer{q: lw.q, t: t, tx: tx, data: data, dead: tx.Bucket(lw.q.keys.dead),
				meta: t.meta, res: &lw.res, now: t.now})
		}
		if hook := c.testHookWrite; hook != nil {
			if err := hook(); err != nil {
				return err
			}
		}
		// Earlier attempts of a failed commit may have set results; start clean.
		for _, g := range groups {
			g.seqs, g.n, g.err = nil, 0, nil
		}
		for i := range work {
			for _, r := range work[i].reqs {
				r.seqs, r.n, r.err = nil, 0, nil
			}
			if err := t.ws[i].removals(work[i].rms); err != nil {
				return err
			}
		}
		for _, g := range groups {
			if err := t.place(g, g.to); err != nil {
				return err
			}
		}
		for i := range work {
			if err := t.ws[i].requests(work[i].reqs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		err = c.commitError(err)
		calls := len(groups)
		rms := 0
		for i := range work {
			lw := &work[i]
			calls += len(lw.reqs)
			rms += len(lw.rms)
			q := lw.q
			q.mu.Lock()
			// Keep the removals for the next commit; they are still in q.removing.
			q.rmQueue = append(lw.rmSeqs, q.rmQueue...)
			q.mu.Unlock()
			for _, r := range lw.reqs {
				r.seqs, r.n, r.err = nil, 0, err
				close(r.done)
			}
		}
		for _, g := range groups {
			g.seqs, g.n, g.err = nil, 0, err
			close(g.done)
		}
		c.log.Error("queue commit failed", "path", c.path, "calls", calls, "removals", rms, "err", err)
		return err
	}

	c.commits.Add(1)
	// Every lane's result is applied before any caller is woken: a Flush or Append returns with
	// the whole commit visible in every lane.
	for i := range work {
		work[i].q.apply(&work[i].res)
	}
	for i := range work {
		for _, r := range work[i].reqs {
			close(r.done)
		}
	}
	for _, g := range groups {
		close(g.done)
	}
	return nil
}

// commitError says what failed; a full disk is named as such and wraps
// ErrDiskFull and the system's error.
func (c *core) commitError(err error) error {
	full := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	if !full && strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		// bbolt formats some errors (growing the file) with %s: the errno is
		// only in the text. Put it back for errors.Is.
		err = errnoText{err, syscall.ENOSPC}
		full = true
	}
	if full {
		return fmt.Errorf("queue: %w: commit to %s failed, nothing of it was stored; free space on the file system holding %s (the queue resumes by itself once there is room): %w",
			ErrDiskFull, c.path, filepath.Dir(c.path), err)
	}
	return fmt.Errorf("queue: commit to %s failed, nothing of it was stored: %w", c.path, err)
}

// errnoText is an error whose text names an errno it does not wrap.
type errnoText struct {
	err   error
	errno syscall.Errno
}

func (e errnoText) Error() string   { return e.err.Error() }
func (e errnoText) Unwrap() []error { return []error{e.err, e.errno} }

// apply makes a committed result current: the file's state, counters,
// waiters, Next wakeups.
func (q *Queue) apply(res *commitResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dropsBefore, deadBefore := q.dropped, q.deadLettered
	q.fileState = res.fileState
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

// forgetRemovals forgets removals whose records were already gone, when a
// commit had nothing to write.
func (q *Queue) forgetRemovals(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, seq := range seqs {
		delete(q.removing, seq)
	}
}
