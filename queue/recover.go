package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file is start-up recovery from a damaged queue file.

// Recovery says that OpenOrRecover found the queue file damaged, moved it
// aside, started a fresh queue and salvaged what it could read into it.
type Recovery struct {
	MovedTo string    // the damaged file's new path: <path>.corrupt-<UTC time>
	Reason  string    // what was wrong with it
	At      time.Time // when it was moved

	// Salvaged is the number of messages read from the damaged file and
	// appended to the fresh queue (new seqs, original order). With
	// DropOldest the MaxBytes bound applies to them as to any Append (the
	// oldest may be dropped, Stats.Dropped).
	Salvaged int
	// SalvagedDeadLetters is the number of dead letters put back in the
	// dead-letter store (new seqs, original order; MaxDeadLetters applies).
	SalvagedDeadLetters int
	// NotSalvaged counts records that were read from the damaged file but
	// not kept: undecodable, larger than MaxBytes, or no room left with
	// Overflow Reject. Records in unreadable pages are not counted (their
	// number is unknown); SalvageError names them.
	NotSalvaged int
	// SalvageError says why the salvage stopped early or which unreadable
	// parts it skipped (bbolt cannot open the file, a panic or memory fault
	// in a damaged page, the time budget, an error of the fresh queue).
	// Empty when every readable page was read.
	SalvageError string
}

// OpenOrRecover is Open with recovery from a damaged file. It runs deeper
// checks than Open: bbolt's consistency check over every page (tx.Check) and
// a decode of every record, so its cost grows with the file: it reads the
// whole file once (see the package documentation for figures).
//
// If the file is damaged — bbolt refuses it (invalid database, checksum,
// version mismatch, a file too short), bbolt panics or faults while opening
// or scanning it (recovered), the consistency check fails, the queue's meta
// bucket or format version is missing while its records are there, or more
// than half of the records (at least two) cannot be decoded — the file is
// renamed to <path>.corrupt-<UTC time like 20261127T001500Z> (the directory
// is fsync'd), an empty queue is opened in its place and the returned
// Recovery says where the file went and why (it is nil when the file was
// fine). The renamed file is kept as it was, for inspection.
//
// Salvage: after the move, OpenOrRecover opens the renamed file with bbolt
// read-only (never modifying it), walks the queue's records in seq order and
// appends every one that decodes to the fresh queue, in the original order,
// with new seqs (Topic, Payload, QoS, Retain, Created and Expires are kept);
// then it does the same for the dead letters, which go back into the
// dead-letter store with new seqs. It reads and appends in batches (at most
// 500 records or about 4 MiB at a time), so its memory does not grow with
// the file, and it stops after a time budget (3 minutes). A panic or memory
// fault of bbolt in a damaged page is recovered (on the calling goroutine):
// the salvage keeps what it read, looks for the next readable key beyond the
// damaged part (a bounded search by seq) and goes on from there, or stops.
// With Overflow Reject it stops appending when the queue is full and counts
// the rest in Recovery.NotSalvaged; with DropOldest the bound applies as for
// any Append. Delivery stays at least once: the damaged file may hold
// records that were acked (or dead-lettered) but whose removal was not
// committed yet, and those are salvaged and sent again. Recovery says how
// many messages were salvaged and, in SalvageError, why the salvage was
// incomplete.
//
// A single undecodable record is not damage of the file: Next discards it
// (Stats.Corrupt). A locked file (ErrLocked), a file of a newer format
// (ErrUnsupportedFormat), a bbolt file of another program, bad options and
// errors of the directory or permissions are returned as errors, and the
// file is never moved for them.
//
// If the fresh queue cannot be opened after the move, the error is returned
// together with the Recovery.
func OpenOrRecover(path string, opts Options) (*Queue, *Recovery, error) {
	st, rec, err := openStoreOrRecover(path, singleLane(opts))
	if st == nil {
		return nil, rec, err
	}
	return st.lanes[0], rec, err
}

// openStoreOrRecover is OpenOrRecover for the lanes of so (OpenStoreOrRecover).
func openStoreOrRecover(path string, so StoreOptions) (*Store, *Recovery, error) {
	opts := so.Options
	st, err := openStore(path, so, true)
	if err == nil {
		return st, nil, nil
	}
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrLocked) || errors.Is(err, ErrUnsupportedFormat) {
		return nil, nil, err
	}
	log := opts.Logger
	now := time.Now().UTC()
	moved, merr := moveAside(path, now)
	if merr != nil {
		return nil, nil, fmt.Errorf("queue: %s is damaged and could not be moved aside (move or delete it by hand to start an empty queue): %w (damage: %w)", path, merr, err)
	}
	rec := &Recovery{MovedTo: moved, Reason: err.Error(), At: now}
	if log != nil {
		log.Error("queue: damaged queue file moved aside, starting a fresh queue and salvaging the messages that can still be read",
			"path", path, "moved_to", moved, "reason", rec.Reason)
	}
	st, err = openStore(path, so, false)
	if err != nil {
		return nil, rec, fmt.Errorf("queue: open a fresh queue after moving the damaged file to %s: %w", moved, err)
	}
	start := time.Now()
	st.salvage(moved, rec)
	st.log.Warn("queue: salvage from the damaged file done", "moved_to", moved, "salvaged", rec.Salvaged,
		"salvaged_dead_letters", rec.SalvagedDeadLetters, "not_salvaged", rec.NotSalvaged,
		"salvage_error", rec.SalvageError, "took", time.Since(start).Round(time.Millisecond))
	return st, rec, nil
}

// moveAside renames path to <path>.corrupt-<time> (with -2, -3, … if that
// exists) and fsyncs the directory so the rename survives a crash.
func moveAside(path string, now time.Time) (string, error) {
	base := path + ".corrupt-" + now.Format("20060102T150405Z")
	dst := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		} else if err != nil {
			return "", err
		}
		if i > 100 {
			return "", fmt.Errorf("too many files named %s-N", base)
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, dst); err != nil {
		return "", err
	}
	return dst, syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Salvage bounds.
const (
	salvageBatchMsgs  = 500     // records per read batch and per Append
	salvageBatchBytes = 4 << 20 // encoded bytes per read batch (one record may exceed it)
	salvageMaxSkips   = 16      // damaged regions skipped before giving up
	salvageMaxErrors  = 4       // problems named in SalvageError
)

// salvageBudget bounds the time of a salvage (a variable for tests).
var salvageBudget = 3 * time.Minute

// salvager reads a damaged queue file with bbolt read-only.
type salvager struct {
	db       *bolt.DB
	deadline time.Time
	problems []string
	nprob    int
}

func (s *salvager) problem(format string, args ...any) {
	s.nprob++
	if len(s.problems) < salvageMaxErrors {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

func (s *salvager) err() string {
	msg := strings.Join(s.problems, "; ")
	if more := s.nprob - len(s.problems); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return msg
}

// salvage copies what can be read from the damaged file src into q (see
// OpenOrRecover) and records the outcome in rec. It runs before q is handed
// to anyone, on the calling goroutine.
func (c *core) salvage(src string, rec *Recovery) {
	s := &salvager{deadline: time.Now().Add(salvageBudget)}
	defer func() { rec.SalvageError = s.err() }()
	var err error
	s.db, err = boltOpen(src, &bolt.Options{ReadOnly: true, Timeout: c.opts.LockTimeout})
	if err != nil {
		s.problem("nothing salvaged: bbolt cannot open the damaged file read-only: %v", err)
		return
	}
	defer func() { _ = guard("the salvage close", s.db.Close) }()
	ctx, cancel := context.WithDeadline(context.Background(), s.deadline)
	defer cancel()

	// Each lane gets the records of the damaged file's lane of the same name; without a readable
	// registry (format 1, or damaged) the lane a format 1 file is kept for gets lane 1's.
	var reg map[string]uint64
	_ = guard("the salvage's lane registry", func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(lanesBucket)
			if b == nil {
				return nil
			}
			reg = make(map[string]uint64)
			return b.ForEach(func(k, v []byte) error {
				if len(v) == 8 {
					reg[string(k)] = binary.BigEndian.Uint64(v)
				}
				return nil
			})
		})
	})
	legacy := c.legacyLane()
	for _, q := range c.lanes {
		switch id, ok := reg[q.name]; {
		case ok && id > 0:
			q.salvageLane(ctx, s, keysFor(id), rec)
		case reg == nil && q == legacy:
			q.salvageLane(ctx, s, keysFor(1), rec)
		}
	}
}

// salvageLane copies the records and dead letters of the damaged file's buckets k into q.
func (q *Queue) salvageLane(ctx context.Context, s *salvager, k laneKeys, rec *Recovery) {

	full := false // Reject and the queue is full: count, do not append
	s.walk(k.data, "messages", checkRecord, func(recs [][]byte, bad int) error {
		rec.NotSalvaged += bad
		msgs := make([]Message, 0, len(recs))
		for _, v := range recs {
			m, err := parseRecord(v)
			if err != nil || validate(&m) != nil ||
				(q.opts.MaxBytes > 0 && int64(encodedLen(&m)) > q.opts.MaxBytes) {
				rec.NotSalvaged++
				continue
			}
			msgs = append(msgs, m)
		}
		if full {
			rec.NotSalvaged += len(msgs)
			return nil
		}
		n, lost, err := q.salvageAppend(ctx, msgs)
		rec.Salvaged += n
		rec.NotSalvaged += lost
		if lost > 0 {
			full = true
			s.problem("the queue is full (max_bytes %d, overflow reject): the rest of the messages were not kept", q.opts.MaxBytes)
		}
		return err
	})
	s.walk(k.dead, "dead letters", func(v []byte) error {
		_, err := decodeDeadLetter(v)
		return err
	}, func(recs [][]byte, bad int) error {
		rec.NotSalvaged += bad
		if len(recs) == 0 {
			return nil
		}
		r := &request{kind: reqPutDead, recs: recs, done: make(chan struct{})}
		if err := q.submit(ctx, r); err != nil {
			return err
		}
		if r.err != nil {
			return r.err
		}
		rec.SalvagedDeadLetters += len(r.seqs)
		return nil
	})
}

// salvageAppend appends msgs in order, in calls of encoded size at most
// MaxBytes. With Reject it appends as many as fit and returns the number
// that did not (lost > 0 means the queue is full).
func (q *Queue) salvageAppend(ctx context.Context, msgs []Message) (stored, lost int, err error) {
	for len(msgs) > 0 {
		n, size := 0, int64(0)
		for n < len(msgs) {
			l := int64(encodedLen(&msgs[n]))
			if n > 0 && q.opts.MaxBytes > 0 && size+l > q.opts.MaxBytes {
				break
			}
			size += l
			n++
		}
		_, err := q.Append(ctx, msgs[:n]...)
		switch {
		case err == nil:
			stored += n
			msgs = msgs[n:]
		case errors.Is(err, ErrFull) && n > 1:
			// Reject: store the first half if it fits, then the rest.
			s, l, err := q.salvageAppend(ctx, msgs[:n/2])
			stored += s
			if err != nil || l > 0 {
				return stored, l + len(msgs) - n/2, err
			}
			msgs = msgs[n/2:]
		case errors.Is(err, ErrFull):
			return stored, len(msgs), nil
		default:
			return stored, 0, err
		}
	}
	return stored, 0, nil
}

// walk reads the bucket name in seq order and hands the records to put in
// batches, with the number of records check refused since the previous
// batch. Unreadable regions are skipped when a readable key after them can
// be found; put's error, the time budget or too many damaged regions stop it.
func (s *salvager) walk(name []byte, what string, check func([]byte) error, put func(recs [][]byte, bad int) error) {
	from := uint64(0) // 0: from the first key
	for skips := 0; ; {
		if time.Now().After(s.deadline) {
			s.problem("%s: stopped at seq %d: the salvage took longer than its budget of %s", what, from, salvageBudget)
			return
		}
		recs, bad, next, end, err := s.readBatch(name, from, check)
		if len(recs) > 0 || bad > 0 {
			if perr := put(recs, bad); perr != nil {
				s.problem("%s: stopped at seq %d: storing in the fresh queue failed: %v", what, next, perr)
				return
			}
		}
		if err == nil {
			if end {
				return
			}
			from = next
			continue
		}
		if skips++; skips > salvageMaxSkips {
			s.problem("%s: stopped at seq %d after %d damaged regions: %v", what, next, salvageMaxSkips, err)
			return
		}
		resume, ok := s.skip(name, next)
		if !ok {
			s.problem("%s: stopped at seq %d, nothing readable after it: %v", what, next, err)
			return
		}
		s.problem("%s: skipped unreadable records with seqs %d to %d: %v", what, next, resume-1, err)
		from = resume
	}
}

// readBatch reads up to one batch of records with seq >= from (from 0: from
// the first). check tells a good record (copied) from a bad one; bad
// counts those refused. next is the seq to go on from; end says the bucket
// was read to its end. A panic or fault (a damaged page) or keys out of
// order end the batch with err; what was read before is returned.
func (s *salvager) readBatch(name []byte, from uint64, check func([]byte) error) (recs [][]byte, bad int, next uint64, end bool, err error) {
	next = from
	err = guard("the salvage walk", func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				end = true
				return nil
			}
			c := b.Cursor()
			k, v := c.First()
			if from > 0 {
				k, v = c.Seek(be64(from))
			}
			size := 0
			for ; k != nil; k, v = c.Next() {
				if len(k) != 8 || seqOf(k) < next {
					return fmt.Errorf("%w: key %x out of order after seq %d", ErrCorrupt, k, next)
				}
				seq := seqOf(k)
				if seq == math.MaxUint64 {
					end = true
				}
				next = seq + 1
				if check(v) != nil {
					bad++
				} else {
					recs = append(recs, append([]byte(nil), v...))
					size += len(v)
				}
				if end {
					return nil
				}
				if len(recs) >= salvageBatchMsgs || size >= salvageBatchBytes {
					return nil
				}
			}
			end = true
			return nil
		})
	})
	return recs, bad, next, end, err
}

// skip finds the smallest seq > from at which a Seek succeeds (reaches a
// readable page), searching exponentially then by bisection. Seek(k) fails
// for every k routed into the damaged page and succeeds from the first key
// of the next readable page, so this finds where the readable records go on
// (when several damaged regions are close it may skip more than one).
func (s *salvager) skip(name []byte, from uint64) (uint64, bool) {
	lo := from // failing (assumed)
	var hi uint64
	var endAtHi bool
	for step := uint64(1); ; step *= 2 {
		if time.Now().After(s.deadline) {
			return 0, false
		}
		hi = from + step
		if hi < from || step == 0 {
			hi = math.MaxUint64
		}
		ok, end := s.probe(name, hi)
		if ok {
			endAtHi = end
			break
		}
		if hi == math.MaxUint64 {
			return 0, false
		}
		lo = hi
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if ok, end := s.probe(name, mid); ok {
			hi, endAtHi = mid, end
		} else {
			lo = mid
		}
	}
	if endAtHi {
		return 0, false // readable, but nothing after the damage
	}
	return hi, true
}

// probe reports whether Seek(seq) reaches a readable key >= seq (ok) or the
// end of the bucket (ok and end).
func (s *salvager) probe(name []byte, seq uint64) (ok, end bool) {
	err := guard("a salvage probe", func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				end = true
				return nil
			}
			k, _ := b.Cursor().Seek(be64(seq))
			switch {
			case k == nil:
				end = true
			case len(k) != 8 || seqOf(k) < seq:
				return ErrCorrupt
			}
			return nil
		})
	})
	return err == nil, end
}
