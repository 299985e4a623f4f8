package queue

import (
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

const crashLanesChildEnv = "QUEUE_TEST_CRASH_LANES_CHILD"

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

// runAndKillLanes is runAndKill for the lanes child: seq → targets and payload.
func runAndKillLanes(t *testing.T, path string, n int) map[uint64]laneLine {
	t.Helper()
	out := map[uint64]laneLine{}
	for seq, rest := range runAndKill(t, path, n, crashLanesChildEnv) {
		toStr, payload, ok := strings.Cut(rest, " ")
		to, err := strconv.ParseUint(toStr, 10, 64)
		if !ok || err != nil {
			t.Fatalf("bad child line %d %q", seq, rest)
		}
		out[seq] = laneLine{Targets(to), payload}
	}
	return out
}
