package queue

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path, false))
	}
	if path := os.Getenv(crashLanesChildEnv); path != "" {
		os.Exit(crashChild(path, true))
	}
	goleak.VerifyTestMain(m)
}

// openT opens a queue that is closed when the test ends.
func openT(t testing.TB, path string, opts Options) *Queue {
	t.Helper()
	q, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "queue.db")
}

// ctxT is a context bounded well inside the test timeout.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func msg(topic, payload string) Message {
	return Message{Topic: topic, Payload: []byte(payload), QoS: 1}
}

func mustAppend(t testing.TB, q *Queue, msgs ...Message) []uint64 {
	t.Helper()
	seqs, err := q.Append(ctxT(t), msgs...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(seqs) != len(msgs) {
		t.Fatalf("Append returned %d seqs for %d messages", len(seqs), len(msgs))
	}
	return seqs
}

// stored returns every unacked stored message without blocking.
func stored(t testing.TB, q *Queue) []Message {
	t.Helper()
	msgs, err := q.read(0, 1<<30)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return msgs
}

func storedSeqs(t testing.TB, q *Queue) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, m := range stored(t, q) {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

func pendingLen(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// holdCommits makes the committer stop before its next commit until the
// returned release function is called. entered receives once per held commit.
// The hold is released when the test ends, so a failing test cannot hang Close.
func holdCommits(t testing.TB, q *Queue) (entered <-chan struct{}, release func()) {
	in := make(chan struct{}, 16)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	q.testHookBeforeCommit = func() {
		select {
		case <-gate:
			return
		default:
		}
		in <- struct{}{}
		<-gate
	}
	return in, release
}
