package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LaneOptions are one lane's own bounds: a lane is the queue of one broker inside a Store.
type LaneOptions struct {
	Name           string // unique; the name a lane is found by in the file
	MaxBytes       int64  // this lane's bound (Options.MaxBytes of a one-lane queue); 0 = unbounded
	Overflow       Overflow
	MaxAge         time.Duration
	MaxDeadLetters int
}

// StoreOptions configure OpenStore. Options.MaxBytes and Options.Overflow bound all lanes
// together (0 = no overall bound); its MaxAge and MaxDeadLetters are ignored (they are per lane).
type StoreOptions struct {
	Options
	Lanes []LaneOptions
}

// Store is one queue file holding one lane per broker. Every lane is a *Queue of its own (order,
// bounds, expiry, dead letters); Append stores a message in several lanes in one commit.
type Store struct {
	lanes []*Queue
}

// OpenStore opens (or creates) the queue file at path with the lanes of o.
//
// TEMPORARY (issue 11 in progress): one lane only, over Open.
func OpenStore(path string, o StoreOptions) (*Store, error) {
	if len(o.Lanes) != 1 {
		return nil, errors.New("queue: OpenStore: several lanes are not implemented yet")
	}
	opts := laneQueueOptions(o)
	q, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	q.name = o.Lanes[0].Name
	return &Store{lanes: []*Queue{q}}, nil
}

// OpenStoreOrRecover is OpenStore with OpenOrRecover's recovery of a damaged file.
func OpenStoreOrRecover(path string, o StoreOptions) (*Store, *Recovery, error) {
	if len(o.Lanes) != 1 {
		return nil, nil, errors.New("queue: OpenStore: several lanes are not implemented yet")
	}
	q, rec, err := OpenOrRecover(path, laneQueueOptions(o))
	if err != nil {
		return nil, rec, err
	}
	q.name = o.Lanes[0].Name
	return &Store{lanes: []*Queue{q}}, rec, nil
}

func laneQueueOptions(o StoreOptions) Options {
	opts := o.Options
	l := o.Lanes[0]
	opts.MaxBytes, opts.Overflow, opts.MaxAge, opts.MaxDeadLetters = l.MaxBytes, l.Overflow, l.MaxAge, l.MaxDeadLetters
	return opts
}

// Lanes returns the lanes in the order of StoreOptions.Lanes (index i is Lane(i) in Targets).
func (s *Store) Lanes() []*Queue { return s.lanes }

// Append stores msgs[i] in every lane of to[i], all in one commit (one fsync), all or nothing,
// and returns one seq per message, the same in each of its lanes.
func (s *Store) Append(ctx context.Context, msgs []Message, to []Targets) ([]uint64, error) {
	if len(msgs) != len(to) {
		return nil, fmt.Errorf("queue: Append: %d messages but %d target sets", len(msgs), len(to))
	}
	return s.lanes[0].Append(ctx, msgs...)
}

// WaitAcked waits until seq has left every lane of to (see Queue.WaitAcked): nil when each acked
// it, else the first lane's failure, naming the lane.
func (s *Store) WaitAcked(ctx context.Context, seq uint64, to Targets) error {
	return s.lanes[0].WaitAcked(ctx, seq)
}

// Close closes the file; every lane is closed with it.
func (s *Store) Close() error { return s.lanes[0].Close() }

// Name is the lane's name (LaneOptions.Name); "default" for a queue opened with Open.
func (q *Queue) Name() string { return q.name }
