package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// LaneOptions are one lane's own bounds: a lane is the queue of one broker inside a Store.
type LaneOptions struct {
	Name           string // unique, 1 to 255 bytes; the name a lane is found by in the file
	MaxBytes       int64  // this lane's bound (Options.MaxBytes of a one-lane queue); 0 = unbounded
	Overflow       Overflow
	MaxAge         time.Duration
	MaxDeadLetters int // 0 = DefaultMaxDeadLetters
}

// StoreOptions configure OpenStore. Options.MaxBytes and Options.Overflow bound all lanes
// together (0 = no overall bound): past it, DropOldest drops the oldest records of all lanes
// (lowest seq first), Reject refuses the Append. Options.MaxAge and MaxDeadLetters are not used:
// they are per lane.
type StoreOptions struct {
	Options
	Lanes []LaneOptions // 1 to MaxLanes
}

// Store is one queue file holding one lane per broker. Every lane is a *Queue of its own — order,
// bounds, expiry, dead letters, Next/Ack, WaitAcked, Stats — and all lanes share the file and its
// committer: one commit (one fsync) carries whatever every lane has pending. Append stores a
// message in several lanes in one commit, under one seq.
//
// A message stored in n lanes is n records (one per lane's bucket, written in the same
// transaction) so that each lane drains, expires, drops and dead-letters on its own with the
// single-lane code; it leaves the file when the last of its lanes removes it. While the queue is
// nearly empty — a gateway online — the lanes' buckets live inside one page, so a message for two
// lanes sent one per request writes what one for one lane does (12 KiB, removals included:
// TestWearLanesOneMessagePerRequest). A backlog or a batch costs each lane its own pages: about
// twice the one-lane figure for two lanes (TestWearLanesBatches).
type Store struct {
	*core
}

// OpenStore opens (or creates, mode 0600) the queue file at path with the lanes of o. A format 1
// file (a single-lane queue of an earlier release) is upgraded in place: what it holds is kept for
// the lane named DefaultLane or, if there is none, the first lane. A lane in the file that o does
// not name is kept in the file, untouched, and logged (its records are not sent); when the file
// has one lane and o names one other lane, the file's lane is renamed. Errors are Open's.
func OpenStore(path string, o StoreOptions) (*Store, error) {
	return openStore(path, o, false)
}

// OpenStoreOrRecover is OpenStore with OpenOrRecover's recovery of a damaged file: what can be
// read of each lane is salvaged into the lane of the same name (a format 1 file's into the lane
// its records would be upgraded for).
func OpenStoreOrRecover(path string, o StoreOptions) (*Store, *Recovery, error) {
	return openStoreOrRecover(path, o)
}

// Lanes returns the lanes in the order of StoreOptions.Lanes (index i is Lane(i) in Targets).
func (s *Store) Lanes() []*Queue { return s.lanes }

// Lane returns the lane named name and its index, or nil and -1.
func (s *Store) Lane(name string) (*Queue, int) {
	for i, q := range s.lanes {
		if q.name == name {
			return q, i
		}
	}
	return nil, -1
}

// Append stores msgs[i] in every lane of to[i], all in one commit (one fsync), all or nothing,
// and returns one seq per message, the same in each of its lanes. Each lane's MaxBytes and
// Overflow apply to what it takes, then the overall bound; with Reject in any of them the whole
// call fails with ErrFull and nothing is stored. A message or call that can never fit fails with
// ErrTooLarge, one the queue cannot store (or an empty or unknown target set) with ErrInvalid.
// ctx is handled as by Queue.Append.
func (s *Store) Append(ctx context.Context, msgs []Message, to []Targets) ([]uint64, error) {
	if len(msgs) != len(to) {
		return nil, fmt.Errorf("queue: Append: %d messages but %d target sets: %w", len(msgs), len(to), ErrInvalid)
	}
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
	need := make([]int64, len(s.lanes))
	var total int64
	for i, t := range to {
		if t == 0 || t>>uint(len(s.lanes)) != 0 {
			return nil, fmt.Errorf("queue: message %d of %d (topic %.64q): target lanes %#x are empty or unknown (%d lanes): %w",
				i+1, len(msgs), msgs[i].Topic, uint64(t), len(s.lanes), ErrInvalid)
		}
		n := int64(len(r.recs[i]))
		t.Each(func(l int) { need[l] += n; total += n })
	}
	for l, q := range s.lanes {
		if max := q.opts.MaxBytes; max > 0 && need[l] > max {
			return nil, fmt.Errorf("queue%s: %d bytes encoded for it, max_bytes is %d (send fewer at once): %w", q.laneLabel(), need[l], max, ErrTooLarge)
		}
	}
	if max := s.opts.MaxBytes; max > 0 && total > max {
		return nil, fmt.Errorf("queue: %d bytes encoded for all lanes, the overall max_bytes is %d (send fewer at once): %w", total, max, ErrTooLarge)
	}
	r.to = to
	if err := s.submitGroup(ctx, r); err != nil {
		return nil, err
	}
	return r.seqs, r.err
}

// submitGroup hands a Store.Append call to the committer and waits for its outcome, like submit.
func (c *core) submitGroup(ctx context.Context, r *request) error {
	return c.enqueue(ctx, &c.gmu, &c.gclosed, &c.groups, r)
}

// WaitAcked waits until seq has left every lane of to (see Queue.WaitAcked): nil when each acked
// it, else the first failure in lane order, naming the lane.
func (s *Store) WaitAcked(ctx context.Context, seq uint64, to Targets) error {
	var first error
	for l, q := range s.lanes {
		if !to.Has(l) {
			continue
		}
		if err := q.WaitAcked(ctx, seq); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return err
			}
			if first == nil {
				first = fmt.Errorf("lane %q: %w", q.name, err)
			}
		}
	}
	return first
}

// Stats is the sum of the lanes' Stats (Oldest: the oldest of them; Commits and Compactions: the
// file's).
func (s *Store) Stats() Stats {
	var t Stats
	for i, q := range s.lanes {
		st := q.Stats()
		if i == 0 {
			t = st
			continue
		}
		t.Depth += st.Depth
		t.Bytes += st.Bytes
		if !st.Oldest.IsZero() && (t.Oldest.IsZero() || st.Oldest.Before(t.Oldest)) {
			t.Oldest = st.Oldest
		}
		t.Dropped += st.Dropped
		t.Appended += st.Appended
		t.Acked += st.Acked
		t.Inflight += st.Inflight
		t.Corrupt += st.Corrupt
		t.Expired += st.Expired
		t.DeadLetters += st.DeadLetters
		t.DeadLetterBytes += st.DeadLetterBytes
		t.DeadLettered += st.DeadLettered
		t.DeadLettersDropped += st.DeadLettersDropped
	}
	return t
}

// Flush returns once everything handed to any lane before the call is committed.
func (s *Store) Flush(ctx context.Context) error { return s.lanes[0].Flush(ctx) }

// Close commits what the lanes were already given, wakes blocked callers with ErrClosed, stops the
// committer and closes the file.
func (s *Store) Close() error { return s.close() }

// Name is the lane's name (LaneOptions.Name); DefaultLane for a queue opened with Open.
func (q *Queue) Name() string { return q.name }

// laneLabel names the lane in errors when the file has several.
func (q *Queue) laneLabel() string {
	if len(q.lanes) == 1 {
		return ""
	}
	return " lane " + strconv.Quote(q.name)
}
