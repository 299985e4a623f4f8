package queue

import (
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file is the transaction writer: everything the committer does inside
// one bbolt write transaction (commit.go starts it and applies its result).

// rmItem is a removal taken by a commit.
type rmItem struct {
	seq uint64
	removal
}

// commitResult is the outcome of a write transaction, applied by apply once
// it committed.
type commitResult struct {
	fileState // the file after this transaction

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

// requeue runs in the write transaction for a Requeue call.
func (w *writer) requeue(r *request) error {
	uniq := slices.Clone(r.dead)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)

	var missing []string
	recs := make([][]byte, len(uniq))
	var sizes int64
	for i, seq := range uniq {
		v := w.dead.Get(be64(seq))
		if v == nil {
			missing = append(missing, fmt.Sprint(seq))
			continue
		}
		dl, err := decodeDeadLetter(v)
		if err != nil {
			r.err = fmt.Errorf("queue: Requeue: dead letter seq %d cannot be decoded, nothing was requeued (delete it with DeleteDeadLetters): %w", seq, err)
			return nil
		}
		dl.Created = w.now
		recs[i] = encodeRecord(&dl.Message)
		sizes += int64(len(recs[i]))
	}
	if len(missing) > 0 {
		r.err = fmt.Errorf("queue: Requeue: seq %s: %w; nothing was requeued", strings.Join(missing, ", "), ErrNotDeadLettered)
		return nil
	}
	if max := w.q.opts.MaxBytes; max > 0 && sizes > max {
		r.err = fmt.Errorf("queue: Requeue: %d dead letters are %d bytes encoded together, max_bytes is %d (requeue fewer at once): %w",
			len(uniq), sizes, max, ErrTooLarge)
		return nil
	}

	ar := &request{recs: recs, size: sizes}
	if err := w.append(ar); err != nil {
		return err
	}
	if ar.err != nil {
		r.err = fmt.Errorf("queue: Requeue: nothing was requeued: %w", ar.err)
		return nil
	}
	newSeq := make(map[uint64]uint64, len(uniq))
	for i, seq := range uniq {
		newSeq[seq] = ar.seqs[i]
		k := be64(seq)
		w.res.deadB -= int64(len(w.dead.Get(k)))
		w.res.deadN--
		if err := w.dead.Delete(k); err != nil {
			return fmt.Errorf("delete requeued dead letter seq %d: %w", seq, err)
		}
	}
	r.seqs = make([]uint64, len(r.dead))
	for i, seq := range r.dead {
		r.seqs[i] = newSeq[seq]
	}
	return nil
}

// deleteDead runs in the write transaction for a DeleteDeadLetters call.
func (w *writer) deleteDead(r *request) error {
	for _, seq := range r.dead {
		k := be64(seq)
		v := w.dead.Get(k)
		if v == nil {
			continue // unknown, or given twice
		}
		w.res.deadB -= int64(len(v))
		w.res.deadN--
		if err := w.dead.Delete(k); err != nil {
			return fmt.Errorf("delete dead letter seq %d: %w", seq, err)
		}
		r.n++
	}
	return nil
}

// trimDeadLetters evicts the dead letters with the lowest seqs while the
// store holds more than MaxDeadLetters.
func (w *writer) trimDeadLetters() error {
	res := w.res
	if res.deadN <= w.q.opts.MaxDeadLetters {
		return nil
	}
	c := w.dead.Cursor()
	first := uint64(0)
	n := 0
	for res.deadN > w.q.opts.MaxDeadLetters {
		k, v := c.First()
		if k == nil {
			res.deadN, res.deadB = 0, 0 // the count was wrong; the bucket is empty
			break
		}
		if n == 0 {
			first = seqOf(k)
		}
		res.deadB -= int64(len(v))
		if err := c.Delete(); err != nil {
			return fmt.Errorf("evict dead letter seq %d: %w", seqOf(k), err)
		}
		res.deadN--
		res.deadDropped++
		res.counters = true
		n++
	}
	if n > 0 {
		w.q.log.Warn("queue: dead-letter store full, evicted the oldest dead letters", "count", n,
			"first_seq", first, "max_dead_letters", w.q.opts.MaxDeadLetters, "evicted_total", res.deadDropped)
	}
	return nil
}

// putDead runs in the write transaction for salvaged dead letters: it
// stores the dead-letter records under new seqs, in order.
func (w *writer) putDead(r *request) error {
	r.seqs = make([]uint64, len(r.recs))
	for i, rec := range r.recs {
		seq, err := w.data.NextSequence()
		if err != nil {
			return fmt.Errorf("next sequence: %w", err)
		}
		if err := w.dead.Put(be64(seq), rec); err != nil {
			return fmt.Errorf("store salvaged dead letter seq %d: %w", seq, err)
		}
		r.seqs[i] = seq
		w.res.deadN++
		w.res.deadB += int64(len(rec))
	}
	return nil
}
