// Package queue is the agent's durable FIFO of outgoing messages, stored in a
// bbolt file.
//
// # Contract
//
//   - Append stores all of its messages or none of them, and returns their
//     sequence numbers only after the commit that holds them was fsync'd.
//     A nil error from Append means the messages survive a crash or power loss.
//   - Sequence numbers come from the bucket's NextSequence: strictly increasing,
//     never reused, and the only ordering used (never the wall clock, which a
//     gateway without an RTC cannot trust).
//   - A message leaves the queue through exactly one of: Ack (delivered),
//     DeadLetter (refused for good), expiry, overflow (DropOldest), or a
//     corrupt-record discard. Ack, DeadLetter, expiry and discards are
//     recorded in memory at once (Next never returns the message again,
//     WaitAcked returns) and the record is removed by a background commit
//     shortly after. A crash before that commit brings the message back
//     after the next Open: delivery is at least once.
//   - MaxBytes bounds the sum of encoded record sizes (the bbolt values, not
//     counting keys and page overhead). With DropOldest the oldest records are
//     deleted in the same transaction that stores the new ones, counted in
//     Stats.Dropped (persisted in the file) and their WaitAcked callers get
//     ErrDropped (when the bound is tiny this may include records of an earlier
//     Append in the same commit: they were the oldest). With Reject the Append
//     fails with ErrFull and stores nothing. Records awaiting removal (acked,
//     dead-lettered, expired) are removed at the start of every commit, and
//     expired records at the head too, so they never cause a drop or a
//     rejection.
//     A message (or one Append call) bigger than MaxBytes fails with
//     ErrTooLarge, which wraps ErrFull, in both modes.
//   - The file carries a format version. A file written by a newer, unknown
//     format is refused with ErrUnsupportedFormat and left untouched.
//
// # Dead letters
//
// A message the broker refuses for good (a poison message) must not block
// the queue. DeadLetter(seq, reason) is as cheap as Ack: it never blocks,
// Next skips seq from then on and WaitAcked reports ErrDeadLettered with the
// reason; the committer moves the record, with the reason and the time, from
// the queue to a separate dead-letter bucket in its next transaction (a
// crash before that puts the message back in the queue). Dead letters keep
// their seq; DeadLetters lists them in seq order, Requeue moves them back to
// the tail with new seqs (durably, before it returns; all or nothing) and
// DeleteDeadLetters removes them for good. The store is bounded by
// Options.MaxDeadLetters records (default 10000): beyond it the dead letters
// with the lowest seqs are evicted and counted in Stats.DeadLettersDropped.
// Dead letters do not count toward MaxBytes, Depth or Bytes (Stats has
// DeadLetters and DeadLetterBytes for them). The bound is a record count,
// not bytes: the disk they may use is MaxDeadLetters times the message size.
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
// A message that expires while being sent may be both delivered and reported
// expired.
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
// woken. There is no timer: a lone Append commits at once, and concurrent
// Appends share the commit that follows the one in progress. Each Append call
// is checked against the bound on its own inside the shared transaction, so a
// call rejected for space does not fail the others. An error of the commit
// itself (I/O, disk full) fails every call in that commit.
//
// # Accounting
//
// Stats is served from memory (no transaction). Depth, Bytes and Oldest
// describe the records stored in the file: a removed record (acked,
// dead-lettered, expired) counts until the background commit removes it
// (removal-time accounting); Stats.Inflight is the number of such records.
// Acked, Expired, DeadLetters and DeadLettered change with that commit too
// (Flush waits for it). The counters are rebuilt by scanning the file on
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
