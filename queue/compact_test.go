package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCompactAfterDrain: a file that held a backlog shrinks once the backlog
// is acked; what is still queued, the dead letters, the persisted counters and
// the seq numbering survive, also across a reopen.
func TestCompactAfterDrain(t *testing.T) {
	path := tempPath(t)
	opts := Options{CompactMinSize: 1 << 20, RemovalDelay: -1}
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	batch := make([]Message, 1000)
	for i := range batch {
		batch[i] = benchMsg()
	}
	var seqs []uint64
	for range 20 {
		s, err := q.Append(ctx, batch...)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s...)
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Compactions != 0 {
		t.Fatalf("compacted a full queue: %+v", st)
	}
	sizeFull, allocFull := fileUse(t, path)

	// Keep two records queued and two dead letters; ack the rest.
	keep := seqs[len(seqs)-2:]
	q.DeadLetter(seqs[0], "poison one")
	q.DeadLetter(seqs[1], "poison two")
	q.Ack(seqs[2 : len(seqs)-2]...)
	for range 2 { // the removal commit, then one that waits for the compaction after it
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st := q.Stats()
	size, alloc := fileUse(t, path)
	t.Logf("file before: %d B (allocated %d), after the drain: %d B (allocated %d); %+v", sizeFull, allocFull, size, alloc, st)
	if st.Compactions != 1 {
		t.Fatalf("Compactions %d after the drain, want 1", st.Compactions)
	}
	// The apparent size may be bbolt's first 16 MiB growth step (sparse);
	// what matters for the card is the allocated space.
	if alloc > 256<<10 || alloc*8 > allocFull {
		t.Fatalf("file uses %d B of disk after compaction (%d before), want < 256 KiB", alloc, allocFull)
	}
	if _, err := os.Stat(compactPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the compaction's copy is left behind: %v", err)
	}
	check := func(q *Queue) {
		t.Helper()
		if got := storedSeqs(t, q); fmt.Sprint(got) != fmt.Sprint(keep) {
			t.Fatalf("stored %v, want %v", got, keep)
		}
		dls, err := q.DeadLetters(0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 2 || dls[0].Reason != "poison one" || dls[1].Seq != seqs[1] {
			t.Fatalf("dead letters %+v, want seqs %d and %d with their reasons", dls, seqs[0], seqs[1])
		}
		if st := q.Stats(); st.DeadLettered != 2 || st.Depth != 2 || st.DeadLetters != 2 {
			t.Fatalf("Stats %+v, want DeadLettered 2 (persisted), Depth 2, DeadLetters 2", st)
		}
		if err := q.WaitAcked(ctx, seqs[0]); !errors.Is(err, ErrDeadLettered) {
			t.Fatalf("WaitAcked(dead letter) = %v", err)
		}
	}
	check(q)
	// The queue goes on on the new file: appends get higher seqs, Next works.
	next := mustAppend(t, q, msg("after", "compaction"))
	if next[0] <= seqs[len(seqs)-1] {
		t.Fatalf("seq %d after compaction, last before was %d", next[0], seqs[len(seqs)-1])
	}
	msgs, err := q.Next(ctx, keep[1], 10)
	if err != nil || len(msgs) != 1 || string(msgs[0].Payload) != "compaction" {
		t.Fatalf("Next after compaction: %v, %v", msgs, err)
	}
	q.Ack(next[0])
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openT(t, path, opts)
	check(q)
	if got := mustAppend(t, q, msg("x", "y")); got[0] <= next[0] {
		t.Fatalf("seq %d after reopen, last was %d", got[0], next[0])
	}
}

// TestCompactConcurrentReaders: Next, WaitAcked, DeadLetters and Append keep
// working while the committer compacts after every commit.
func TestCompactConcurrentReaders(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	q.testCompactAlways = true
	ctx := ctxT(t)
	var wg sync.WaitGroup
	const n = 300
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if _, err := q.Append(ctx, msg("c", strconv.Itoa(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var after uint64
	for got := 0; got < n; {
		msgs, err := q.Next(ctx, after, 16)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if string(m.Payload) != strconv.Itoa(got) {
				t.Fatalf("message %d has payload %q", got, m.Payload)
			}
			got++
			q.Ack(m.Seq)
			if err := q.WaitAcked(ctx, m.Seq); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := q.DeadLetters(0, 1); err != nil {
			t.Fatal(err)
		}
		after = msgs[len(msgs)-1].Seq
	}
	wg.Wait()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Compactions == 0 || st.Depth != 0 {
		t.Fatalf("Stats %+v, want compactions and an empty queue", st)
	}
}

const compactChildEnv = "QUEUE_TEST_COMPACT_CHILD"

// The compaction crash child is started through an env var checked in init,
// before TestMain (whose child hook is the append-only crash test's).
func init() {
	if path := os.Getenv(compactChildEnv); path != "" {
		os.Exit(compactChild(path))
	}
}

// compactChild appends forever with two producers while a consumer acks every
// "ack-" message, so the queue stays nearly empty, and compacts after every
// commit. It prints "seq payload" for every "keep-" message once Append
// returned (those are never acked: the parent checks they survive) and "C"
// after each compaction's rename.
func compactChild(path string) int {
	q, err := Open(path, Options{RemovalDelay: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	var out sync.Mutex
	print := func(b []byte) {
		out.Lock()
		defer out.Unlock()
		_, _ = os.Stdout.Write(b)
	}
	q.testHookCompact = func(step string) {
		if step == "renamed" {
			print([]byte("C\n"))
		}
	}
	q.testCompactAlways = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				kind := "ack"
				if i%4 == 0 {
					kind = "keep"
				}
				m := Message{Topic: "c", Payload: fmt.Appendf(nil, "%s-%d-%d-%d", kind, w, os.Getpid(), i), QoS: 1}
				seqs, err := q.Append(ctx, m)
				if err != nil {
					return
				}
				if kind == "keep" {
					print(fmt.Appendf(nil, "%d %s\n", seqs[0], m.Payload))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var after uint64
		for ctx.Err() == nil {
			msgs, err := q.Next(ctx, after, 64)
			if err != nil {
				return
			}
			for _, m := range msgs {
				if bytes.HasPrefix(m.Payload, []byte("ack-")) {
					q.Ack(m.Seq)
				}
			}
			after = msgs[len(msgs)-1].Seq
		}
	}()
	wg.Wait()
	_ = q.Close()
	return 0
}

// TestCompactCrashKill9 kills a process that compacts after every commit,
// at random points of the compaction, and checks that every message it was
// told is stored (and never acked) is there, that the file passes bbolt's
// check and that seqs never go back.
func TestCompactCrashKill9(t *testing.T) {
	path := tempPath(t)
	expected := map[uint64]string{}
	var lastMax uint64
	for iter, killAfter := range []int{30, 200, 60, 400, 100} {
		lines, compactions := runCompactChild(t, path, killAfter, iter+2)
		var minSeq uint64 = 1<<64 - 1
		for seq, p := range lines {
			expected[seq] = p
			minSeq = min(minSeq, seq)
		}
		if len(lines) > 0 && minSeq <= lastMax {
			t.Fatalf("iteration %d: seq %d reused or went back (previous max %d)", iter, minSeq, lastMax)
		}
		q, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", iter, err)
		}
		if err := q.view(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("iteration %d: bbolt check after SIGKILL: %v", iter, err)
		}
		got := map[uint64]string{}
		for _, m := range stored(t, q) {
			got[m.Seq] = string(m.Payload)
			lastMax = max(lastMax, m.Seq)
		}
		lastMax = max(lastMax, q.lastSeq)
		for seq, p := range expected {
			if g, ok := got[seq]; !ok || g != p {
				t.Fatalf("iteration %d (%d compactions seen): acknowledged seq %d (%q) missing or wrong after SIGKILL: got %q, present=%v",
					iter, compactions, seq, p, g, ok)
			}
		}
		if _, err := os.Stat(compactPath(path)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("iteration %d: Open left the interrupted compaction's copy: %v", iter, err)
		}
		t.Logf("iteration %d: %d compactions before the kill, %d kept messages all there", iter, compactions, len(expected))
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runCompactChild starts compactChild, reads at least n kept lines and
// minC compactions, kills it with SIGKILL and returns the kept lines.
func runCompactChild(t *testing.T, path string, n, minC int) (map[uint64]string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if wrapper := os.Getenv(childExecEnv); wrapper != "" {
		cmd = exec.Command(wrapper, os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), compactChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	lines := map[uint64]string{}
	compactions := 0
	killed := false
	timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == "C" {
			compactions++
		} else {
			seqStr, payload, ok := strings.Cut(sc.Text(), " ")
			seq, err := strconv.ParseUint(seqStr, 10, 64)
			if !ok || err != nil {
				t.Fatalf("bad child line %q", sc.Text())
			}
			lines[seq] = payload
		}
		if !killed && len(lines) >= n && compactions >= minC {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before being killed (%d lines, %d compactions): %v\nstderr:\n%s", len(lines), compactions, err, stderr.String())
	}
	return lines, compactions
}
