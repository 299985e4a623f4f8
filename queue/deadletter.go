package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// This file is the dead-letter store: messages the broker refused for good
// (poison messages) are moved out of the queue so they cannot block it, kept
// with the reason for an operator to list, requeue or delete.

// DeadLetter is a message in the dead-letter store. Message.Seq is the seq it
// had in the queue.
type DeadLetter struct {
	Message
	Reason string    // as given to Queue.DeadLetter
	At     time.Time // when Queue.DeadLetter was called
}

// maxReasonLen bounds the stored reason (bytes).
const maxReasonLen = 1024

// DeadLetter moves the record seq to the dead-letter store with reason. Like
// Ack it never blocks: from the call on, Next never returns seq and its
// WaitAcked callers get an error wrapping ErrDeadLettered with the reason;
// the move itself is group-committed in the background (Flush or Close make
// it durable; a crash before that commit brings the message back to the
// queue). An unknown, acked, dropped, expired or already dead-lettered seq is
// a no-op. The reason is truncated to 1024 bytes of valid UTF-8.
func (q *Queue) DeadLetter(seq uint64, reason string) {
	reason = cleanReason(reason)
	at := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || !q.mayBeStoredLocked(seq) {
		return
	}
	if q.markLocked(seq, removal{kind: rmDead, reason: reason, at: at}) {
		q.signal() // the commit logs a summary: no log line per message
	}
}

func cleanReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxReasonLen {
		return s
	}
	cut := maxReasonLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// DeadLetters returns up to max dead letters with Seq > after, ordered by
// their original seq. It reads the file: a DeadLetter call shows here once
// its commit is done (Flush waits for it). A dead-letter record that cannot
// be decoded is returned with its Seq and a Reason saying so, so that it can
// be deleted.
func (q *Queue) DeadLetters(after uint64, max int) ([]DeadLetter, error) {
	if max <= 0 {
		return nil, fmt.Errorf("queue: DeadLetters: max must be at least 1, got %d", max)
	}
	var out []DeadLetter
	err := q.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(q.keys.dead).Cursor()
		for k, v := c.Seek(be64(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			dl, err := decodeDeadLetter(v)
			if err != nil {
				dl = DeadLetter{Reason: fmt.Sprintf("undecodable dead-letter record (delete it): %v", err)}
			}
			dl.Seq = seqOf(k)
			out = append(out, dl)
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("queue: read dead letters from %s: %w", q.path, err)
	}
	return out, nil
}

// Requeue moves the dead letters seqs back to the tail of the queue with new
// seqs (the result: the new seq of seqs[i]; a seq given twice is moved once),
// in the order of their original seqs, and returns after the commit is
// durable. The messages are kept as they were except Created, which becomes
// the time of the requeue (so Options.MaxAge counts from it; an Expires that
// has passed still expires the message). They count toward MaxBytes again:
// Overflow applies as for Append (Reject: ErrFull and nothing moved). If any
// seq is not in the dead-letter store, the error wraps ErrNotDeadLettered,
// names the seqs, and nothing is moved.
func (q *Queue) Requeue(ctx context.Context, seqs ...uint64) ([]uint64, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &request{kind: reqRequeue, dead: slices.Clone(seqs), done: make(chan struct{})}
	if err := q.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.seqs, r.err
}

// DeleteDeadLetters deletes the dead letters seqs for good and returns how
// many there were, after the commit is durable. Seqs not in the store are
// ignored.
func (q *Queue) DeleteDeadLetters(ctx context.Context, seqs ...uint64) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := &request{kind: reqDeleteDead, dead: slices.Clone(seqs), done: make(chan struct{})}
	if err := q.submit(ctx, r); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// Dead-letter record layout, version 1 (integers big-endian); the key is the
// message's seq:
//
//	offset  size  field
//	0       1     dead-letter record version (1)
//	1       8     at, Unix nanoseconds (int64)
//	9       2     reason length R (0..1024)
//	11      R     reason (UTF-8)
//	11+R    ..    the message record as stored in the queue (see record.go)
const (
	deadRecordVersion = 1
	deadHeaderLen     = 1 + 8 + 2
)

func encodeDeadLetter(reason string, at time.Time, rec []byte) []byte {
	b := make([]byte, 0, deadHeaderLen+len(reason)+len(rec))
	b = append(b, deadRecordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
	b = append(b, reason...)
	return append(b, rec...)
}

// decodeDeadLetter decodes a dead-letter record (Seq is left zero). The
// result does not alias b. Every error wraps ErrCorrupt.
func decodeDeadLetter(b []byte) (DeadLetter, error) {
	var dl DeadLetter
	if len(b) < deadHeaderLen {
		return dl, fmt.Errorf("%w: dead letter of %d bytes is shorter than its %d-byte header", ErrCorrupt, len(b), deadHeaderLen)
	}
	if b[0] != deadRecordVersion {
		return dl, fmt.Errorf("%w: dead-letter record version %d, this build reads version %d", ErrCorrupt, b[0], deadRecordVersion)
	}
	dl.At = time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])))
	rl := int(binary.BigEndian.Uint16(b[9:11]))
	if rl > maxReasonLen || len(b) < deadHeaderLen+rl {
		return dl, fmt.Errorf("%w: dead-letter reason length %d does not fit", ErrCorrupt, rl)
	}
	reason := b[deadHeaderLen : deadHeaderLen+rl]
	if !utf8.Valid(reason) {
		return dl, fmt.Errorf("%w: dead-letter reason is not UTF-8", ErrCorrupt)
	}
	dl.Reason = string(reason)
	m, err := decodeRecord(b[deadHeaderLen+rl:])
	if err != nil {
		return dl, fmt.Errorf("dead letter's message: %w", err)
	}
	dl.Message = m
	return dl, nil
}
