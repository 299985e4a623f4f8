package queue

import (
	"bufio"
	"bytes"
	"context"
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

const crashLanesChildEnv = "QUEUE_TEST_CRASH_LANES_CHILD"

// crashLanesChild runs in a re-executed test binary: 4 producers call Store.Append forever on a
// file with lanes "a" and "b", each call's messages going to both lanes, to a only or to b only,
// and print "seq targets payload" for every seq once Append has returned. The parent kills it.
func crashLanesChild(path string) int {
	s, err := OpenStore(path, lanes("a", "b"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
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
					to[j] = Targets(1 + (i+j)%3) // 1: a, 2: b, 3: both
					msgs[j] = Message{Topic: "crash", Payload: fmt.Appendf(nil, "w%d-%d-%d-%d", w, os.Getpid(), i, j), QoS: 1}
				}
				seqs, err := s.Append(ctx, msgs, to)
				if err != nil {
					if ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "child append:", err)
					}
					return
				}
				var buf bytes.Buffer
				for j, seq := range seqs {
					fmt.Fprintf(&buf, "%d %d %s\n", seq, to[j], msgs[j].Payload)
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
	_ = s.Close()
	return 0
}

type laneLine struct {
	to      Targets
	payload string
}

// TestCrashKill9Lanes kills a process appending to two lanes with SIGKILL mid-stream, several
// times on the same file: every message Store.Append acknowledged is in each lane it was for, with
// its payload, and in no other; the lanes drain half of it between runs.
func TestCrashKill9Lanes(t *testing.T) {
	path := tempPath(t)
	expected := map[uint64]laneLine{}
	delivered := map[[2]uint64]bool{} // (lane, seq) acked in an earlier iteration
	for iter, killAfter := range []int{40, 600, 150} {
		lines := runAndKillLanes(t, path, killAfter)
		for seq, l := range lines {
			expected[seq] = l
		}
		s, err := OpenStore(path, lanes("a", "b"))
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", iter, err)
		}
		if err := s.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("iteration %d: bbolt check after SIGKILL: %v", iter, err)
		}
		for l, q := range s.Lanes() {
			got := map[uint64]string{}
			var prev uint64
			for _, m := range stored(t, q) {
				if m.Seq <= prev {
					t.Fatalf("iteration %d: lane %s order broken: %d after %d", iter, q.Name(), m.Seq, prev)
				}
				prev = m.Seq
				got[m.Seq] = string(m.Payload)
			}
			for seq, e := range expected {
				p, ok := got[seq]
				switch {
				case e.to.Has(l) && !delivered[[2]uint64{uint64(l), seq}] && (!ok || p != e.payload):
					t.Fatalf("iteration %d: acknowledged seq %d (%q) for lane %s missing or wrong after SIGKILL: got %q, present=%v",
						iter, seq, e.payload, q.Name(), p, ok)
				case !e.to.Has(l) && ok:
					t.Fatalf("iteration %d: seq %d (%q, targets %d) found in lane %s", iter, seq, e.payload, e.to, q.Name())
				}
			}
			// The lane delivers half of what it holds before the next child runs.
			n := 0
			for seq := range got {
				if n%2 == 0 {
					q.Ack(seq)
					delivered[[2]uint64{uint64(l), seq}] = true
				}
				n++
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("iteration %d: close: %v", iter, err)
		}
	}
	t.Logf("%d acknowledged messages over 3 kills, each found in every lane it was for", len(expected))
}

// runAndKillLanes is runAndKill for crashLanesChild.
func runAndKillLanes(t *testing.T, path string, n int) map[uint64]laneLine {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if wrapper := os.Getenv(childExecEnv); wrapper != "" {
		cmd = exec.Command(wrapper, os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), crashLanesChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	lines := map[uint64]laneLine{}
	killed := false
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) != 3 {
			t.Fatalf("bad child line %q", sc.Text())
		}
		seq, err1 := strconv.ParseUint(f[0], 10, 64)
		to, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad child line %q", sc.Text())
		}
		if _, dup := lines[seq]; dup {
			t.Fatalf("child got seq %d twice", seq)
		}
		lines[seq] = laneLine{Targets(to), f[2]}
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
