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
//   - Next never removes anything. A message leaves the queue only through Ack
//     (delivered) or overflow (DropOldest). Ack is recorded in memory at once
//     (Next never returns an acked message again, WaitAcked returns) and the
//     record is deleted by a background commit shortly after. A crash before
//     that commit brings the message back after the next Open: delivery is at
//     least once.
//   - MaxBytes bounds the sum of encoded record sizes (the bbolt values, not
//     counting keys and page overhead). With DropOldest the oldest records are
//     deleted in the same transaction that stores the new ones, counted in
//     Stats.Dropped (persisted in the file) and their WaitAcked callers get
//     ErrDropped (when the bound is tiny this may include records of an earlier
//     Append in the same commit: they were the oldest). With Reject the Append
//     fails with ErrFull and stores nothing. Acked records awaiting removal are
//     deleted at the start of every commit, so they never cause a drop or a
//     rejection.
//     A message (or one Append call) bigger than MaxBytes fails with
//     ErrTooLarge, which wraps ErrFull, in both modes.
//   - The file carries a format version. A file written by a newer, unknown
//     format is refused with ErrUnsupportedFormat and left untouched.
//
// # Group commit
//
// One committer goroutine owns every write transaction. Whatever is pending
// when it wakes — the records of all waiting Append calls and all acked seqs
// awaiting removal — goes into one db.Update and therefore one fsync; then all
// those callers are woken. There is no timer: a lone Append commits at once,
// and concurrent Appends share the commit that follows the one in progress.
// Each Append call is checked against the bound on its own inside the shared
// transaction, so a call rejected for space does not fail the others. An error
// of the commit itself (I/O, disk full) fails every call in that commit.
//
// # Accounting
//
// Stats is served from memory (no transaction). Depth, Bytes and Oldest
// describe the records stored in the file: an acked record counts until the
// background commit removes it (removal-time accounting); Stats.Inflight is
// the number of such acked-but-not-yet-removed records. The counters are
// rebuilt by scanning the file on Open.
//
// # Concurrency
//
// All methods of *Queue are safe for concurrent use by any number of
// goroutines. Append, Next, WaitAcked and Flush block; Ack and Stats do not.
// Close may be called concurrently with everything else and more than once:
// it commits what was already handed to Append and Ack, wakes blocked callers
// with ErrClosed and closes the file. Only one process may open a file at a
// time; a second Open fails with ErrLocked after Options.LockTimeout.
package queue
