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

const (
	crashChildEnv = "QUEUE_TEST_CRASH_CHILD"
	// childExecEnv names a program that runs the child test binary, for
	// cross-architecture runs (go test -exec qemu-arm-static) on machines
	// without binfmt_misc, where the binary cannot exec itself directly.
	childExecEnv = "QUEUE_TEST_CHILD_EXEC"
)

// crashChild runs in a re-executed test binary: 4 producers append forever
// and print "seq payload" for every seq once Append has returned. The parent
// kills it with SIGKILL. It exits by itself after a minute in case the
// parent died. With lanes it opens a Store with lanes "a" and "b", sends each
// message to a, b or both, and prints "seq targets payload".
func crashChild(path string, lanes bool) int {
	var appendTo func(ctx context.Context, msgs []Message, to []Targets) ([]uint64, error)
	var closer func() error
	if lanes {
		s, err := OpenStore(path, StoreOptions{Lanes: []LaneOptions{{Name: "a"}, {Name: "b"}}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child open:", err)
			return 2
		}
		appendTo, closer = s.Append, s.Close
	} else {
		q, err := Open(path, Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child open:", err)
			return 2
		}
		appendTo = func(ctx context.Context, msgs []Message, _ []Targets) ([]uint64, error) {
			return q.Append(ctx, msgs...)
		}
		closer = q.Close
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				n := 1 + i%3
				msgs := make([]Message, n)
				to := make([]Targets, n)
				for j := range msgs {
					to[j] = Targets(1 + (i+j)%3) // lanes: 1 a, 2 b, 3 both
					msgs[j] = Message{Topic: "crash", Payload: fmt.Appendf(nil, "w%d-%d-%d-%d", w, os.Getpid(), i, j), QoS: 1}
				}
				seqs, err := appendTo(ctx, msgs, to)
				if err != nil {
					if ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "child append:", err)
					}
					return
				}
				var buf bytes.Buffer
				for j, s := range seqs {
					if lanes {
						fmt.Fprintf(&buf, "%d %d %s\n", s, to[j], msgs[j].Payload)
					} else {
						fmt.Fprintf(&buf, "%d %s\n", s, msgs[j].Payload)
					}
				}
				out.Lock()
				_, werr := os.Stdout.Write(buf.Bytes())
				out.Unlock()
				if werr != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	_ = closer()
	return 0
}

// TestCrashKill9 kills a producing process with SIGKILL mid-stream, several
// times on the same file, and checks that every seq the child was told is
// durable is there with its payload, that the file passes bbolt's
// consistency check, and that seqs keep increasing across crashes.
func TestCrashKill9(t *testing.T) {
	path := tempPath(t)
	expected := map[uint64]string{}
	var lastMax uint64
	for iter, killAfter := range []int{40, 400, 1500, 150} {
		lines := runAndKill(t, path, killAfter, crashChildEnv)
		if len(lines) < killAfter {
			t.Fatalf("iteration %d: child printed only %d lines", iter, len(lines))
		}
		var minSeq uint64 = 1<<64 - 1
		for seq, p := range lines {
			expected[seq] = p
			minSeq = min(minSeq, seq)
		}
		if minSeq <= lastMax {
			t.Fatalf("iteration %d: seq %d reused or went back (previous max %d)", iter, minSeq, lastMax)
		}

		q, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", iter, err)
		}
		if err := q.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("iteration %d: bbolt check after SIGKILL: %v", iter, err)
		}
		got := map[uint64]string{}
		var prev uint64
		for _, m := range stored(t, q) {
			if m.Seq <= prev {
				t.Fatalf("iteration %d: order broken: %d after %d", iter, m.Seq, prev)
			}
			prev = m.Seq
			got[m.Seq] = string(m.Payload)
			lastMax = max(lastMax, m.Seq)
		}
		for seq, p := range expected {
			if g, ok := got[seq]; !ok || g != p {
				t.Fatalf("iteration %d: acknowledged seq %d (%q) missing or wrong after SIGKILL: got %q, present=%v",
					iter, seq, p, g, ok)
			}
		}
		if st := q.Stats(); st.Depth != len(got) {
			t.Fatalf("iteration %d: Stats.Depth %d, stored %d", iter, st.Depth, len(got))
		}
		// Ack half of what is expected so the next child runs on a file
		// with deleted records.
		n := 0
		for seq := range expected {
			if n%2 == 0 {
				q.Ack(seq)
				delete(expected, seq)
			}
			n++
		}
		if err := q.Close(); err != nil {
			t.Fatalf("iteration %d: close: %v", iter, err)
		}
	}
}

// runAndKill starts the child (env names the mode: crashChildEnv or crashLanesChildEnv), reads at least n acknowledged lines, kills it
// with SIGKILL and returns every line it printed before dying.
func runAndKill(t *testing.T, path string, n int, env string) map[uint64]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if wrapper := os.Getenv(childExecEnv); wrapper != "" {
		cmd = exec.Command(wrapper, os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), env+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.ENOEXEC) {
			t.Fatalf("start child: %v (running under an emulator without binfmt_misc? set %s=qemu-arm-static or similar)", err, childExecEnv)
		}
		t.Fatalf("start child: %v", err)
	}
	lines := map[uint64]string{}
	killed := false
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		seqStr, payload, ok := strings.Cut(sc.Text(), " ")
		seq, err := strconv.ParseUint(seqStr, 10, 64)
		if !ok || err != nil {
			t.Fatalf("bad child line %q", sc.Text())
		}
		if _, dup := lines[seq]; dup {
			t.Fatalf("child got seq %d twice", seq)
		}
		lines[seq] = payload
		if !killed && len(lines) >= n {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before being killed (%d lines): %v\nstderr:\n%s", len(lines), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\nstderr:\n%s", err, stderr.String())
	}
	return lines
}
