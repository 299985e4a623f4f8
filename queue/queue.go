package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
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

// FormatVersion is the on-disk format this build writes; it reads it and
// format 1, which it upgrades in place on Open (see core.go: format 2 adds
// lanes). The dead-letter bucket and the expiry counters were added to format
// 1 without a version change. A build that knows only format 1 refuses a
// format 2 file, untouched.
const FormatVersion = 2

// DefaultMaxDeadLetters bounds the dead-letter store when
// Options.MaxDeadLetters is zero.
const DefaultMaxDeadLetters = 10000

// Options configure Open.
type Options struct {
	MaxBytes int64 // bound on stored bytes (sum of encoded record sizes); 0 = unbounded
	Overflow Overflow
	Logger   *slog.Logger // nil = discard
	// LockTimeout bounds how long Open waits for the file lock held by
	// another process before failing with ErrLocked. 0 = DefaultLockTimeout.
	LockTimeout time.Duration
	// MaxAge expires a record once Created+MaxAge has passed (see Next).
	// 0 = records never expire by age (Message.Expires still applies).
	MaxAge time.Duration
	// MaxDeadLetters bounds the dead-letter store (records, not bytes); the
	// dead letters with the lowest seqs are evicted first and counted in
	// Stats.DeadLettersDropped. 0 = DefaultMaxDeadLetters.
	MaxDeadLetters int
	// RemovalDelay is how long an acknowledged (or dead-lettered, expired,
	// discarded) record may wait in memory for a commit that happens anyway
	// (the next Append's) before the committer commits it on its own. A
	// crash loses the removals of at most this long (and of at most
	// MaxPendingRemovals records): those messages are sent again after the
	// restart. 0 = DefaultRemovalDelay; negative = commit every removal at
	// once (one fsync per ack burst, the behaviour before RemovalDelay).
	RemovalDelay time.Duration
	// MaxPendingRemovals commits the pending removals at once when this many
	// are waiting. 0 = DefaultMaxPendingRemovals.
	MaxPendingRemovals int
	// CompactMinSize: a file using at least this much disk (st_blocks; the
	// file is sparse, its apparent size is larger) is compacted
	// — rewritten into a fresh file that replaces it — once the records and
	// dead letters it holds are at most 1/16 of its size (see compact.go).
	// 0 = DefaultCompactMinSize; negative = never compact.
	CompactMinSize int64
}

// DefaultRemovalDelay is Options.RemovalDelay when it is zero.
const DefaultRemovalDelay = 2 * time.Second

// DefaultMaxPendingRemovals is Options.MaxPendingRemovals when it is zero.
const DefaultMaxPendingRemovals = 4096

// Message is one queued message.
type Message struct {
	Seq     uint64 // assigned by Append (bbolt NextSequence), strictly increasing, never reused
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Created time.Time // set by Append when zero
	Expires time.Time // zero = never; once passed, Next removes the record instead of returning it
}

// Stats is a cheap snapshot of the queue, served from memory.
type Stats struct {
	Depth    int       // records stored, including removed ones whose removal is not committed yet (see Inflight)
	Bytes    int64     // sum of the encoded sizes of those records
	Oldest   time.Time // Created of the oldest stored record; zero if empty
	Dropped  uint64    // records deleted by DropOldest, ever (persisted in the file)
	Appended uint64    // messages stored since Open
	Acked    uint64    // acked records removed from the file since Open
	Inflight int       // records acked, dead-lettered, expired or discarded whose removal has not been committed yet
	Commits  uint64    // write transactions (fsyncs) since Open; Appended/Commits is the group-commit factor
	Corrupt  uint64    // undecodable records found by Next and discarded since Open
	Expired  uint64    // records removed because Expires or Created+MaxAge passed, ever (persisted)

	DeadLetters        int    // records in the dead-letter store (not part of Depth, Bytes or MaxBytes)
	DeadLetterBytes    int64  // encoded size of those dead-letter records
	DeadLettered       uint64 // records moved to the dead-letter store, ever (persisted)
	DeadLettersDropped uint64 // dead letters evicted by MaxDeadLetters, ever (persisted)

	Compactions uint64 // times the file was rewritten into a smaller one since Open
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
	// ErrDeadLettered: the message was moved to the dead-letter store
	// (WaitAcked); the error text carries the reason given to DeadLetter.
	ErrDeadLettered = errors.New("message moved to the dead-letter store")
	// ErrExpired: the message expired (Message.Expires or Options.MaxAge)
	// before it was delivered and was removed.
	ErrExpired = errors.New("message expired before delivery")
	// ErrNotDeadLettered: Requeue was given a seq that is not in the
	// dead-letter store.
	ErrNotDeadLettered = errors.New("not in the dead-letter store")
	// ErrDiskFull: a commit failed because the file system is full. Errors
	// wrapping it also wrap the system's error (errors.Is(err,
	// syscall.ENOSPC) holds). Nothing of the commit was stored and the queue
	// stays usable: the next commit succeeds once there is room.
	ErrDiskFull = errors.New("disk full")
)

var (
	metaBucket = []byte("meta")
	dataBucket = []byte("messages")
	deadBucket = []byte("deadletter")

	keyFormatVersion = []byte("format_version")
	keyDropped       = []byte("dropped")
	keyExpired       = []byte("expired")
	keyDeadLettered  = []byte("dead_lettered")
	keyDeadDropped   = []byte("dead_letters_dropped")
)

// maxDropRanges bounds the memory of dropped seqs kept for late WaitAcked calls.
const maxDropRanges = 1024

// Queue is a durable FIFO. See the package documentation for the contract.
type Queue struct {
	*core          // the file, the committer: shared by the lanes of one file
	name  string   // the lane's name (LaneOptions.Name); DefaultLane for Open
	idx   int      // its index in the store: Lane(idx) in Targets
	keys  laneKeys // its buckets and counters in the file
	opts  Options  // its options: the store's, with the lane's bounds
	log   *slog.Logger

	// mu guards the fields below. It is never held while starting a bbolt
	// transaction (it may be taken briefly inside one), so it cannot take part
	// in a deadlock with bbolt's own locks.
	mu        sync.Mutex
	closed    bool
	pending   []*request         // Append/Flush/Requeue/DeleteDeadLetters calls not yet taken by the committer
	rmQueue   []uint64           // seqs in removing not yet taken by the committer
	removing  map[uint64]removal // acked, dead-lettered, expired or corrupt; not yet removed from the file
	waiters   map[uint64][]chan error
	dropSet   seqSet        // recently dropped (or discarded as corrupt) seqs
	expSet    seqSet        // recently expired seqs
	notify    chan struct{} // closed and replaced when records are appended
	fileState               // the file as of the last commit
	readSeq   uint64        // highest seq Next has returned (may run ahead of lastSeq until the commit is applied)
	skipTo    uint64        // read.go: every seq <= skipTo is removed or being removed (Next seeks past it)
	appended  uint64        // since Open, like the counters below
	ackedN    uint64
	corrupt   uint64
}

// fileState is what the queue file holds as of a commit. The committer works
// on a copy inside its transaction (commitResult) and apply makes it current;
// load builds it from the file at Open; Stats reports it.
type fileState struct {
	depth        int       // records in the data bucket
	bytes        int64     // their encoded sizes
	oldestSeq    uint64    // first key in the file; 0 if empty
	oldest       time.Time // Created of that record
	lastSeq      uint64    // last assigned seq
	deadN        int       // records in the dead-letter bucket
	deadB        int64     // their encoded sizes
	dropped      uint64    // persisted counters (meta bucket), ever
	expired      uint64
	deadLettered uint64
	deadDropped  uint64
}

// Open opens (or creates, mode 0600) the queue file at path. The directory
// must exist. A file locked by another process fails with ErrLocked after
// opts.LockTimeout; a file of a newer format fails with ErrUnsupportedFormat;
// a damaged file fails with an error wrapping ErrCorrupt and is left
// untouched (OpenOrRecover moves it aside instead).
func Open(path string, opts Options) (*Queue, error) {
	return open(path, opts, false)
}

// open is Open; deep adds OpenOrRecover's checks (bbolt's consistency check
// and a decode of every record).
func open(path string, opts Options, deep bool) (*Queue, error) {
	s, err := openStore(path, singleLane(opts), deep)
	if err != nil {
		return nil, err
	}
	return s.lanes[0], nil
}

// singleLane is the StoreOptions of a queue opened with Open: one lane, DefaultLane, with the
// bounds of opts and no overall bound beyond it.
func singleLane(opts Options) StoreOptions {
	l := LaneOptions{Name: DefaultLane, MaxBytes: opts.MaxBytes, Overflow: opts.Overflow, MaxAge: opts.MaxAge, MaxDeadLetters: opts.MaxDeadLetters}
	opts.MaxBytes, opts.Overflow = 0, DropOldest
	return StoreOptions{Options: opts, Lanes: []LaneOptions{l}}
}

// headCacheBytes is what Open drops from the page cache at the head of an existing file: bbolt's first
// four pages, for page sizes up to 16 KiB (the file's own page size is known only once it is open).
const headCacheBytes = 4 * 16 << 10

// initialMmapSize is bbolt's first mapping of the queue file: 256 MiB of address space on 64-bit
// systems, 64 MiB on 32-bit ones (a Pi's 3 GiB user address space also holds the Go heap). Files past
// it are remapped as they grow, each step doubling, as bbolt does by default.
const initialMmapSize = 64<<20 + (strconv.IntSize/64)*(192<<20)

// count rebuilds the in-memory counters from the meta bucket and the records;
// with deep it also counts the records that cannot be decoded (bad).
func (q *Queue) count(deep bool) (bad int, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		q.dropped = metaCounter(meta, q.keys.dropped)
		q.expired = metaCounter(meta, q.keys.expired)
		q.deadLettered = metaCounter(meta, q.keys.deadLettered)
		q.deadDropped = metaCounter(meta, q.keys.deadDrp)
		b := tx.Bucket(q.keys.data)
		q.lastSeq = meta.Sequence()
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if q.depth == 0 {
				q.oldestSeq = seqOf(k)
				q.oldest, _ = recordCreated(v)
			}
			q.depth++
			q.bytes += int64(len(v))
			if deep && (len(k) != 8 || checkRecord(v) != nil) {
				bad++
			}
		}
		dc := tx.Bucket(q.keys.dead).Cursor()
		for k, v := dc.First(); k != nil; k, v = dc.Next() {
			q.deadN++
			q.deadB += int64(len(v))
		}
		return nil
	})
	return bad, err
}

// trimDeadLettersAtOpen drops the oldest dead letters down to
// MaxDeadLetters, before the committer starts.
func (q *Queue) trimDeadLettersAtOpen() error {
	err := q.db.Update(func(tx *bolt.Tx) error {
		w := &writer{q: q, tx: tx, meta: tx.Bucket(metaBucket), dead: tx.Bucket(q.keys.dead),
			res: &commitResult{fileState: q.fileState}}
		if err := w.trimDeadLetters(); err != nil {
			return err
		}
		q.fileState = w.res.fileState
		return w.meta.Put(q.keys.deadDrp, be64(q.deadDropped))
	})
	if err != nil {
		return fmt.Errorf("queue: trim the dead-letter store of %s to %d records: %w", q.path, q.opts.MaxDeadLetters, err)
	}
	return nil
}

// boltOpen is bolt.Open (mode 0600) under guard. If bbolt panics or faults
// while opening a damaged file, the file it opened is unlocked and closed
// (bolt.Open cannot do it then), so that the file can be opened again, by
// OpenOrRecover's salvage in particular. A mapping bbolt made before the
// panic cannot be undone: it stays until the process exits (address space
// only, the size of the damaged file, once per damaged open).
func boltOpen(path string, o *bolt.Options) (*bolt.DB, error) {
	var f *os.File
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, perm)
		return f, err
	}
	var db *bolt.DB
	err := guard("open", func() error {
		var err error
		db, err = bolt.Open(path, 0o600, o)
		return err
	})
	if db == nil && f != nil {
		// Already closed when bolt.Open returned an error itself; then both
		// calls are harmless no-ops.
		unlockFile(f)
		_ = f.Close()
	}
	return db, err
}

// guard runs fn, turning a panic (bbolt panics on some damaged pages) and a
// memory fault on the mapped file (a truncated file) into an error wrapping
// ErrCorrupt. It covers only the calling goroutine.
func guard(what string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: bbolt panicked during %s: %v", ErrCorrupt, what, p)
		}
	}()
	return fn()
}

// isBoltCorruption tells damaged-file errors of bolt.Open from
// environmental ones (permissions, lock, I/O on the directory).
func isBoltCorruption(err error) bool {
	switch {
	case errors.Is(err, ErrCorrupt),
		errors.Is(err, berrors.ErrInvalid),
		errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch),
		errors.Is(err, berrors.ErrInvalidMapping):
		return true
	}
	return strings.Contains(err.Error(), "file size too small")
}

func metaCounter(meta *bolt.Bucket, key []byte) uint64 {
	if v := meta.Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
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
		Inflight: len(q.removing),
		Commits:  q.commits.Load(),
		Corrupt:  q.corrupt,
		Expired:  q.expired,

		DeadLetters:        q.deadN,
		DeadLetterBytes:    q.deadB,
		DeadLettered:       q.deadLettered,
		DeadLettersDropped: q.deadDropped,
		Compactions:        q.compactions.Load(),
	}
	if q.depth > 0 {
		s.Oldest = q.oldest
	}
	return s
}

// Close commits what Append and Ack were already given, wakes blocked
// callers with ErrClosed, stops the committer and closes the file. Calling it
// again returns the first call's result. On a lane of a Store it closes the
// Store (every lane).
func (q *Queue) Close() error { return q.core.close() }

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
