package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// This file is what the lanes of one queue file share: the bbolt file, its format and lane
// registry, the committer goroutine, Close. A lane (*Queue) is the queue of one broker; a file
// opened with Open has one lane, named DefaultLane.
//
// Format 2 (format 1 plus lanes): the bucket "lanes" maps each lane's name to its id; lane 1 keeps
// format 1's bucket and counter names ("messages", "deadletter", "dropped", …), lane n > 1 has
// them with the suffix ".n". Seqs come from the meta bucket's sequence, one counter for the file,
// so a message stored in several lanes by one Store.Append has the same seq in each. Opening a
// format 1 file upgrades it in place, in one transaction, without copying a record: its buckets
// become lane 1 of the lane named DefaultLane, or of the only lane, and the sequence carries on.

// DefaultLane is the name of the lane of a queue opened with Open, and the lane a format 1 file's
// records are kept for when it is upgraded.
const DefaultLane = "default"

var lanesBucket = []byte("lanes")

// laneKeys are a lane's bucket and counter names in the file.
type laneKeys struct {
	id                                      uint64
	data, dead                              []byte
	dropped, expired, deadLettered, deadDrp []byte
}

func keysFor(id uint64) laneKeys {
	if id == 1 {
		return laneKeys{id, dataBucket, deadBucket, keyDropped, keyExpired, keyDeadLettered, keyDeadDropped}
	}
	sfx := "." + strconv.FormatUint(id, 10)
	k := func(b []byte) []byte { return append(slices.Clone(b), sfx...) }
	return laneKeys{id, k(dataBucket), k(deadBucket), k(keyDropped), k(keyExpired), k(keyDeadLettered), k(keyDeadDropped)}
}

// core is the shared part of every lane of one file; each *Queue embeds it.
type core struct {
	db    *bolt.DB
	path  string
	opts  Options // the shared options; MaxBytes and Overflow are the overall bound (0: none)
	log   *slog.Logger
	lanes []*Queue

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

	gmu     sync.Mutex
	gclosed bool
	groups  []*request // Store.Append calls not yet taken by the committer

	commits     atomic.Uint64
	compactions atomic.Uint64
	// compactRetryAt: no compaction is tried before commits reaches it (after a failure). Committer only.
	compactRetryAt uint64

	testHookBeforeCommit func()       // tests only; set before any Append
	testHookWrite        func() error // tests only; fails the write transaction when it returns an error
	testCompactAlways    bool         // tests only (set before any Append): compact after every commit
	testHookCompact      func(step string)
}

// openStore opens path with the lanes of so; deep adds OpenOrRecover's checks (bbolt's
// consistency check and a decode of every record).
func openStore(path string, so StoreOptions, deep bool) (*Store, error) {
	if err := checkStoreOptions(&so); err != nil {
		return nil, err
	}
	opts := so.Options
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
	c := &core{
		path: path,
		opts: opts,
		log:  log,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	for i, l := range so.Lanes {
		lopts := opts
		lopts.MaxBytes, lopts.Overflow, lopts.MaxAge, lopts.MaxDeadLetters = l.MaxBytes, l.Overflow, l.MaxAge, l.MaxDeadLetters
		llog := log
		if len(so.Lanes) > 1 {
			llog = log.With("lane", l.Name)
		}
		c.lanes = append(c.lanes, &Queue{
			core:     c,
			name:     l.Name,
			idx:      i,
			opts:     lopts,
			log:      llog,
			removing: make(map[uint64]removal),
			waiters:  make(map[uint64][]chan error),
			notify:   make(chan struct{}),
		})
	}
	// bbolt writes a new file's first four pages in one write; on kernels that cache ext4 files in
	// large folios they share one, and every later write of a meta page would write all of it (see
	// dropHeadCache). An existing file's first pages (a previous process may have left them so in
	// the cache) are dropped before bbolt maps it; a file this open creates is closed once created,
	// dropped, and opened again.
	bopts := c.boltOptions()
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
	c.db = db
	removeStaleCompaction(path, c) // we hold the lock: no compaction of another process is running
	if err := guard("the initial scan", func() error { return c.load(deep) }); err != nil {
		_ = guard("close", db.Close)
		if errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), path) {
			err = fmt.Errorf("queue: %s: %w", path, err)
		}
		return nil, err
	}
	for _, q := range c.lanes {
		q.log.Debug("queue opened", "path", path, "depth", q.depth, "bytes", q.bytes,
			"last_seq", q.lastSeq, "dropped", q.dropped, "max_bytes", q.opts.MaxBytes, "overflow", q.opts.Overflow.String())
	}
	c.wg.Add(1)
	go c.run()
	return &Store{core: c}, nil
}

// checkStoreOptions validates so and fills in the defaults.
func checkStoreOptions(so *StoreOptions) error {
	o := &so.Options
	if o.MaxBytes < 0 {
		return fmt.Errorf("queue: MaxBytes %d is negative (use 0 for unbounded)", o.MaxBytes)
	}
	if o.Overflow != DropOldest && o.Overflow != Reject {
		return fmt.Errorf("queue: unknown overflow mode %d (use DropOldest or Reject)", o.Overflow)
	}
	if o.MaxPendingRemovals < 0 {
		return fmt.Errorf("queue: MaxPendingRemovals %d is negative (use 0 for the default %d)", o.MaxPendingRemovals, DefaultMaxPendingRemovals)
	}
	if o.MaxPendingRemovals == 0 {
		o.MaxPendingRemovals = DefaultMaxPendingRemovals
	}
	if o.CompactMinSize == 0 {
		o.CompactMinSize = DefaultCompactMinSize
	}
	if o.RemovalDelay == 0 {
		o.RemovalDelay = DefaultRemovalDelay
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if len(so.Lanes) == 0 || len(so.Lanes) > MaxLanes {
		return fmt.Errorf("queue: %d lanes; a queue file holds 1 to %d", len(so.Lanes), MaxLanes)
	}
	seen := make(map[string]bool, len(so.Lanes))
	for i := range so.Lanes {
		l := &so.Lanes[i]
		what := "queue"
		if len(so.Lanes) > 1 {
			what = fmt.Sprintf("queue: lane %q", l.Name)
		}
		switch {
		case l.Name == "" || len(l.Name) > 255:
			return fmt.Errorf("queue: lane %d: a name of 1 to 255 bytes is needed, got %q", i, l.Name)
		case seen[l.Name]:
			return fmt.Errorf("queue: lane %q given twice", l.Name)
		case l.MaxBytes < 0:
			return fmt.Errorf("%s: MaxBytes %d is negative (use 0 for unbounded)", what, l.MaxBytes)
		case l.Overflow != DropOldest && l.Overflow != Reject:
			return fmt.Errorf("%s: unknown overflow mode %d (use DropOldest or Reject)", what, l.Overflow)
		case l.MaxAge < 0:
			return fmt.Errorf("%s: MaxAge %s is negative (use 0 for no age limit)", what, l.MaxAge)
		case l.MaxDeadLetters < 0:
			return fmt.Errorf("%s: MaxDeadLetters %d is negative (use 0 for the default %d)", what, l.MaxDeadLetters, DefaultMaxDeadLetters)
		}
		seen[l.Name] = true
		if l.MaxDeadLetters == 0 {
			l.MaxDeadLetters = DefaultMaxDeadLetters
		}
	}
	return nil
}

// boltOptions are the options of every bbolt open of the queue file (Open
// and compaction).
func (c *core) boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout: c.opts.LockTimeout,
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

// layout is what load found in the file and what it must write before the lanes can use it.
type layout struct {
	version  uint64            // 0: a new file
	registry map[string]uint64 // lane name → id, as in the file (format 2)
	legacyTo string            // format 1: the lane its records are kept for
	renamed  [2]string         // the file's only lane, renamed to the only configured one
	orphans  []string          // lanes in the file that no configured lane is
	write    bool
}

// load checks the format, upgrades a format 1 file and registers new lanes, then rebuilds each
// lane's in-memory counters by scanning its records. deep also runs bbolt's consistency check and
// decodes every record (OpenOrRecover).
func (c *core) load(deep bool) error {
	var lay layout
	if err := c.db.View(func(tx *bolt.Tx) error { return c.readLayout(tx, &lay) }); err != nil {
		return err
	}
	c.assignLanes(&lay)
	if lay.write {
		if err := c.db.Update(func(tx *bolt.Tx) error { return c.writeLayout(tx, &lay) }); err != nil {
			return fmt.Errorf("queue: prepare %s: %w", c.path, err)
		}
	}
	for _, q := range c.lanes {
		bad, err := q.count(deep)
		if err != nil {
			return err
		}
		// bad >= 2 and more than half: one bad record is a damaged value that
		// Next discards (Stats.Corrupt); a majority means the file is garbage.
		if deep && bad >= 2 && bad*2 > q.depth {
			return fmt.Errorf("queue: %s: %w: %d of %d records cannot be decoded", c.path, ErrCorrupt, bad, q.depth)
		}
	}
	if deep {
		if err := c.check(); err != nil {
			return err
		}
	}
	for _, q := range c.lanes {
		if q.deadN > q.opts.MaxDeadLetters {
			// MaxDeadLetters was lowered since the file was written.
			if err := q.trimDeadLettersAtOpen(); err != nil {
				return err
			}
		}
	}
	c.logLayout(&lay)
	return nil
}

// readLayout reads the format version and the lane registry; it leaves the file untouched and
// returns an error when it is not a queue file, is damaged or is of a newer format.
func (c *core) readLayout(tx *bolt.Tx, lay *layout) error {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		if tx.Bucket(dataBucket) != nil || tx.Bucket(deadBucket) != nil {
			return fmt.Errorf("queue: %s: %w: bucket %q is missing but the queue's records are there; the file was left untouched", c.path, ErrCorrupt, metaBucket)
		}
		foreign := false
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			foreign = true
			return nil
		})
		if foreign {
			return fmt.Errorf("queue: %s is a bbolt file but not a queue file (no %q bucket); refusing to touch it", c.path, metaBucket)
		}
		return nil // a new file
	}
	v := meta.Get(keyFormatVersion)
	if len(v) != 8 {
		return fmt.Errorf("queue: %s: %w: format_version is missing or malformed; the file was left untouched", c.path, ErrCorrupt)
	}
	lay.version = binary.BigEndian.Uint64(v)
	switch lay.version {
	case 1:
		if tx.Bucket(dataBucket) == nil {
			return fmt.Errorf("queue: %s: %w: bucket %q is missing; the file was left untouched", c.path, ErrCorrupt, dataBucket)
		}
		return nil
	case FormatVersion:
	default:
		return fmt.Errorf("queue: %s has on-disk format version %d, this build reads versions 1 to %d; run a newer edge-agent (the file was left untouched): %w",
			c.path, lay.version, FormatVersion, ErrUnsupportedFormat)
	}
	reg := tx.Bucket(lanesBucket)
	if reg == nil {
		return fmt.Errorf("queue: %s: %w: bucket %q is missing; the file was left untouched", c.path, ErrCorrupt, lanesBucket)
	}
	lay.registry = make(map[string]uint64)
	err := reg.ForEach(func(k, v []byte) error {
		if len(v) != 8 || binary.BigEndian.Uint64(v) == 0 {
			return fmt.Errorf("queue: %s: %w: lane %q has a malformed id; the file was left untouched", c.path, ErrCorrupt, k)
		}
		id := binary.BigEndian.Uint64(v)
		if tx.Bucket(keysFor(id).data) == nil {
			return fmt.Errorf("queue: %s: %w: the records of lane %q are missing; the file was left untouched", c.path, ErrCorrupt, k)
		}
		lay.registry[string(k)] = id
		return nil
	})
	return err
}

// assignLanes gives every configured lane its id: the one the file has for its name; for a format
// 1 file, id 1 (its records) to the lane named DefaultLane, else the only (or first) lane; when
// the file has one lane and one lane is configured under another name, that lane (renamed); else
// a new id.
func (c *core) assignLanes(lay *layout) {
	reg := lay.registry
	if reg == nil {
		reg = make(map[string]uint64)
		lay.registry = reg
	}
	configured := make(map[string]bool, len(c.lanes))
	for _, q := range c.lanes {
		configured[q.name] = true
	}
	switch {
	case lay.version == 0:
		lay.write = true
	case lay.version == 1:
		lay.legacyTo = c.legacyLane().name
		reg[lay.legacyTo] = 1
		lay.write = true
	case len(reg) == 1 && len(c.lanes) == 1 && reg[c.lanes[0].name] == 0:
		for old, id := range reg {
			delete(reg, old)
			reg[c.lanes[0].name] = id
			lay.renamed = [2]string{old, c.lanes[0].name}
		}
		lay.write = true
	}
	next := uint64(1)
	for _, id := range reg {
		next = max(next, id+1)
	}
	for _, q := range c.lanes {
		id, ok := reg[q.name]
		if !ok {
			id = next
			next++
			reg[q.name] = id
			lay.write = true
		}
		q.keys = keysFor(id)
	}
	for name := range reg {
		if !configured[name] {
			lay.orphans = append(lay.orphans, name)
		}
	}
	slices.Sort(lay.orphans)
}

// writeLayout makes the file format 2 with every configured lane registered and its buckets
// present: a new file, a format 1 file (in place: its buckets become lane 1 and its sequence the
// file's), new lanes, a renamed lane.
func (c *core) writeLayout(tx *bolt.Tx, lay *layout) error {
	meta, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	if lay.version == 1 {
		if seq := tx.Bucket(dataBucket).Sequence(); seq > meta.Sequence() {
			if err := meta.SetSequence(seq); err != nil {
				return err
			}
		}
	}
	if err := meta.Put(keyFormatVersion, be64(FormatVersion)); err != nil {
		return err
	}
	reg, err := tx.CreateBucketIfNotExists(lanesBucket)
	if err != nil {
		return err
	}
	if old := lay.renamed[0]; old != "" {
		if err := reg.Delete([]byte(old)); err != nil {
			return err
		}
	}
	for _, q := range c.lanes {
		if err := reg.Put([]byte(q.name), be64(q.keys.id)); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(q.keys.data); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(q.keys.dead); err != nil {
			return err
		}
	}
	return nil
}

// logLayout says what load changed in the file and what it keeps for lanes no longer configured.
func (c *core) logLayout(lay *layout) {
	if lay.version == 1 {
		q := c.lane(lay.legacyTo)
		c.log.Info("queue: upgraded the file from format 1 to format 2 in place; everything queued is kept for "+strconv.Quote(lay.legacyTo),
			"path", c.path, "lane", lay.legacyTo, "depth", q.depth, "dead_letters", q.deadN)
	}
	if lay.renamed[0] != "" {
		c.log.Info("queue: the file's only lane was renamed to the only configured one; what it holds is kept for it",
			"path", c.path, "from", lay.renamed[0], "to", lay.renamed[1])
	}
	for _, name := range lay.orphans {
		var depth, dead int
		_ = c.db.View(func(tx *bolt.Tx) error {
			k := keysFor(lay.registry[name])
			if b := tx.Bucket(k.data); b != nil {
				depth = b.Stats().KeyN
			}
			if b := tx.Bucket(k.dead); b != nil {
				dead = b.Stats().KeyN
			}
			return nil
		})
		c.log.Warn("queue: the file holds a lane that is not configured; its messages are kept in the file but not sent (configure a broker of that name again to send them)",
			"path", c.path, "lane", name, "depth", depth, "dead_letters", dead)
	}
}

// legacyLane is the lane a format 1 file's records are kept for: the lane named DefaultLane, else
// the first (the only one, with one lane).
func (c *core) legacyLane() *Queue {
	if q := c.lane(DefaultLane); q != nil {
		return q
	}
	return c.lanes[0]
}

func (c *core) lane(name string) *Queue {
	for _, q := range c.lanes {
		if q.name == name {
			return q
		}
	}
	return nil
}

// check runs bbolt's consistency check over the whole file: it reads every
// page once, so its cost is proportional to the file size.
func (c *core) check() error {
	return c.db.View(func(tx *bolt.Tx) error {
		var errs []error
		n := 0
		for err := range tx.Check() { // drain fully: Check's goroutine ends with the channel
			n++
			if len(errs) < 5 {
				errs = append(errs, err)
			}
		}
		if n > 0 {
			return fmt.Errorf("queue: %s: %w: bbolt's consistency check found %d problems: %w", c.path, ErrCorrupt, n, errors.Join(errs...))
		}
		return nil
	})
}

// close commits what the lanes were already given, wakes blocked callers
// with ErrClosed, stops the committer and closes the file, once.
func (c *core) close() error {
	c.closeOnce.Do(func() {
		c.gmu.Lock()
		c.gclosed = true
		c.gmu.Unlock()
		for _, q := range c.lanes {
			q.mu.Lock()
			q.closed = true
			q.mu.Unlock()
		}
		close(c.done)
		c.wg.Wait()

		for _, q := range c.lanes {
			q.mu.Lock()
			for seq, ws := range q.waiters {
				for _, w := range ws {
					w <- ErrClosed
				}
				delete(q.waiters, seq)
			}
			q.mu.Unlock()
		}

		err := c.finalErr
		if cerr := c.db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("queue: close %s: %w", c.path, cerr))
		}
		c.closeErr = err
	})
	return c.closeErr
}

// signal wakes the committer without blocking.
func (c *core) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
