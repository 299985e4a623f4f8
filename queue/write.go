package queue

import (
	"fmt"
	"math/bits"
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

// txn is one write transaction of the committer: a writer per lane, the
// meta bucket they share (the seq counter).
type txn struct {
	c    *core
	ws   []*writer // index = lane index
	meta *bolt.Bucket
	now  time.Time
}

// writer is one lane's part of a write transaction.
type writer struct {
	q                *Queue
	t                *txn
	tx               *bolt.Tx
	data, dead, meta *bolt.Bucket
	res              *commitResult
	now              time.Time
}

// removals carries out the lane's recorded removals and expires records at
// its head; it runs before any record is added in the transaction.
func (w *writer) removals(rms []rmItem) error {
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
	return w.expireHead()
}

// requests runs the lane's own calls, then bounds its dead-letter store,
// persists its counters and takes its state. Per-call problems (Reject, an
// unknown dead letter) are stored in the request and do not fail the
// transaction; any error returned fails the whole commit.
func (w *writer) requests(reqs []*request) error {
	res := w.res
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
		k := w.q.keys
		for _, c := range []struct {
			key []byte
			v   uint64
		}{{k.dropped, res.dropped}, {k.expired, res.expired}, {k.deadLettered, res.deadLettered}, {k.deadDrp, res.deadDropped}} {
			if err := w.meta.Put(c.key, be64(c.v)); err != nil {
				return fmt.Errorf("store counter %s: %w", c.key, err)
			}
		}
	}
	res.lastSeq = w.meta.Sequence()
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

// append stores the records of a lane's own Append call, or fails the call
// with ErrFull (Reject) without failing the transaction.
func (w *writer) append(r *request) error {
	if len(r.recs) == 0 {
		return nil
	}
	to := make([]Targets, len(r.recs))
	for i := range to {
		to[i] = Lane(w.q.idx)
	}
	return w.t.place(r, to)
}

// place stores r.recs[i] in every lane of to[i] under one new seq each, or
// fails the call (r.err, ErrFull) without storing any of it: every lane must
// take all of its records. A lane over its MaxBytes drops its oldest records
// (DropOldest) or refuses (Reject); then, over the overall bound, the oldest
// records of all lanes are dropped (the overall DropOldest) or the call is
// refused (Reject).
func (t *txn) place(r *request, to []Targets) error {
	if len(r.recs) == 0 {
		return nil
	}
	need := make([]int64, len(t.ws))
	var all Targets
	var total int64
	for i, rec := range r.recs {
		all |= to[i]
		to[i].Each(func(l int) {
			need[l] += int64(len(rec))
			total += int64(len(rec))
		})
	}
	// What the lanes that drop will free at least; the others must fit as they are.
	var freed, stored int64
	for l, w := range t.ws {
		stored += w.res.bytes
		max := w.q.opts.MaxBytes
		if !all.Has(l) || max <= 0 || w.res.bytes+need[l] <= max {
			continue
		}
		if w.q.opts.Overflow == Reject {
			r.err = fmt.Errorf("queue%s: %d bytes stored + %d new > max_bytes %d (overflow = reject): %w",
				w.q.laneLabel(), w.res.bytes, need[l], max, ErrFull)
			return nil
		}
		freed += w.res.bytes + need[l] - max
	}
	overall := t.c.opts.MaxBytes
	if overall > 0 && t.c.opts.Overflow == Reject && stored-freed+total > overall {
		r.err = fmt.Errorf("queue: %d bytes stored in all lanes + %d new > the overall max_bytes %d (overflow = reject): %w",
			stored-freed, total, overall, ErrFull)
		return nil
	}
	for l, w := range t.ws {
		if max := w.q.opts.MaxBytes; all.Has(l) && max > 0 && w.res.bytes+need[l] > max {
			if err := w.dropOldest(need[l]); err != nil {
				return err
			}
		}
	}
	if overall > 0 {
		if err := t.dropOldestOverall(overall - total); err != nil {
			return err
		}
	}
	r.seqs = make([]uint64, len(r.recs))
	for i, rec := range r.recs {
		seq, err := t.meta.NextSequence()
		if err != nil {
			return fmt.Errorf("next sequence: %w", err)
		}
		r.seqs[i] = seq
		for v := uint64(to[i]); v != 0; v &= v - 1 {
			w := t.ws[bits.TrailingZeros64(v)]
			if err := w.data.Put(be64(seq), rec); err != nil {
				return fmt.Errorf("store seq %d: %w", seq, err)
			}
			w.res.bytes += int64(len(rec))
			w.res.depth++
			w.res.appended++
		}
	}
	return nil
}

// dropOldest deletes records from the lane's head until need more bytes fit.
func (w *writer) dropOldest(need int64) error {
	for w.res.bytes+need > w.q.opts.MaxBytes {
		ok, err := w.dropFirst()
		if err != nil || !ok {
			return err // !ok cannot happen: need <= MaxBytes was checked by Append
		}
	}
	return nil
}

// dropOldestOverall drops the oldest records of all lanes (lowest seq first)
// until the lanes hold at most limit bytes together.
func (t *txn) dropOldestOverall(limit int64) error {
	for {
		var stored int64
		var oldest *writer
		var oldestSeq uint64
		for _, w := range t.ws {
			stored += w.res.bytes
			if k, _ := w.data.Cursor().First(); k != nil && (oldest == nil || seqOf(k) < oldestSeq) {
				oldest, oldestSeq = w, seqOf(k)
			}
		}
		if stored <= limit || oldest == nil {
			return nil
		}
		if ok, err := oldest.dropFirst(); err != nil || !ok {
			return err
		}
	}
}

// dropFirst deletes the lane's first record: dropped (counted) or, when it
// was acked (or dead-lettered, …) while this commit was being prepared, that
// removal carried out instead, which is not a loss. ok is false when the lane
// is empty.
func (w *writer) dropFirst() (ok bool, err error) {
	q, res := w.q, w.res
	c := w.data.Cursor()
	k, v := c.First()
	if k == nil {
		return false, nil
	}
	seq := seqOf(k)
	if r, ok := q.removalOf(seq); ok {
		if err := w.remove(seq, v, r); err != nil {
			return false, err
		}
		if err := c.Delete(); err != nil {
			return false, fmt.Errorf("remove seq %d: %w", seq, err)
		}
		res.lateRemoved = append(res.lateRemoved, seq)
		return true, nil
	}
	size := int64(len(v))
	if err := c.Delete(); err != nil {
		return false, fmt.Errorf("drop seq %d: %w", seq, err)
	}
	res.bytes -= size
	res.depth--
	res.dropSeqs = append(res.dropSeqs, seq)
	res.dropped++
	res.counters = true
	return true, nil
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
		seq, err := w.meta.NextSequence()
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
