package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Overflow says what Append does when a commit would exceed Options.MaxBytes.
type Overflow int

const (
	// DropOldest deletes the oldest records, in the same transaction, until
	// the new ones fit. They are counted in Stats.Dropped.
	DropOldest Overflow = iota
	// Reject fails the Append with ErrFull and stores nothing of it.
	Reject
)

func (o Overflow) String() string {
	switch o {
	case DropOldest:
		return "drop-oldest"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// DefaultLockTimeout is how long Open waits for another process to release
// the file lock when Options.LockTimeout is zero.
const DefaultLockTimeout = 2 * time.Second

// FormatVersion is the on-disk format this build writes and reads.
const FormatVersion = 1

// Options configure Open.
type Options struct {
	MaxBytes int64 // bound on stored bytes (sum of encoded record sizes); 0 = unbounded
	Overflow Overflow
	Logger   *slog.Logger // nil = discard
	// LockTimeout bounds how long Open waits for the file lock held by
	// another process before failing with ErrLocked. 0 = DefaultLockTimeout.
	LockTimeout time.Duration
}

// Message is one queued message.
type Message struct {
	Seq     uint64 // assigned by Append (bbolt NextSequence), strictly increasing, never reused
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Created time.Time // set by Append when zero
	Expires time.Time // zero = never; the queue stores it, the consumer acts on it
}

// Stats is a cheap snapshot of the queue, served from memory.
type Stats struct {
	Depth    int       // records stored, including acked ones not yet removed (see Inflight)
	Bytes    int64     // sum of the encoded sizes of those records
	Oldest   time.Time // Created of the oldest stored record; zero if empty
	Dropped  uint64    // records deleted by DropOldest, ever (persisted in the file)
	Appended uint64    // messages stored since Open
	Acked    uint64    // acked records removed from the file since Open
	Inflight int       // acked records whose removal has not been committed yet
	Commits  uint64    // write transactions (fsyncs) since Open; Appended/Commits is the group-commit factor
	Corrupt  uint64    // undecodable records found by Next and discarded since Open
}

var (
	// ErrFull: the bound was reached with Overflow Reject, nothing was stored.
	ErrFull = errors.New("queue full")
	// ErrTooLarge: one message (or one Append call) is bigger than MaxBytes
	// and can never be stored. It wraps ErrFull.
	ErrTooLarge = fmt.Errorf("message larger than the queue's max_bytes: %w", ErrFull)
	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("queue closed")
	// ErrDropped: the message was deleted by DropOldest before it was acked.
	ErrDropped = errors.New("message dropped by queue overflow")
	// ErrLocked: another process holds the database file.
	ErrLocked = errors.New("queue database is locked by another process")
	// ErrUnsupportedFormat: the file was written by an unknown (newer) format.
	ErrUnsupportedFormat = errors.New("unsupported queue file format")
	// ErrCorrupt: a record or the file's metadata cannot be decoded.
	ErrCorrupt = errors.New("corrupt queue data")
	// ErrInvalid: Append was given a message the queue cannot store.
	ErrInvalid = errors.New("invalid message")
)

var (
	metaBucket = []byte("meta")
	dataBucket = []byte("messages")

	keyFormatVersion = []byte("format_version")
	keyDropped       = []byte("dropped")
)

// maxDropRanges bounds the memory of dropped seqs kept for late WaitAcked calls.
const maxDropRanges = 1024

// Queue is a durable FIFO. See the package documentation for the contract.
type Queue struct {
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger

	wake chan struct{} // capacity 1: work is pending for the committer
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
	finalErr  error // result of the committer's last commit; read after wg.Wait

	// commitMu is held by the committer from the start of a write transaction
	// until its result is published in memory, so that WaitAcked can look at
	// the file and the memory state as one.
	commitMu sync.Mutex

	// mu guards the fields below. It is never held while starting a bbolt
	// transaction (it may be taken briefly inside one), so it cannot take part
	// in a deadlock with bbolt's own locks.
	mu         sync.Mutex
	closed     bool
	pending    []*request      // Append/Flush calls not yet taken by the committer
	ackQueue   []uint64        // acked seqs not yet taken by the committer
	acked      map[uint64]bool // acked, not yet removed (value: discarded as corrupt)
	waiters    map[uint64][]chan error
	dropRanges []seqRange    // recently dropped seqs, ascending
	notify     chan struct{} // closed and replaced when records are appended
	depth      int
	bytes      int64
	oldestSeq  uint64 // first key in the file; 0 if empty
	oldest     time.Time
	lastSeq    uint64 // last assigned seq
	dropped    uint64
	appended   uint64
	ackedN     uint64
	commits    uint64
	corrupt    uint64

	testHookBeforeCommit func() // tests only; set before any Append
}

type seqRange struct{ lo, hi uint64 }

// Open opens (or creates, mode 0600) the queue file at path. The directory
// must exist. A file locked by another process fails with ErrLocked after
// opts.LockTimeout; a file of a newer format fails with ErrUnsupportedFormat.
func Open(path string, opts Options) (*Queue, error) {
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("queue: MaxBytes %d is negative (use 0 for unbounded)", opts.MaxBytes)
	}
	if opts.Overflow != DropOldest && opts.Overflow != Reject {
		return nil, fmt.Errorf("queue: unknown overflow mode %d (use DropOldest or Reject)", opts.Overflow)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("queue: directory %s of the queue file is not usable (create it first; it is the agent's state_dir): %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("queue: %s is not a directory, cannot hold the queue file", dir)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// Hash-map freelist: fast for a file that is appended at one end and
		// deleted at the other. The freelist is still synced (NoFreelistSync
		// false) so Open does not have to scan a large file on an SD card,
		// and NoSync stays false: every commit is fsync'd.
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("queue: %s: %w (waited %s; is another edge-agent running on this state_dir?)", path, ErrLocked, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	q := &Queue{
		db:      db,
		path:    path,
		opts:    opts,
		log:     log,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		acked:   make(map[uint64]bool),
		waiters: make(map[uint64][]chan error),
		notify:  make(chan struct{}),
	}
	if err := q.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	q.log.Debug("queue opened", "path", path, "depth", q.depth, "bytes", q.bytes,
		"last_seq", q.lastSeq, "dropped", q.dropped, "max_bytes", opts.MaxBytes, "overflow", opts.Overflow.String())
	q.wg.Add(1)
	go q.run()
	return q, nil
}

// load checks the format (creating the buckets in a new file) and rebuilds
// the in-memory counters by scanning the records.
func (q *Queue) load() error {
	create := false
	err := q.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			foreign := false
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				foreign = true
				return nil
			})
			if foreign {
				return fmt.Errorf("queue: %s is a bbolt file but not a queue file (no %q bucket); refusing to touch it", q.path, metaBucket)
			}
			create = true
			return nil
		}
		v := meta.Get(keyFormatVersion)
		if len(v) != 8 {
			return fmt.Errorf("queue: %s: %w: format_version is missing or malformed; the file was left untouched", q.path, ErrCorrupt)
		}
		if ver := binary.BigEndian.Uint64(v); ver != FormatVersion {
			return fmt.Errorf("queue: %s has on-disk format version %d, this build reads version %d; run a newer edge-agent (the file was left untouched): %w",
				q.path, ver, FormatVersion, ErrUnsupportedFormat)
		}
		if tx.Bucket(dataBucket) == nil {
			return fmt.Errorf("queue: %s: %w: bucket %q is missing; the file was left untouched", q.path, ErrCorrupt, dataBucket)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if create {
		err := q.db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucket(metaBucket)
			if err != nil {
				return err
			}
			if err := meta.Put(keyFormatVersion, be64(FormatVersion)); err != nil {
				return err
			}
			if err := meta.Put(keyDropped, be64(0)); err != nil {
				return err
			}
			_, err = tx.CreateBucket(dataBucket)
			return err
		})
		if err != nil {
			return fmt.Errorf("queue: initialise %s: %w", q.path, err)
		}
	}
	return q.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(metaBucket).Get(keyDropped); len(v) == 8 {
			q.dropped = binary.BigEndian.Uint64(v)
		}
		b := tx.Bucket(dataBucket)
		q.lastSeq = b.Sequence()
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if q.depth == 0 {
				q.oldestSeq = seqOf(k)
				q.oldest, _ = recordCreated(v)
			}
			q.depth++
			q.bytes += int64(len(v))
		}
		return nil
	})
}

// Stats returns counters from memory; it never touches the file.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := Stats{
		Depth:    q.depth,
		Bytes:    q.bytes,
		Dropped:  q.dropped,
		Appended: q.appended,
		Acked:    q.ackedN,
		Inflight: len(q.acked),
		Commits:  q.commits,
		Corrupt:  q.corrupt,
	}
	if q.depth > 0 {
		s.Oldest = q.oldest
	}
	return s
}

// Close commits what Append and Ack were already given, wakes blocked
// callers with ErrClosed, stops the committer and closes the file. Calling it
// again returns the first call's result.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.done)
		q.wg.Wait()

		q.mu.Lock()
		for seq, ws := range q.waiters {
			for _, w := range ws {
				w <- ErrClosed
			}
			delete(q.waiters, seq)
		}
		q.mu.Unlock()

		err := q.finalErr
		if cerr := q.db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("queue: close %s: %w", q.path, cerr))
		}
		q.closeErr = err
	})
	return q.closeErr
}

func be64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func seqOf(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// signal wakes the committer without blocking.
func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
