package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// This file is the consumer side: Next, Ack and WaitAcked.

// Next blocks until at least one message with Seq > after exists (or ctx
// ends, or Close), and returns up to max of them in seq order, skipping acked
// ones. It never removes anything. A record that cannot be decoded is logged,
// counted in Stats.Corrupt and discarded (so it cannot block the queue), and
// its WaitAcked callers get an error wrapping ErrDropped.
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
			msgs, err := q.read(after, max)
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

// read returns up to max unacked messages with Seq > after, using one cursor
// Seek in one read transaction.
func (q *Queue) read(after uint64, max int) ([]Message, error) {
	var msgs []Message
	var corrupt []uint64
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(dataBucket).Cursor()
		for k, v := c.Seek(be64(after + 1)); k != nil && len(msgs) < max; k, v = c.Next() {
			seq := seqOf(k)
			if q.isAcked(seq) {
				continue
			}
			m, err := decodeRecord(v)
			if err != nil {
				q.log.Error("queue: discarding undecodable record", "path", q.path, "seq", seq, "err", err)
				corrupt = append(corrupt, seq)
				continue
			}
			m.Seq = seq
			msgs = append(msgs, m)
		}
		return nil
	})
	if len(corrupt) > 0 {
		q.discardCorrupt(corrupt)
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", q.path, err)
	}
	return msgs, nil
}

func (q *Queue) discardCorrupt(seqs []uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	for _, seq := range seqs {
		if _, ok := q.acked[seq]; ok {
			continue
		}
		q.acked[seq] = true
		q.ackQueue = append(q.ackQueue, seq)
		q.corrupt++
		q.resolveLocked(seq, fmt.Errorf("queue: seq %d was corrupt on disk and discarded: %w", seq, ErrDropped))
	}
	q.signal()
}

// Ack marks seqs delivered. It never blocks: the seqs are recorded in memory
// (Next skips them from now on, WaitAcked returns nil) and the records are
// deleted by the committer in its next transaction (group-committed with
// other acks and appends). A crash before that commit means redelivery after
// Open, which at-least-once permits; Flush or Close make removals durable.
// Acking an unknown, dropped or already acked seq is a no-op.
func (q *Queue) Ack(seqs ...uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	added := false
	for _, seq := range seqs {
		if seq == 0 || seq > q.lastSeq || q.depth == 0 || seq < q.oldestSeq {
			continue
		}
		if _, ok := q.acked[seq]; ok {
			continue
		}
		if q.droppedLocked(seq) {
			continue
		}
		q.acked[seq] = false
		q.ackQueue = append(q.ackQueue, seq)
		q.resolveLocked(seq, nil)
		added = true
	}
	if added {
		q.signal()
	}
}

// WaitAcked blocks until seq is acked (nil), dropped by overflow (an error
// wrapping ErrDropped), ctx ends (ctx.Err()) or the queue is closed
// (ErrClosed).
//
// Called after the fact it answers from what is known: a seq that is no
// longer stored counts as dropped if this process dropped it recently (the
// last 1024 runs of drops are remembered), otherwise as acked. After a
// restart, drops made before it are not remembered and such a seq reports
// nil. A seq that was never assigned is an error.
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
	if _, ok := q.acked[seq]; ok {
		q.mu.Unlock()
		return nil, nil
	}
	if q.droppedLocked(seq) {
		q.mu.Unlock()
		return nil, fmt.Errorf("queue: seq %d: %w", seq, ErrDropped)
	}
	if q.depth == 0 || seq < q.oldestSeq {
		q.mu.Unlock()
		return nil, nil // gone and not a known drop: it was acked and removed
	}
	q.mu.Unlock()

	stored := false
	err := q.db.View(func(tx *bolt.Tx) error {
		stored = tx.Bucket(dataBucket).Get(be64(seq)) != nil
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("queue: WaitAcked: read %s: %w", q.path, err)
	}
	if !stored {
		return nil, nil // removed after an ack
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	if _, ok := q.acked[seq]; ok {
		return nil, nil // acked while we looked
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

func (q *Queue) droppedLocked(seq uint64) bool {
	i := sort.Search(len(q.dropRanges), func(i int) bool { return q.dropRanges[i].hi >= seq })
	return i < len(q.dropRanges) && q.dropRanges[i].lo <= seq
}
