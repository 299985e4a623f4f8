package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

// FormatVersion is the on-disk format this build writes and reads. The
// dead-letter bucket and the expiry counters were added without a version
// change: older builds ignore them, so a downgrade keeps the queue.
const FormatVersion = 1

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
	name string // the lane's name (Store); "default" for Open
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
	// until its result is applied in memory, so that WaitAcked can look at
	// the file and the memory state as one.
	commitMu sync.Mutex

	// dbMu guards the db field, which compaction (run by the committer,
	// holding commitMu) replaces: readers take it shared through view.
	dbMu sync.RWMutex

	// mu guards the fields below. It is never held while starting a bbolt
	// transaction (it may be taken briefly inside one), so it cannot take part
	// in a deadlock with bbolt's own locks.
	mu          sync.Mutex
	closed      bool
	pending     []*request         // Append/Flush/Requeue/DeleteDeadLetters calls not yet taken by the committer
	rmQueue     []uint64           // seqs in removing not yet taken by the committer
	removing    map[uint64]removal // acked, dead-lettered, expired or corrupt; not yet removed from the file
	waiters     map[uint64][]chan error
	dropSet     seqSet        // recently dropped (or discarded as corrupt) seqs
	expSet      seqSet        // recently expired seqs
	notify      chan struct{} // closed and replaced when records are appended
	fileState                 // the file as of the last commit
	readSeq     uint64        // highest seq Next has returned (may run ahead of lastSeq until the commit is applied)
	skipTo      uint64        // read.go: every seq <= skipTo is removed or being removed (Next seeks past it)
	appended    uint64        // since Open, like the counters below
	ackedN      uint64
	commits     uint64
	corrupt     uint64
	compactions uint64
	// compactRetryAt: no compaction is tried before commits reaches it (after a failure).
	compactRetryAt uint64

	testHookBeforeCommit func()       // tests only; set before any Append
	testHookWrite        func() error // tests only; fails the write transaction when it returns an error
	testCompactAlways    bool         // tests only (set before any Append): compact after every commit
	testHookCompact      func(step string)
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
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("queue: MaxBytes %d is negative (use 0 for unbounded)", opts.MaxBytes)
	}
	if opts.Overflow != DropOldest && opts.Overflow != Reject {
		return nil, fmt.Errorf("queue: unknown overflow mode %d (use DropOldest or Reject)", opts.Overflow)
	}
	if opts.MaxAge < 0 {
		return nil, fmt.Errorf("queue: MaxAge %s is negative (use 0 for no age limit)", opts.MaxAge)
	}
	if opts.MaxDeadLetters < 0 {
		return nil, fmt.Errorf("queue: MaxDeadLetters %d is negative (use 0 for the default %d)", opts.MaxDeadLetters, DefaultMaxDeadLetters)
	}
	if opts.MaxDeadLetters == 0 {
		opts.MaxDeadLetters = DefaultMaxDeadLetters
	}
	if opts.MaxPendingRemovals < 0 {
		return nil, fmt.Errorf("queue: MaxPendingRemovals %d is negative (use 0 for the default %d)", opts.MaxPendingRemovals, DefaultMaxPendingRemovals)
	}
	if opts.MaxPendingRemovals == 0 {
		opts.MaxPendingRemovals = DefaultMaxPendingRemovals
	}
	if opts.CompactMinSize == 0 {
		opts.CompactMinSize = DefaultCompactMinSize
	}
	if opts.RemovalDelay == 0 {
		opts.RemovalDelay = DefaultRemovalDelay
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
	q := &Queue{
		path:     path,
		opts:     opts,
		log:      log,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		removing: make(map[uint64]removal),
		waiters:  make(map[uint64][]chan error),
		notify:   make(chan struct{}),
	}
	// bbolt writes a new file's first four pages in one write; on kernels that cache ext4 files in
	// large folios they share one, and every later write of a meta page would write all of it (see
	// dropHeadCache). An existing file's first pages (a previous process may have left them so in
	// the cache) are dropped before bbolt maps it; a file this open creates is closed once created,
	// dropped, and opened again.
	bopts := q.boltOptions()
	existing := false
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		existing = true
		dropHeadCache(path, headCacheBytes)
	}
	db, err := boltOpen(path, bopts)
	if err == nil && !existing {
		ps := int64(db.Info().PageSize)
		if err = db.Close(); err == nil {
			dropHeadCache(path, 4*ps)
			db, err = boltOpen(path, bopts)
		}
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("queue: %s: %w (waited %s; is another edge-agent running on this state_dir?)", path, ErrLocked, opts.LockTimeout)
	}
	if err != nil {
		if isBoltCorruption(err) && !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	q.db = db
	removeStaleCompaction(path, q) // we hold the lock: no compaction of another process is running
	if err := guard("the initial scan", func() error { return q.load(deep) }); err != nil {
		_ = guard("close", db.Close)
		if errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), path) {
			err = fmt.Errorf("queue: %s: %w", path, err)
		}
		return nil, err
	}
	q.log.Debug("queue opened", "path", path, "depth", q.depth, "bytes", q.bytes,
		"last_seq", q.lastSeq, "dropped", q.dropped, "max_bytes", opts.MaxBytes, "overflow", opts.Overflow.String())
	q.wg.Add(1)
	go q.run()
	return q, nil
}

// boltOptions are the options of every bbolt open of the queue file (Open
// and compaction).
func (q *Queue) boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout: q.opts.LockTimeout,
		// Hash-map freelist: fast for a file that is appended at one end and
		// deleted at the other. The freelist is synced (one 4 KiB page per
		// commit): NoFreelistSync would save that page (8 instead of 12 KiB
		// per one-message commit) but makes bbolt rebuild the freelist on Open
		// with a page walk that panics on a goroutine of its own when it meets
		// a damaged page — a crash instead of ErrCorrupt, and a leaked
		// goroutine (measured with the salvage tests). NoSync stays false:
		// every commit is fsync'd.
		FreelistType: bolt.FreelistMapType,
		// Map ahead of the file: every time bbolt grows the mapping inside a commit it first copies
		// all of that transaction's dirty nodes to the heap (node.dereference), so a fresh file that
		// takes an 8 MB batch remaps ten times and allocates ~150 MB. Mapping address space costs no
		// memory until pages are touched (see initialMmapSize).
		InitialMmapSize: initialMmapSize,
	}
}

// headCacheBytes is what Open drops from the page cache at the head of an existing file: bbolt's first
// four pages, for page sizes up to 16 KiB (the file's own page size is known only once it is open).
const headCacheBytes = 4 * 16 << 10

// initialMmapSize is bbolt's first mapping of the queue file: 256 MiB of address space on 64-bit
// systems, 64 MiB on 32-bit ones (a Pi's 3 GiB user address space also holds the Go heap). Files past
// it are remapped as they grow, each step doubling, as bbolt does by default.
const initialMmapSize = 64<<20 + (strconv.IntSize/64)*(192<<20)

// load checks the format (creating the buckets in a new file) and rebuilds
// the in-memory counters by scanning the records. deep also runs bbolt's
// consistency check and decodes every record (OpenOrRecover).
func (q *Queue) load(deep bool) error {
	create, err := q.checkFormat()
	if err != nil {
		return err
	}
	if create {
		if err := q.initialise(); err != nil {
			return err
		}
	}
	bad, err := q.count(deep)
	if err != nil {
		return err
	}
	if deep {
		// bad >= 2 and more than half: one bad record is a damaged value that
		// Next discards (Stats.Corrupt); a majority means the file is garbage.
		if bad >= 2 && bad*2 > q.depth {
			return fmt.Errorf("queue: %s: %w: %d of %d records cannot be decoded", q.path, ErrCorrupt, bad, q.depth)
		}
		if err := q.check(); err != nil {
			return err
		}
	}
	if q.deadN > q.opts.MaxDeadLetters {
		// MaxDeadLetters was lowered since the file was written.
		return q.trimDeadLettersAtOpen()
	}
	return nil
}

// checkFormat reads the meta bucket: it reports create when the file is new
// (or of an earlier build without the dead-letter bucket), and an error, with
// the file untouched, when it is not a queue file, is damaged or is of
// another format version.
func (q *Queue) checkFormat() (create bool, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			if tx.Bucket(dataBucket) != nil || tx.Bucket(deadBucket) != nil {
				return fmt.Errorf("queue: %s: %w: bucket %q is missing but the queue's records are there; the file was left untouched", q.path, ErrCorrupt, metaBucket)
			}
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
		if tx.Bucket(deadBucket) == nil {
			create = true // a file of an earlier build: add the dead-letter bucket
		}
		return nil
	})
	return create, err
}

// initialise creates what checkFormat found missing: the buckets and, in a
// new file, the format version and the drop counter.
func (q *Queue) initialise() error {
	err := q.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if meta.Get(keyFormatVersion) == nil {
			if err := meta.Put(keyFormatVersion, be64(FormatVersion)); err != nil {
				return err
			}
			if err := meta.Put(keyDropped, be64(0)); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucketIfNotExists(dataBucket); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(deadBucket)
		return err
	})
	if err != nil {
		return fmt.Errorf("queue: initialise %s: %w", q.path, err)
	}
	return nil
}

// count rebuilds the in-memory counters from the meta bucket and the records;
// with deep it also counts the records that cannot be decoded (bad).
func (q *Queue) count(deep bool) (bad int, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		q.dropped = metaCounter(meta, keyDropped)
		q.expired = metaCounter(meta, keyExpired)
		q.deadLettered = metaCounter(meta, keyDeadLettered)
		q.deadDropped = metaCounter(meta, keyDeadDropped)
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
			if deep && (len(k) != 8 || checkRecord(v) != nil) {
				bad++
			}
		}
		dc := tx.Bucket(deadBucket).Cursor()
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
		w := &writer{q: q, tx: tx, meta: tx.Bucket(metaBucket), dead: tx.Bucket(deadBucket),
			res: &commitResult{fileState: q.fileState}}
		if err := w.trimDeadLetters(); err != nil {
			return err
		}
		q.fileState = w.res.fileState
		return w.meta.Put(keyDeadDropped, be64(q.deadDropped))
	})
	if err != nil {
		return fmt.Errorf("queue: trim the dead-letter store of %s to %d records: %w", q.path, q.opts.MaxDeadLetters, err)
	}
	return nil
}

// check runs bbolt's consistency check over the whole file: it reads every
// page once, so its cost is proportional to the file size.
func (q *Queue) check() error {
	return q.db.View(func(tx *bolt.Tx) error {
		var errs []error
		n := 0
		for err := range tx.Check() { // drain fully: Check's goroutine ends with the channel
			n++
			if len(errs) < 5 {
				errs = append(errs, err)
			}
		}
		if n > 0 {
			return fmt.Errorf("queue: %s: %w: bbolt's consistency check found %d problems: %w", q.path, ErrCorrupt, n, errors.Join(errs...))
		}
		return nil
	})
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
		Commits:  q.commits,
		Corrupt:  q.corrupt,
		Expired:  q.expired,

		DeadLetters:        q.deadN,
		DeadLetterBytes:    q.deadB,
		DeadLettered:       q.deadLettered,
		DeadLettersDropped: q.deadDropped,
		Compactions:        q.compactions,
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
