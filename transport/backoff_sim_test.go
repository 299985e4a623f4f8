package transport

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// fleetRun is what one simulated broker restart did to a fleet.
type fleetRun struct {
	attempts  int           // connection attempts, all agents
	peak      int           // the most attempts in any one second
	peakAt    time.Duration // start of that second
	allBack   time.Duration // when the last agent was connected again
	minGap    time.Duration // shortest time between two attempts of one agent (one client id)
	maxWaitUp time.Duration // longest an agent waited after the broker was back
}

// simulateRestart drives the reconnect loop of Client.Run for n agents with a simulated clock:
// every agent has been connected longer than StableAfter when the broker goes away at time 0 and
// comes back at down. Each agent then does what Run does: wait backoff(attempt) with attempt
// starting at 0 (a stable connection was lost), try, and on failure wait backoff(attempt+1), and
// so on. An attempt before down fails at once (connection refused: the worst case, no dial time
// between attempts); one at or after down succeeds.
func simulateRestart(n int, down time.Duration, backoff func(int) time.Duration) fleetRun {
	q := &agentHeap{}
	for range n {
		heap.Push(q, &simAgent{at: backoff(0), attempt: 0, last: -1})
	}
	run := fleetRun{minGap: time.Duration(1<<63 - 1)}
	perSecond := map[int64]int{}
	for q.Len() > 0 {
		a := heap.Pop(q).(*simAgent)
		run.attempts++
		sec := int64(a.at / time.Second)
		perSecond[sec]++
		if perSecond[sec] > run.peak {
			run.peak, run.peakAt = perSecond[sec], time.Duration(sec)*time.Second
		}
		if a.last >= 0 {
			run.minGap = min(run.minGap, a.at-a.last)
		}
		if a.at >= down { // connected
			run.allBack = max(run.allBack, a.at)
			if a.last < down {
				run.maxWaitUp = max(run.maxWaitUp, a.at-down)
			}
			continue
		}
		a.attempt++
		a.last = a.at
		a.at += backoff(a.attempt)
		heap.Push(q, a)
	}
	return run
}

type simAgent struct {
	at      time.Duration // next attempt
	attempt int           // backoff attempt number of the wait that led to it
	last    time.Duration // previous attempt, -1 = none
}

type agentHeap []*simAgent

func (h agentHeap) Len() int           { return len(h) }
func (h agentHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h agentHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *agentHeap) Push(x any)        { *h = append(*h, x.(*simAgent)) }
func (h *agentHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// TestFleetRestartSimulation: 1,000 agents with the agent's default reconnect settings
// (reconnect_min 1s, reconnect_max 2m) after a broker restart. Issue 12: at most 5 % of the fleet
// attempts in any one second, every agent is back within the backoff cap of the broker's return,
// and no agent attempts twice within a second (AWS IoT: 1 CONNECT per second per client id).
func TestFleetRestartSimulation(t *testing.T) {
	const n = 1000
	min, cap := time.Second, 2*time.Minute
	worst := 0
	defer func() {
		t.Logf("highest peak of all fleets: %d attempts in one second (%.1f %%)", worst, 100*float64(worst)/n)
	}()
	for _, down := range []time.Duration{0, 5 * time.Second, 20 * time.Second, time.Minute, 10 * time.Minute} {
		t.Run(fmt.Sprint("down=", down), func(t *testing.T) {
			for run := range 20 { // many fleets: the bound holds for each, not on average
				// FleetJitter's own code with a seeded source, so that a run is reproducible.
				rng := rand.New(rand.NewPCG(uint64(run), uint64(down)))
				r := simulateRestart(n, down, fleetJitter(min, cap/2, cap, rng.Int64N))
				worst = max(worst, r.peak)
				if run == 0 {
					t.Logf("%d attempts; peak %d in the second from %v (%.1f %%); all back %v after the return; shortest gap per client id %v",
						r.attempts, r.peak, r.peakAt, 100*float64(r.peak)/n, r.allBack-down, r.minGap)
				}
				if r.peak > n*5/100 {
					t.Fatalf("peak %d attempts in the second from %v: more than 5 %% of %d", r.peak, r.peakAt, n)
				}
				if r.maxWaitUp > cap || r.allBack-down > cap {
					t.Fatalf("an agent came back %v after the broker, more than the cap %v", max(r.maxWaitUp, r.allBack-down), cap)
				}
				if r.minGap < time.Second {
					t.Fatalf("one client id attempted twice within %v (AWS IoT allows 1 CONNECT per second)", r.minGap)
				}
			}
		})
	}
}

// TestFleetRestartFullJitter records what the plain full jitter of earlier releases did (the
// "before" of issue 12): its first wait after a loss is at most reconnect_min, so the whole fleet
// comes back within a second or two.
func TestFleetRestartFullJitter(t *testing.T) {
	const n = 1000
	for _, down := range []time.Duration{0, 20 * time.Second} {
		r := simulateRestart(n, down, FullJitter(time.Second, 2*time.Minute))
		t.Logf("full jitter, down %v: peak %d in the second from %v (%.1f %%); shortest gap per client id %v",
			down, r.peak, r.peakAt, 100*float64(r.peak)/n, r.minGap)
		if r.peak <= n*5/100 {
			t.Fatalf("full jitter met the 5 %% bound (%d): the simulation does not model the herd", r.peak)
		}
	}
}

func TestFleetJitterBounds(t *testing.T) {
	f := FleetJitter(time.Second, 2*time.Minute)
	for attempt := -1; attempt < 80; attempt++ {
		ceil := 2 * time.Minute
		if attempt <= 0 {
			ceil = time.Minute
		}
		var top time.Duration
		for range 500 {
			d := f(attempt)
			if d < time.Second || d > ceil {
				t.Fatalf("attempt %d: %v outside [1s, %v]", attempt, d, ceil)
			}
			top = max(top, d)
		}
		if top < ceil/2 {
			t.Fatalf("attempt %d: largest of 500 samples %v, not spread over [1s, %v]", attempt, top, ceil)
		}
	}
	// A cap below twice the floor: every wait is the floor... up to the cap.
	if d := FleetJitter(time.Second, time.Second)(5); d != time.Second {
		t.Fatalf("min = max: %v", d)
	}
	if FleetJitter(0, time.Second)(3) != 0 || FleetJitter(time.Second, 0)(3) != 0 {
		t.Fatal("non-positive min or max should give 0")
	}
}
