package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// This file is start-up recovery from a damaged queue file.

// Recovery says that OpenOrRecover found the queue file damaged, moved it
// aside and started an empty queue.
type Recovery struct {
	MovedTo string    // the damaged file's new path: <path>.corrupt-<UTC time>
	Reason  string    // what was wrong with it
	At      time.Time // when it was moved
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
// fine). The renamed file is kept as it was, for inspection or salvage.
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
	q, err := open(path, opts, true)
	if err == nil {
		return q, nil, nil
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
		log.Error("queue: damaged queue file moved aside, starting an empty queue; the messages in it are not sent",
			"path", path, "moved_to", moved, "reason", rec.Reason)
	}
	q, err = open(path, opts, false)
	if err != nil {
		return nil, rec, fmt.Errorf("queue: open a fresh queue after moving the damaged file to %s: %w", moved, err)
	}
	return q, rec, nil
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
