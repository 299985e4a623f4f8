// Package queue is the agent's durable FIFO of outgoing messages, stored in a
// bbolt file.
//
// # Contract
//
// Each operation's contract is stated once, on its method: Append (durable,
// all or none, MaxBytes and Overflow), Next (order, expiry at read), Ack,
// Expire and DeadLetter (how a message leaves), WaitAcked (what a producer is
// told), DeadLetters, Requeue and DeleteDeadLetters (the dead-letter store),
// Flush and Close. What they add up to:
//
//   - A nil error from Append means the messages survive a crash or power
//     loss.
//   - Sequence numbers come from the bucket's NextSequence: strictly
//     increasing, never reused, and the only ordering used (never the wall
//     clock, which a gateway without an RTC cannot trust).
//   - A message leaves the queue through exactly one of Ack (delivered),
//     Expire or expiry at read (its time ran out), DeadLetter (refused for
//     good), overflow (DropOldest) or a corrupt-record discard. All but
//     overflow are recorded in memory at once and committed later (see
//     Options.RemovalDelay): a crash before that commit brings the message
//     back after the next Open, so delivery is at least once and the
//     duplicates a crash can cause are the messages removed in the last
//     RemovalDelay — at most MaxPendingRemovals, plus those removed while
//     that commit ran.
//   - The file carries a format version (2: format 1 plus lanes, see
//     core.go; the record layout is in record.go). A format 1 file is upgraded
//     in place on Open. A file written by a newer, unknown format is refused
//     with ErrUnsupportedFormat and left untouched. Removal timing, compaction
//     and the synced freelist do not change the layout.
//   - Lanes: a Store holds one lane per broker in one file; each lane is a
//     *Queue with all of the above, and Store.Append stores a message in
//     several lanes in one commit (see Store).
//
// # Dead letters
//
// A message the broker refuses for good (a poison message) must not block
// the queue: DeadLetter is as cheap as Ack, and the committer moves the
// record, with the reason and the time, to a separate dead-letter bucket.
// The store is bounded by Options.MaxDeadLetters records (a count, not
// bytes: the disk they may use is MaxDeadLetters times the message size).
//
// # Expiry
//
// A record expires when its Message.Expires has passed or, with
// Options.MaxAge, when Created+MaxAge has. Next never returns an expired
// record: it records the removal like an ack (Stats.Expired, persisted, counts
// it once committed; WaitAcked reports ErrExpired) and moves on. In addition
// every commit removes expired records at the head of the queue (up to 1024
// per commit), before its appends are checked against MaxBytes. There is no
// timer: on a queue that is neither read nor written nothing is removed, so
// Stats.Oldest, Depth and Bytes may include expired records until the next
// commit or Next; on a queue that is written (an agent offline, still
// accepting messages) the head is trimmed with every commit and Oldest is at
// most MaxAge old plus the time since the last commit. Records further back
// with their own earlier Expires leave when Next reaches them.
// Wall-clock guard: a Created or Expires before 2020 (taken from a clock that
// was not set yet) is not used for expiry, and nothing expires while the
// clock reads before 2020, so setting the clock never discards a backlog.
// A message the sender finds expired after Next handed it out is reported
// with Expire and never sent.
//
// # Damaged files
//
// Open reports a damaged file (bbolt refuses it, bbolt panics or faults
// while opening or scanning it, the queue's meta bucket is missing) with an
// error wrapping ErrCorrupt and leaves it alone. OpenOrRecover also runs
// bbolt's consistency check (tx.Check) and decodes every record — it reads
// the whole file once, so its cost is proportional to the file size (from
// the page cache about twice the cost of Open, which already scans every
// record: ~4 GB/s on a 2-core amd64, see BenchmarkOpenDeep; from a cold SD
// card it is bound by the card's read speed, a few seconds for a file at
// the default 256 MiB bound) — and when the file is damaged it renames it to
// <name>.corrupt-<UTC time like 20261127T001500Z>, fsyncs the directory,
// starts a fresh queue and returns a Recovery saying where the file went and
// why. It then salvages what bbolt can still read of the moved file (opened
// read-only, never modified): the records that decode, in seq order, are
// appended to the fresh queue with new seqs and the dead letters go back to
// the dead-letter store; damaged pages are skipped where a readable key after
// them can be found; MaxBytes and Overflow apply; the salvage is streamed in
// batches and bounded in time. Recovery.Salvaged and SalvageError say how it
// went. Records that were acked but whose removal was not committed yet are
// salvaged too and sent again (at least once). More than half of the records (and at least two) failing to decode is
// damage; a single bad record is not: Next discards it and counts it in
// Stats.Corrupt. A locked file, a newer format, a bbolt file of another
// program and permission or directory errors are never moved aside.
// Panics and memory faults of bbolt are recovered only on the goroutine that
// calls Open/OpenOrRecover; the consistency check runs after a full scan of
// the same pages, so a fault there is unlikely but not impossible.
//
// # Full disk
//
// A commit that fails for lack of space (ENOSPC, EDQUOT) stores nothing of
// it and leaves the file valid (bbolt writes the meta page last). Every
// call in that commit gets an error wrapping ErrDiskFull and the system's
// error (errors.Is(err, syscall.ENOSPC) holds) that says "disk full"; acks
// and other removals of that commit are kept and retried with the next one.
// The queue needs no reopen: the next commit succeeds once there is room.
//
// # Group commit
//
// One committer goroutine owns every write transaction. Whatever is pending
// when it wakes — the records of all waiting Append calls, Requeue and
// DeleteDeadLetters calls, and all removals recorded since the last commit —
// goes into one db.Update and therefore one fsync; then all those callers are
// woken. A lone Append commits at once, and concurrent Appends share the
// commit that follows the one in progress. Removals alone wait (see the
// contract: RemovalDelay, MaxPendingRemovals), so that a producer sending one
// message at a time pays one commit per message, not two. Each Append call
// is checked against the bound on its own inside the shared transaction, so a
// call rejected for space does not fail the others. An error of the commit
// itself (I/O, disk full) fails every call in that commit.
//
// # Flash wear
//
// What one commit writes (4 KiB pages; bbolt writes every page a transaction
// changed, then fdatasync, then its meta page, then fdatasync): the changed
// leaf pages of the records, the branch pages above them, the root page that
// holds the buckets' headers (the data bucket's sequence changes with every
// Append), the freelist page and the meta page. While the queue is nearly
// empty its buckets are small enough to live inside the root page, so a
// one-message commit — which also carries the removal of the message before
// it — writes 3 pages: 12 KiB per message. With a backlog (the data bucket
// has pages of its own) it is 4–5 pages. The persisted counters (meta bucket)
// are written only when they change, inline in the root page. That is the
// floor for a commit that must be fsync'd before Append returns: the freelist
// page could go (bbolt's NoFreelistSync), but bbolt then rebuilds the
// freelist on Open with a page walk that panics on a goroutine of its own on
// damaged pages; the queue keeps the synced freelist. Batches share pages:
// ~300 B written per 200 B message in batches of 1000, removals included.
// Open also drops the file's first pages from the page cache (see
// dropHeadCache): on kernels whose ext4 caches files in large folios, bbolt's
// first 16 KiB write makes every later meta-page write a 16 KiB write.
//
// # Compaction
//
// bbolt never shrinks its file; pages freed by removals are reused, but a
// file that grew during an outage would keep its size. After a commit, when
// the file uses at least Options.CompactMinSize of disk (st_blocks; default
// 32 MiB; negative = never) and the queue's records and dead letters are at
// most 1/16 of that, the committer rewrites everything the file holds — the
// records with their seqs, the dead letters, the format version, the
// persisted counters and the bucket sequences — into <file>.compact (each of
// its transactions fsync'd), renames it over the file, fsyncs the directory
// and goes on with the new file; Stats.Compactions counts it. Nothing races
// it: Appends and removals wait for the committer (the copy is at most 1/16
// of the file: a second or two on an SD card for the largest), readers for
// the switch. A
// crash at any point loses nothing: before the rename the old file is
// complete (Open deletes the partial copy), after it the new one is. A
// failed compaction (disk full) is logged, leaves the file as it was and is
// tried again 1000 commits later. Copying writes at most 1/16 of the file,
// once per drained backlog. The file's apparent size may stay at bbolt's
// first growth step (16 MiB, sparse); the disk it uses is what it holds.
//
// # Accounting
//
// Stats is served from memory (no transaction). Depth, Bytes and Oldest
// describe the records stored in the file: a removed record (acked,
// dead-lettered, expired) counts until the commit that removes it, up to
// RemovalDelay later (removal-time accounting); Stats.Inflight is the number
// of such records. Acked, Expired, DeadLetters and DeadLettered change with
// that commit too (Flush waits for it). The counters are rebuilt by scanning the file on
// Open; Dropped, Expired, DeadLettered and DeadLettersDropped are persisted.
//
// # Concurrency
//
// All methods of *Queue are safe for concurrent use by any number of
// goroutines. Append, Next, WaitAcked, Flush, Requeue and DeleteDeadLetters
// block; Ack, DeadLetter and Stats do not; DeadLetters runs one read
// transaction. Close may be called concurrently with everything else and
// more than once: it commits what was already handed to Append, Ack and
// DeadLetter, wakes blocked callers with ErrClosed and closes the file. Only
// one process may open a file at a time; a second Open fails with ErrLocked
// after Options.LockTimeout.
package queue
