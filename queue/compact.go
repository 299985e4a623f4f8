package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// This file gives the space of a drained backlog back to the file system.
// bbolt never shrinks its file: pages freed by removals are reused, but a
// file that grew to hundreds of MB during an outage stays that big. When the
// queue is nearly empty and the file much bigger than needed, the committer
// rewrites what is stored into a fresh file and puts it in place:
//
//  1. bolt.Compact copies every bucket (records, dead letters, the meta
//     bucket with the format version and the persisted counters) and every
//     bucket sequence (so seqs keep increasing) into <path>.compact; each of
//     its transactions is fsync'd.
//  2. The new file is renamed over <path> (atomic) and the directory is
//     fsync'd, with the new file already open and locked.
//  3. The old file is closed; the queue continues on the new one.
//
// The committer does it between two commits, holding commitMu and, for the
// switch, dbMu: no Append, removal or reader races it. A crash (kill -9,
// power loss) before the rename leaves the old file, complete, and a partial
// <path>.compact that the next Open deletes; after the rename the new file
// holds everything the old one held. Nothing is lost either way; pending
// removals stay in memory and go into the next commit as usual.

// DefaultCompactMinSize is Options.CompactMinSize when it is zero.
const DefaultCompactMinSize = 32 << 20

// compactRatio: the queue compacts when the live bytes (records and dead
// letters, encoded) are at most 1/compactRatio of the file. Copying them
// writes at most that share of the file once per drained backlog.
const compactRatio = 16

// compactRetryCommits: after a failed compaction (disk full, I/O error) the
// next try waits this many commits.
const compactRetryCommits = 1000

// compactTxMax bounds one transaction of the copy (memory of dirty pages).
const compactTxMax = 1 << 20

func compactPath(path string) string { return path + ".compact" }

// view runs fn in a read transaction of the current file. Every reader of
// q.db outside the committer goes through it: compaction swaps q.db.
func (c *core) view(fn func(*bolt.Tx) error) error {
	c.dbMu.RLock()
	defer c.dbMu.RUnlock()
	return c.db.View(fn)
}

// compactDue reports whether the file should be compacted now.
func (c *core) compactDue() bool {
	if c.opts.CompactMinSize < 0 {
		return false
	}
	var live int64
	for _, q := range c.lanes {
		q.mu.Lock()
		live += q.bytes + q.deadB
		q.mu.Unlock()
	}
	always := c.testCompactAlways
	skip := c.commits.Load() < c.compactRetryAt
	if skip {
		return false
	}
	fi, err := os.Stat(c.path)
	if err != nil {
		return false
	}
	if always {
		return true
	}
	used := allocated(fi)
	return used >= c.opts.CompactMinSize && live*compactRatio <= used
}

// maybeCompact is called by the committer after a commit.
func (c *core) maybeCompact() {
	if !c.compactDue() {
		return
	}
	before, _ := os.Stat(c.path)
	if err := c.compact(); err != nil {
		c.compactRetryAt = c.commits.Load() + compactRetryCommits
		c.log.Error("queue: compaction failed; the queue goes on with the file as it is", "path", c.path, "err", err,
			"retry_after_commits", compactRetryCommits)
		return
	}
	if after, err := os.Stat(c.path); err == nil && before != nil {
		c.log.Info("queue: compacted the drained file", "path", c.path,
			"disk_before", allocated(before), "disk_after", allocated(after))
	}
}

// compact rewrites the file; see the top of this file. On error the old file
// stays in use and the partial copy is removed.
func (c *core) compact() (err error) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()

	tmp := compactPath(c.path)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	dst, err := boltOpen(tmp, c.boltOptions())
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	err = bolt.Compact(dst, c.db, compactTxMax)
	ps := int64(dst.Info().PageSize)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy into %s: %w", tmp, c.commitError(err))
	}
	if hook := c.testHookCompact; hook != nil {
		hook("copied")
	}
	// Open the copy before it takes the queue's name: from the rename on, the
	// file at c.path is locked by us. Its first pages leave the page cache
	// first (see dropHeadCache).
	dropHeadCache(tmp, 4*ps)
	dst, err = boltOpen(tmp, c.boltOptions())
	if err != nil {
		return fmt.Errorf("reopen %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		_ = dst.Close()
		return fmt.Errorf("rename %s to %s: %w", tmp, c.path, err)
	}
	if hook := c.testHookCompact; hook != nil {
		hook("renamed")
	}
	if err := syncDir(filepath.Dir(c.path)); err != nil {
		// The rename may not be durable; the old file, if it comes back
		// after a power loss, holds the same records. Go on with the new.
		c.log.Warn("queue: fsync of the directory after compaction failed", "path", c.path, "err", err)
	}

	c.dbMu.Lock()
	old := c.db
	c.db = dst
	c.dbMu.Unlock()
	if err := old.Close(); err != nil {
		c.log.Warn("queue: closing the file replaced by compaction", "err", err)
	}
	c.compactions.Add(1)
	return nil
}

// removeStaleCompaction deletes a copy left by a compaction that a crash
// interrupted before its rename (the queue file itself is complete).
func removeStaleCompaction(path string, c *core) {
	tmp := compactPath(path)
	if err := os.Remove(tmp); err == nil {
		c.log.Info("queue: removed the partial copy of an interrupted compaction", "path", tmp)
	}
}
