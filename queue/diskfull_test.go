package queue

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestDiskFull fills a real 3 MiB tmpfs until a commit fails with ENOSPC,
// checks the error, checks that the file on disk is a valid database holding
// exactly what was acknowledged, frees space and appends again on the same
// Queue. Where a tmpfs cannot be mounted (not root, no CAP_SYS_ADMIN) it
// runs the same checks against an injected ENOSPC and says so in the log.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=3m"); err != nil {
		t.Logf("FALLBACK: cannot mount a tmpfs on %s (%v; needs root): testing an injected ENOSPC instead", mnt, err)
		testDiskFullInjected(t)
		return
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})

	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, bytes.Repeat([]byte{0xaa}, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(mnt, "queue.db")
	q := openT(t, path, Options{}) // closed before the unmount (cleanups run last-in first-out)

	m := Message{Topic: "full/disk", Payload: bytes.Repeat([]byte{'x'}, 8<<10), QoS: 1}
	var acked []uint64
	var err error
	for i := 0; ; i++ {
		if i > 2000 {
			t.Fatal("3 MiB tmpfs never filled up")
		}
		var seqs []uint64
		seqs, err = q.Append(ctxT(t), m)
		if err != nil {
			break
		}
		acked = append(acked, seqs...)
	}
	t.Logf("disk full after %d appends: %v", len(acked), err)
	checkDiskFullError(t, err)
	if len(acked) < 10 {
		t.Fatalf("only %d appends before the disk was full", len(acked))
	}
	// Still full: fails again the same way, the queue did not break.
	if seqs, err := q.Append(ctxT(t), m); err != nil {
		checkDiskFullError(t, err)
	} else {
		acked = append(acked, seqs...) // a page happened to be free
	}
	assertValidFile(t, q, path, len(acked))

	// Free space without reopening: appends work again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	more := mustAppend(t, q, m, m)
	if more[0] <= acked[len(acked)-1] {
		t.Fatalf("seq after the full disk %d, want > %d", more[0], acked[len(acked)-1])
	}
	msgs, err := q.Next(ctxT(t), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(acked)+2 || msgs[len(msgs)-1].Seq != more[1] {
		t.Fatalf("after freeing space Next returned %d messages, want %d", len(msgs), len(acked)+2)
	}
	// Acks commit too, and the space is reused.
	for _, m := range msgs {
		q.Ack(m.Seq)
	}
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, q, m)
	if st := q.Stats(); st.Depth != 1 {
		t.Fatalf("Stats %+v", st)
	}
}

// TestCommitErrorKeepsQueueUsable: an injected ENOSPC on every platform.
func TestCommitErrorKeepsQueueUsable(t *testing.T) {
	testDiskFullInjected(t)
}

func testDiskFullInjected(t *testing.T) {
	path := tempPath(t)
	q := openT(t, path, Options{})
	m := msg("t", "payload")
	acked := mustAppend(t, q, m, m)
	var fail atomic.Bool
	fail.Store(true)
	q.testHookWrite = func() error {
		if fail.Load() {
			return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
		}
		return nil
	}
	q.Ack(acked[0]) // its removal fails with the commit and is retried later
	_, err := q.Append(ctxT(t), m)
	checkDiskFullError(t, err)
	if st := q.Stats(); st.Depth != 2 || st.Inflight != 1 {
		t.Fatalf("after the failed commit Stats %+v", st)
	}
	assertValidFile(t, q, path, 2)
	fail.Store(false)
	more := mustAppend(t, q, m)
	if st := q.Stats(); st.Depth != 2 || st.Inflight != 0 || st.Acked != 1 {
		t.Fatalf("after space came back Stats %+v (the ack was retried with the append)", st)
	}
	if got := storedSeqs(t, q); len(got) != 2 || got[0] != acked[1] || got[1] != more[0] {
		t.Fatalf("stored %v", got)
	}
}

func checkDiskFullError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Append on a full disk succeeded")
	}
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Append on a full disk: %v; want ErrDiskFull wrapping syscall.ENOSPC, saying \"disk full\"", err)
	}
}

// assertValidFile copies the bytes of the open queue's file elsewhere and
// checks the copy with bbolt: consistent, and holding want records.
func assertValidFile(t *testing.T, q *Queue, path string, want int) {
	t.Helper()
	if err := q.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("bbolt check of the open queue: %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("the file after the failed commit does not open: %v", err)
	}
	defer db.Close()
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		n = tx.Bucket(dataBucket).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatalf("the file after the failed commit is not valid: %v", err)
	}
	if n != want {
		t.Fatalf("the file holds %d records, %d were acknowledged", n, want)
	}
}
