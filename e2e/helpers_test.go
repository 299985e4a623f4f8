package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
)

// Fast reconnects for the fault tests.
//
// The agent reconnects with the fleet backoff (transport.FleetJitter): after a lost connection it waits
// a random 1 s to 1 min (half the 2 min cap) so that a fleet whose broker restarted does not come back
// all at once, and each failed attempt doubles the window up to the cap. That is right for a fleet,
// and no test that breaks a link can afford it. So the fault tests set [broker] reconnect_min /
// reconnect_max, as an operator of a small fleet can.
const (
	fastReconnectMin = "100ms"
	fastReconnectMax = "1s"
)

// apiStatus is the part of GET /v1/status the tests read.
type apiStatus struct {
	State     string    `json:"state"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error"`
	Connects  uint64    `json:"connects"`
	// Protocol is the MQTT version of the current or last connection ("5", "3.1.1", "3.1").
	Protocol       string `json:"protocol"`
	SessionPresent bool   `json:"session_present"`
	Queue          struct {
		Depth int `json:"depth"`
	} `json:"queue"`
}

// httpClient is a plain HTTP client on the agent's Unix socket, as `curl --unix-socket` is.
func (p *agentProc) httpClient() *http.Client {
	p.httpOnce.Do(func() {
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", p.sock)
			},
			MaxIdleConnsPerHost: 8,
		}
		p.http = &http.Client{Transport: tr, Timeout: 15 * time.Second}
		p.t.Cleanup(tr.CloseIdleConnections)
	})
	return p.http
}

// apiStatus reads GET /v1/status. It returns an error (never fails the test) so that it can poll an
// agent that is being restarted.
func (p *agentProc) apiStatus() (apiStatus, error) {
	var st apiStatus
	return st, p.getStatus(&st)
}

// getStatus decodes GET /v1/status into v (apiStatus, or the whole localapi.Status).
func (p *agentProc) getStatus(v any) error {
	resp, err := p.httpClient().Get("http://agent/v1/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/status: %d %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET /v1/status: %w: %q", err, body)
	}
	return nil
}

// drained waits (at most timeout) until the agent is connected with an empty queue.
func (p *agentProc) drained(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if st, err := p.apiStatus(); err == nil && st.State == "connected" && st.Queue.Depth == 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// rawStatus is GET /v1/status verbatim, for failure messages.
func (p *agentProc) rawStatus() string {
	resp, err := p.httpClient().Get("http://agent/v1/status")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// mustStatus is apiStatus for an agent that must be up.
func (p *agentProc) mustStatus() apiStatus {
	p.t.Helper()
	st, err := p.apiStatus()
	if err != nil {
		p.t.Fatalf("agent status: %v", err)
	}
	return st
}

// waitState polls the status until cond holds (at most timeout) and returns that status.
func (p *agentProc) waitState(timeout time.Duration, what string, cond func(apiStatus) bool) apiStatus {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := p.apiStatus()
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out after %s waiting for %s (last status %+v, error %v)", timeout, what, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// producer publishes one numbered stream, topic <prefix>/p<k>, payloads "<k>:<n>" with n = 1, 2, 3…,
// through the agent's socket: single POSTs and NDJSON batches at random, one request at a time. It
// records every number the API answered 202 for. A request that got no answer (the agent died, the
// socket was gone) is not acknowledged and its numbers are never reused: they may or may not arrive.
type producer struct {
	k        int
	topic    string
	agent    *agentProc
	rng      *rand.Rand
	maxBatch int           // largest NDJSON batch
	pause    time.Duration // random pause in [0, pause) between requests
	limit    int           // stop after publishing number limit (0 = until ctx is done)

	next       int   // next number to publish
	acked      []int // numbers answered 202, ascending
	unanswered int   // numbers whose request got no answer
	failures   int   // requests that failed without an answer other than by our own cancel (agent gone)
	singles    int   // 202 answers to single POSTs
	batches    int   // 202 answers to NDJSON batches
	err        error // an answer other than 202: the run stops and the test fails
}

func newProducer(a *agentProc, prefix string, k int, seed uint64) *producer {
	return &producer{k: k, topic: fmt.Sprintf("%s/p%d", prefix, k), agent: a, rng: rand.New(rand.NewPCG(seed, uint64(k))),
		maxBatch: 20, pause: 5 * time.Millisecond, next: 1}
}

// run publishes until ctx is done, the limit is reached or an unexpected answer comes.
func (p *producer) run(ctx context.Context) {
	client := p.agent.httpClient()
	for ctx.Err() == nil && (p.limit == 0 || p.next <= p.limit) {
		n := 1
		if p.maxBatch > 1 && p.rng.IntN(3) != 0 {
			n = 2 + p.rng.IntN(p.maxBatch-1)
		}
		if p.limit > 0 {
			n = min(n, p.limit-p.next+1)
		}
		first := p.next
		p.next += n
		status, body, err := p.send(ctx, client, first, n)
		switch {
		case err != nil:
			p.unanswered += n
			if ctx.Err() == nil {
				p.failures++
			}
			sleepCtx(ctx, 5*time.Millisecond+time.Duration(p.rng.IntN(10))*time.Millisecond) // agent restarting
			continue
		case status != http.StatusAccepted:
			p.err = fmt.Errorf("producer %d: numbers %d..%d: HTTP %d %s", p.k, first, first+n-1, status, body)
			return
		}
		for i := first; i < first+n; i++ {
			p.acked = append(p.acked, i)
		}
		if n == 1 {
			p.singles++
		} else {
			p.batches++
		}
		if p.pause > 0 {
			sleepCtx(ctx, time.Duration(p.rng.Int64N(int64(p.pause))))
		}
	}
}

func (p *producer) send(ctx context.Context, client *http.Client, first, n int) (int, string, error) {
	var req *http.Request
	var err error
	if n == 1 {
		u := "http://agent/v1/publish?topic=" + url.QueryEscape(p.topic)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(fmt.Sprintf("%d:%d", p.k, first)))
		if err == nil {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
	} else {
		var b strings.Builder
		for i := first; i < first+n; i++ {
			fmt.Fprintf(&b, "{\"topic\":%q,\"payload\":\"%d:%d\",\"qos\":1}\n", p.topic, p.k, i)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, "http://agent/v1/publish", strings.NewReader(b.String()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
	}
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err // the answer was cut off: not an acknowledgement
	}
	return resp.StatusCode, string(body), nil
}

// runProducers runs ps until ctx is done and returns a function that waits for them to stop.
func runProducers(ctx context.Context, ps []*producer) (wait func()) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx)
		}()
	}
	return wg.Wait
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// tally is what a subscriber saw of the producers' streams.
type tally struct {
	Acked      int // numbers the API answered 202 for
	Delivered  int // distinct acknowledged numbers that reached the subscriber
	Lost       int // acknowledged numbers that never arrived
	Duplicates int // arrivals beyond the first of the same number
	Extra      int // numbers without an answer (agent killed mid-request) that arrived anyway
}

func (t tally) String() string {
	return fmt.Sprintf("acknowledged %d, delivered %d, lost %d, duplicates %d (plus %d unanswered that arrived)",
		t.Acked, t.Delivered, t.Lost, t.Duplicates, t.Extra)
}

// checker reads a subscriber's messages incrementally and checks, per producer, that first arrivals come
// in increasing order.
type checker struct {
	prefix string
	ps     []*producer
	seen   []map[int]bool
	last   []int // last first arrival per producer
	done   int   // messages of the Sub already read
	dups   int
	bad    error // first order violation or unparsable message
}

func newChecker(prefix string, ps []*producer) *checker {
	c := &checker{prefix: prefix, ps: ps, seen: make([]map[int]bool, len(ps)), last: make([]int, len(ps))}
	for i := range c.seen {
		c.seen[i] = map[int]bool{}
	}
	return c
}

func (c *checker) ingest(msgs []mosquitto.Msg) {
	for _, m := range msgs[c.done:] {
		c.done++
		if c.bad != nil {
			continue
		}
		k, n, err := c.parse(m)
		if err != nil {
			c.bad = err
			continue
		}
		if c.seen[k][n] {
			c.dups++
			continue
		}
		c.seen[k][n] = true
		if n <= c.last[k] {
			c.bad = fmt.Errorf("producer %d: number %d arrived for the first time after %d: order broken", k, n, c.last[k])
		}
		c.last[k] = n
	}
}

func (c *checker) parse(m mosquitto.Msg) (int, int, error) {
	ks, ok := strings.CutPrefix(m.Topic, c.prefix+"/p")
	k, err := strconv.Atoi(ks)
	if !ok || err != nil || k < 0 || k >= len(c.ps) {
		return 0, 0, fmt.Errorf("unexpected topic %q", m.Topic)
	}
	pk, pn, ok := strings.Cut(string(m.Payload), ":")
	n, err := strconv.Atoi(pn)
	if !ok || err != nil || pk != ks {
		return 0, 0, fmt.Errorf("unexpected payload %q on %q", m.Payload, m.Topic)
	}
	return k, n, nil
}

// missing counts acknowledged numbers not seen yet.
func (c *checker) missing() int {
	n := 0
	for k, p := range c.ps {
		for _, a := range p.acked {
			if !c.seen[k][a] {
				n++
			}
		}
	}
	return n
}

func (c *checker) tally() tally {
	var t tally
	for k, p := range c.ps {
		acked := make(map[int]bool, len(p.acked))
		for _, a := range p.acked {
			acked[a] = true
			if c.seen[k][a] {
				t.Delivered++
			} else {
				t.Lost++
			}
		}
		t.Acked += len(p.acked)
		for n := range c.seen[k] {
			if !acked[n] {
				t.Extra++
			}
		}
	}
	t.Duplicates = c.dups
	return t
}

// msgSource is a checker subscriber: a *mosquitto.Sub, or an MQTT 3.1.1 one (see sub311).
type msgSource interface{ Messages() []mosquitto.Msg }

// awaitDelivery waits (at most timeout) until every acknowledged number reached sub, checking the order
// on the way; it fails the test on an order violation and returns the tally either way.
func awaitDelivery(t *testing.T, sub msgSource, c *checker, timeout time.Duration) tally {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.ingest(sub.Messages())
		if c.bad != nil {
			t.Fatalf("subscriber: %v", c.bad)
		}
		if c.missing() == 0 || time.Now().After(deadline) {
			return c.tally()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// firstMissing lists up to n acknowledged numbers that never arrived, for failure messages.
func (c *checker) firstMissing(n int) []string {
	var out []string
	for k, p := range c.ps {
		for _, a := range p.acked {
			if !c.seen[k][a] && len(out) < n {
				out = append(out, fmt.Sprintf("p%d:%d", k, a))
			}
		}
	}
	return out
}

// stream is a set of producers running in the background.
type stream struct {
	ps     []*producer
	cancel context.CancelFunc
	wait   func()
}

// startStream starts n producers on topics <prefix>/p0… with the given largest batch; configure, if
// needed, changes each producer before it starts. A t.Cleanup stops them if the test ends early.
func startStream(t *testing.T, a *agentProc, prefix string, n int, seed uint64, configure func(*producer)) *stream {
	t.Helper()
	ps := make([]*producer, n)
	for k := range ps {
		ps[k] = newProducer(a, prefix, k, seed)
		if configure != nil {
			configure(ps[k])
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{ps: ps, cancel: cancel, wait: runProducers(ctx, ps)}
	t.Cleanup(func() { s.cancel(); s.wait() })
	return s
}

// stop ends the producers (idempotent) and fails the test if one of them got an answer other than 202.
func (s *stream) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	s.wait()
	for _, p := range s.ps {
		if p.err != nil {
			t.Fatal(p.err)
		}
	}
}

// done waits (at most timeout) for producers with a limit to finish.
func (s *stream) done(t *testing.T, timeout time.Duration) {
	t.Helper()
	finished := make(chan struct{})
	go func() { s.wait(); close(finished) }()
	select {
	case <-finished:
		s.stop(t)
	case <-time.After(timeout):
		s.cancel()
		<-finished
		t.Fatalf("producers did not finish within %s", timeout)
	}
}

// failures is the number of requests that got no answer while the producers were running.
func (s *stream) failures() int {
	n := 0
	for _, p := range s.ps {
		n += p.failures
	}
	return n
}
