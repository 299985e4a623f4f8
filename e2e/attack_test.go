package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/devbroker"
	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/mqttwire"
)

// TestAttack attacks the real agent binary, run under the unit's memory conditions (see memcg_test.go),
// with mixes of legal requests that once took it past 64 MiB, and with the inputs that once wedged the
// queue (issue 7). Each subtest gets a fresh agent, a fresh memory cgroup and a fresh Mosquitto.
func TestAttack(t *testing.T) {
	t.Run("batches", attackBatches)
	t.Run("publishes", attackPublishes)
	t.Run("deadletters", attackDeadLetters)
	t.Run("stalled_uploads", attackStalledUploads)
	t.Run("slow_subscribers", attackSlowSubscribers)
	t.Run("params", attackParams)
	t.Run("topics", attackTopics)
}

// startAttack starts a Mosquitto (with bopts) and a fresh agent for it under the memory harness, with
// apiTOML appended to its config, and waits until the agent is connected.
func startAttack(t *testing.T, apiTOML string, bopts ...mosquitto.Option) (*mosquitto.Broker, *memAgent) {
	t.Helper()
	b := mosquitto.Start(t, bopts...)
	m := startMemAgent(t, b.WSURL(), memOptions{TOML: apiTOML})
	m.waitState(15*time.Second, "connected", connected)
	return b, m
}

// client is a fresh HTTP client on the agent's socket that opens one connection per request (none
// kept idle), so that concurrent requests really are concurrent connections.
func (p *agentProc) client(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", p.sock)
		},
		DisableKeepAlives: true,
	}
	p.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// answer is one HTTP answer (or the failure to get one).
type answer struct {
	status     int
	retryAfter string
	body       string
	err        error
}

func (a answer) String() string {
	if a.err != nil {
		return "no answer: " + a.err.Error()
	}
	return fmt.Sprintf("%d %s", a.status, strings.TrimSpace(truncateStr(a.body, 200)))
}

func truncateStr(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func do(c *http.Client, method, target, contentType string, body io.Reader) answer {
	req, err := http.NewRequest(method, "http://agent"+target, body)
	if err != nil {
		return answer{err: err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b), err: err}
}

// post sends one POST on its own connection and reads the answer while the body is still being
// written: a server that refuses a request from its headers (503 before reading a large body) and closes
// must be heard, whatever happens to the rest of the upload. net/http's client may report the failed
// write instead of the answer in that race; a careful client, like this one, does not.
func (p *agentProc) post(target, contentType string, body []byte, timeout time.Duration) answer {
	conn, err := net.DialTimeout("unix", p.sock, timeout)
	if err != nil {
		return answer{err: err}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	wrote := make(chan error, 1)
	go func() {
		_, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: agent\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
			target, contentType, len(body))
		if err == nil {
			_, err = conn.Write(body)
		}
		wrote <- err
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return answer{err: fmt.Errorf("%w (writing the request: %v)", err, <-wrote)}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	conn.Close()
	<-wrote
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b), err: err}
}

// acceptedOrBusy accepts an answer that is a 202, or a 503 telling the client when to come back. Anything else —
// a dropped connection, a 500, a 503 without Retry-After — is a failure under load.
func acceptedOrBusy(a answer) error {
	switch {
	case a.err != nil:
		return fmt.Errorf("the connection failed instead of an answer: %w", a.err)
	case a.status == http.StatusAccepted:
		return nil
	case a.status == http.StatusServiceUnavailable && a.retryAfter != "":
		return nil
	case a.status == http.StatusServiceUnavailable:
		return fmt.Errorf("503 without a Retry-After header: %s", a)
	}
	return fmt.Errorf("want 202, or 503 with Retry-After: got %s", a)
}

// statusJSON is GET /v1/status as a generic JSON tree, for fields the apiStatus struct does not have.
func (p *agentProc) statusJSON() (map[string]any, error) {
	a := do(p.httpClient(), http.MethodGet, "/v1/status", "", nil)
	if a.err != nil {
		return nil, a.err
	}
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/status: %s", a)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(a.body), &v); err != nil {
		return nil, fmt.Errorf("GET /v1/status: %w", err)
	}
	return v, nil
}

// sumKey sums every number stored under key anywhere in the JSON tree v (a number, or an object of
// numbers such as per-reason counts); found says whether the key occurs at all.
func sumKey(v any, key string) (sum float64, found bool) {
	var numbers func(v any) float64
	numbers = func(v any) float64 {
		switch x := v.(type) {
		case float64:
			return x
		case map[string]any:
			s := 0.0
			for _, e := range x {
				s += numbers(e)
			}
			return s
		}
		return 0
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == key {
				sum += numbers(e)
				found = true
				continue
			}
			s, f := sumKey(e, key)
			sum += s
			found = found || f
		}
	case []any:
		for _, e := range x {
			s, f := sumKey(e, key)
			sum += s
			found = found || f
		}
	}
	return sum, found
}

// statusNumber reads one number of GET /v1/status by its path ("queue.dead_letters").
func (p *agentProc) statusNumber(path string) (float64, error) {
	v, err := p.statusJSON()
	if err != nil {
		return 0, err
	}
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, fmt.Errorf("status has no %s", path)
		}
		cur = m[k]
	}
	n, ok := cur.(float64)
	if !ok {
		return 0, fmt.Errorf("status has no number %s", path)
	}
	return n, nil
}

// metricSum sums every sample of GET /metrics whose series name starts with prefix.
func (p *agentProc) metricSum(prefix string) (sum float64, found bool, err error) {
	a := do(p.httpClient(), http.MethodGet, "/metrics", "", nil)
	if a.err != nil {
		return 0, false, a.err
	}
	if a.status != http.StatusOK {
		return 0, false, fmt.Errorf("GET /metrics: %s", a)
	}
	for _, line := range strings.Split(a.body, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, true, fmt.Errorf("GET /metrics: bad sample %q", line)
		}
		sum += v
		found = true
	}
	return sum, found, nil
}

// ndjsonBatch is one NDJSON publish at the documented maximum: lines messages of about lineBytes bytes
// each (newline included), topic attack/batch/<k>, payloads "<k>:<n>:" padded with 'x'.
func ndjsonBatch(k, lines, lineBytes int) []byte {
	var b bytes.Buffer
	b.Grow(lines * lineBytes)
	for n := range lines {
		head := fmt.Sprintf(`{"topic":"attack/batch/%d","payload":"%d:%d:`, k, k, n)
		pad := max(lineBytes-len(head)-len("\"}\n"), 0)
		b.WriteString(head)
		b.Write(bytes.Repeat([]byte{'x'}, pad))
		b.WriteString("\"}\n")
	}
	return b.Bytes()
}

// awaitPayloads waits (at most timeout) until sub has seen every key of want (key maps a message to
// its key, "" for none); it returns how many distinct keys it saw.
func awaitPayloads(sub *mosquitto.Sub, want map[string]bool, key func(mosquitto.Msg) string, timeout time.Duration) int {
	seen := make(map[string]bool, len(want))
	done := 0
	deadline := time.Now().Add(timeout)
	for {
		msgs := sub.Messages()
		for _, m := range msgs[done:] {
			if k := key(m); want[k] {
				seen[k] = true
			}
		}
		done = len(msgs)
		if len(seen) == len(want) || time.Now().After(deadline) {
			return len(seen)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// a. Three NDJSON batches at the documented maximum (10,000 lines, ~7.8 MB) at once, then one alone:
// the concurrent ones are 202 or 503 with Retry-After, the lone one is 202, everything answered 202 is
// delivered, and the agent stays under 64 MiB.
func attackBatches(t *testing.T) {
	const (
		lines     = 10000
		lineBytes = 780
		together  = 3
	)
	b, m := startAttack(t, "")
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "attack/batch/#")

	answers := make([]answer, together+1)
	var wg sync.WaitGroup
	for k := range together {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[k] = m.post("/v1/publish", "application/x-ndjson", ndjsonBatch(k, lines, lineBytes), 60*time.Second)
		}()
	}
	wg.Wait()
	concurrent := m.figures()
	t.Logf("%d concurrent batches of %d lines (%d bytes each): %v", together, lines, lines*lineBytes, answers[:together])
	t.Logf("memory after the concurrent batches: %s", concurrent)
	for k := range together {
		if err := acceptedOrBusy(answers[k]); err != nil {
			t.Errorf("concurrent batch %d: %v", k, err)
		}
	}
	m.failIfDown(t, "3 concurrent NDJSON batches at the maximum")
	answers[together] = m.post("/v1/publish", "application/x-ndjson", ndjsonBatch(together, lines, lineBytes), 60*time.Second)
	t.Logf("lone batch: %s", answers[together])
	if answers[together].status != http.StatusAccepted {
		t.Errorf("the lone batch at the documented maximum was not accepted: %s", answers[together])
	}

	want := map[string]bool{}
	for k, a := range answers {
		if a.status == http.StatusAccepted {
			for n := range lines {
				want[fmt.Sprintf("%d:%d", k, n)] = true
			}
		}
	}
	if len(want) > 0 {
		got := awaitPayloads(sub, want, func(msg mosquitto.Msg) string {
			k, rest, _ := strings.Cut(string(msg.Payload), ":")
			n, _, _ := strings.Cut(rest, ":")
			return k + ":" + n
		}, 90*time.Second)
		t.Logf("delivered %d of %d accepted messages", got, len(want))
		if got != len(want) {
			t.Errorf("%d of %d messages answered 202 were not delivered (status %s)", len(want)-got, len(want), m.rawStatus())
		}
	}
	m.assertSurvived(t, "3 concurrent NDJSON batches at the maximum, then one alone")
}

// b. 150 concurrent 256 KiB raw publishes: each 202 or 503 with Retry-After; all 202'd delivered.
func attackPublishes(t *testing.T) {
	const (
		n    = 150
		size = 256 << 10
	)
	b, m := startAttack(t, "")
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "attack/pub/#")

	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := bytes.Repeat([]byte{'p'}, size)
			copy(payload, fmt.Sprintf("%d:", i))
			<-start
			answers[i] = m.post("/v1/publish?topic=attack/pub/"+strconv.Itoa(i), "application/octet-stream", payload, 60*time.Second)
		}()
	}
	close(start)
	wg.Wait()
	counts := map[string]int{}
	want := map[string]bool{}
	var errs []error
	for i, a := range answers {
		counts[a.shortString()]++
		if err := acceptedOrBusy(a); err != nil {
			errs = append(errs, fmt.Errorf("publish %d: %w", i, err))
		}
		if a.status == http.StatusAccepted {
			want["attack/pub/"+strconv.Itoa(i)] = true
		}
	}
	t.Logf("%d concurrent %d-byte publishes: %v", n, size, counts)
	reportErrors(t, errs)
	if m.alive() && len(want) > 0 {
		got := awaitPayloads(sub, want, func(msg mosquitto.Msg) string {
			if len(msg.Payload) != size || !strings.HasPrefix(string(msg.Payload), strings.TrimPrefix(msg.Topic, "attack/pub/")+":") {
				return ""
			}
			return msg.Topic
		}, 60*time.Second)
		t.Logf("delivered %d of %d accepted", got, len(want))
		if got != len(want) {
			t.Errorf("%d of %d publishes answered 202 were not delivered intact", len(want)-got, len(want))
		}
	}
	m.assertSurvived(t, "150 concurrent 256 KiB publishes")
}

// reportErrors fails the test with the number of errs and the first few of them.
func reportErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if i == 3 {
			t.Errorf("… %d failures in all", len(errs))
			break
		}
		t.Error(err)
	}
}

func (a answer) shortString() string {
	switch {
	case a.err != nil:
		return "no answer"
	case a.retryAfter != "":
		return fmt.Sprintf("%d Retry-After", a.status)
	}
	return strconv.Itoa(a.status)
}

// deadLetterPage is one page of GET /v1/deadletters as the tests read it.
type deadLetterPage struct {
	DeadLetters []struct {
		ID            uint64  `json:"id"`
		Topic         string  `json:"topic"`
		Payload       *string `json:"payload"`
		PayloadBase64 *string `json:"payload_base64"`
		Reason        string  `json:"reason"`
	} `json:"dead_letters"`
	Total     int     `json:"total"`
	NextAfter *uint64 `json:"next_after"`
}

// maxDeadLetterPageBytes is the largest page of GET /v1/deadletters the tests accept: "paged by bytes,
// a page ≤ ~1–2 MiB".
const maxDeadLetterPageBytes = 2 << 20

// deadLetter is what walkDeadLetters keeps of one entry.
type deadLetter struct {
	Topic  string
	Size   int
	Sum    [sha256.Size]byte // of the payload
	Reason string
}

// walkDeadLetters reads every page of GET /v1/deadletters, following next_after (or, if the answer has
// none, the last id of the page), and returns the entries by id, the number of pages and the largest
// page in bytes. A 503 with Retry-After is waited out. A page over maxDeadLetterPageBytes is an error.
func walkDeadLetters(c *http.Client) (map[uint64]deadLetter, int, int, error) {
	all := map[uint64]deadLetter{}
	var after uint64
	pages, largest, busy := 0, 0, 0
	for pages < 1000 {
		a := do(c, http.MethodGet, fmt.Sprintf("/v1/deadletters?after=%d", after), "", nil)
		if a.err == nil && a.status == http.StatusServiceUnavailable && a.retryAfter != "" && busy < 100 {
			busy++
			secs, _ := strconv.Atoi(a.retryAfter)
			time.Sleep(min(time.Duration(max(secs, 0))*time.Second, time.Second) + 50*time.Millisecond)
			continue
		}
		if a.err != nil || a.status != http.StatusOK {
			return all, pages, largest, fmt.Errorf("GET /v1/deadletters?after=%d (page %d): %s", after, pages+1, a)
		}
		pages++
		largest = max(largest, len(a.body))
		if len(a.body) > maxDeadLetterPageBytes {
			return all, pages, largest, fmt.Errorf("page %d (after=%d) is %s: not paged by bytes (want ≤ %s)",
				pages, after, mib(int64(len(a.body))), mib(maxDeadLetterPageBytes))
		}
		var p deadLetterPage
		if err := json.Unmarshal([]byte(a.body), &p); err != nil {
			return all, pages, largest, fmt.Errorf("page %d: %w", pages, err)
		}
		if len(p.DeadLetters) == 0 {
			return all, pages, largest, nil
		}
		for _, d := range p.DeadLetters {
			var payload []byte
			switch {
			case d.PayloadBase64 != nil:
				b, err := base64.StdEncoding.DecodeString(*d.PayloadBase64)
				if err != nil {
					return all, pages, largest, fmt.Errorf("dead letter %d: %w", d.ID, err)
				}
				payload = b
			case d.Payload != nil:
				payload = []byte(*d.Payload)
			}
			all[d.ID] = deadLetter{Topic: d.Topic, Size: len(payload), Sum: sha256.Sum256(payload), Reason: d.Reason}
		}
		next := p.DeadLetters[len(p.DeadLetters)-1].ID
		if p.NextAfter != nil {
			if *p.NextAfter == 0 {
				return all, pages, largest, nil // no further page
			}
			next = *p.NextAfter
		}
		if next <= after {
			return all, pages, largest, fmt.Errorf("page %d: next_after %d does not move past after=%d", pages, next, after)
		}
		after = next
	}
	return all, pages, largest, fmt.Errorf("more than %d pages", pages)
}

// c. 100 dead letters of 250 KiB (binary, so base64 in the listing), listed again and again and
// concurrently: every page ≤ 2 MiB, every dead letter reachable, the agent under 64 MiB.
func attackDeadLetters(t *testing.T) {
	const (
		n    = 100
		size = 250 << 10
	)
	acl := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(acl, []byte("topic deny attack/dead/#\ntopic readwrite #\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, m := startAttack(t, "", mosquitto.WithConfig("acl_file "+acl))
	c := m.client(60 * time.Second)
	payloadFor := func(i int) []byte {
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(i*31 + j*7)
		}
		p[0], p[1] = byte(i), 0xff // never valid UTF-8
		return p
	}
	sums := make([][sha256.Size]byte, n)
	for i := range sums {
		sums[i] = sha256.Sum256(payloadFor(i))
	}
	for i := 0; i < n; i++ {
		a := do(c, http.MethodPost, "/v1/publish?topic=attack/dead/"+strconv.Itoa(i), "application/octet-stream", bytes.NewReader(payloadFor(i)))
		if a.status == http.StatusServiceUnavailable && a.retryAfter != "" {
			time.Sleep(200 * time.Millisecond)
			i--
			continue
		}
		if a.status != http.StatusAccepted {
			m.assertSurvived(t, "publishing the poison messages")
			t.Fatalf("publish %d: %s", i, a)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := m.statusNumber("queue.dead_letters")
		if err == nil && d == n {
			break
		}
		if time.Now().After(deadline) || !m.alive() {
			m.assertSurvived(t, "dead-lettering")
			t.Fatalf("%v dead letters after 60s (want %d): %v; status %s", d, n, err, m.rawStatus())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("memory once %d dead letters of %d bytes are stored: %s", n, size, m.figures())

	check := func(who string, all map[uint64]deadLetter, pages, largest int, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", who, err)
			return
		}
		topics := map[string]bool{}
		for id, d := range all {
			i, err := strconv.Atoi(strings.TrimPrefix(d.Topic, "attack/dead/"))
			if err != nil || i < 0 || i >= n || d.Sum != sums[i] {
				t.Errorf("%s: dead letter %d (%q) has the wrong payload (%d bytes)", who, id, d.Topic, d.Size)
				continue
			}
			topics[d.Topic] = true
		}
		if len(topics) != n {
			t.Errorf("%s: %d of %d dead letters reachable through %d pages", who, len(topics), n, pages)
		}
	}
	for round := range 2 {
		start := time.Now()
		all, pages, largest, err := walkDeadLetters(c)
		t.Logf("listing %d: %d dead letters in %d pages, largest page %s, in %s, err %v", round+1, len(all), pages, mib(int64(largest)), time.Since(start).Round(time.Millisecond), err)
		check(fmt.Sprintf("listing %d", round+1), all, pages, largest, err)
		for _, d := range all {
			if round == 0 {
				t.Logf("dead-letter reason of a message the broker refused: %q", d.Reason)
			}
			break
		}
		m.failIfDown(t, fmt.Sprintf("listing %d of 100 dead letters of 250 KiB", round+1))
	}
	const walkers = 3
	var wg sync.WaitGroup
	for w := range walkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			all, pages, largest, err := walkDeadLetters(c)
			t.Logf("concurrent listing %d: %d dead letters in %d pages, largest page %s, err %v", w+1, len(all), pages, mib(int64(largest)), err)
			check(fmt.Sprintf("concurrent listing %d", w+1), all, pages, largest, err)
		}()
	}
	wg.Wait()
	m.assertSurvived(t, "100 dead letters of 250 KiB listed twice, then 3 times concurrently")
}

// stallResult is what one stalled upload saw.
type stallResult struct {
	dialErr  error
	closedIn time.Duration // from the stall (last byte written) to the server closing the connection
	closed   bool          // the server closed it (EOF or reset) before our read deadline
	answer   string        // the first bytes the server sent back, if any
}

// d. 4,000 stalled uploads (headers announcing 256 KiB, 4 bytes of body, then nothing): memory stays
// bounded, a fresh client still gets GET /v1/status answered (maybe after a few 503s), and every stalled
// connection is closed by the server within api.read_timeout (2 s here) plus slack.
func attackStalledUploads(t *testing.T) {
	const (
		stalls      = 4000
		readTimeout = 2 * time.Second
		slack       = 8 * time.Second
		openers     = 8
	)
	_, m := startAttack(t, fmt.Sprintf("[api]\nread_timeout = %q\n", readTimeout.String()))
	results := make([]stallResult, stalls)
	var readers sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		conns.Range(func(_, c any) bool { c.(net.Conn).Close(); return true })
		readers.Wait()
	})
	req := []byte("POST /v1/publish?topic=attack/stall HTTP/1.1\r\nHost: agent\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Length: 262144\r\n\r\nabcd")
	var openWG sync.WaitGroup
	openStart := time.Now()
	for o := range openers {
		openWG.Add(1)
		go func() {
			defer openWG.Done()
			for i := o; i < stalls; i += openers {
				r := &results[i]
				c, err := net.DialTimeout("unix", m.sock, 2*time.Second)
				if err != nil {
					r.dialErr = err
					continue
				}
				conns.Store(i, c)
				if _, err := c.Write(req); err != nil {
					r.closed, r.answer = true, "write: "+err.Error()
					c.Close()
					continue
				}
				stalledAt := time.Now()
				readers.Add(1)
				go func() {
					defer readers.Done()
					defer c.Close()
					c.SetReadDeadline(stalledAt.Add(readTimeout + slack))
					var first bytes.Buffer
					_, err := io.Copy(&first, io.LimitReader(c, 1<<20))
					r.closedIn = time.Since(stalledAt)
					r.closed = err == nil || !isTimeout(err)
					line, _, _ := strings.Cut(first.String(), "\r\n")
					r.answer = line
				}()
			}
		}()
	}
	openWG.Wait()
	opened := time.Since(openStart)
	during := m.figures()

	// A fresh client while the stalls are held: may be refused with 503, must get through.
	probeStart := time.Now()
	probes, refused := 0, 0
	var ok bool
	c := m.client(5 * time.Second)
	for time.Since(probeStart) < readTimeout+slack && m.alive() {
		probes++
		a := do(c, http.MethodGet, "/v1/status", "", nil)
		if a.err == nil && a.status == http.StatusOK {
			ok = true
			break
		}
		refused++
		time.Sleep(50 * time.Millisecond)
	}
	recovered := time.Since(probeStart)
	readers.Wait()

	dialFailed, closed, open := 0, 0, 0
	var worst time.Duration
	answers := map[string]int{}
	for _, r := range results {
		switch {
		case r.dialErr != nil:
			dialFailed++
		case r.closed:
			closed++
			worst = max(worst, r.closedIn)
			answers[r.answer]++
		default:
			open++
		}
	}
	t.Logf("%d stalled uploads: opened in %s, %d refused at connect; %d closed by the server (the last %s after its stall), %d still open after %s; answers %v",
		stalls, opened.Round(time.Millisecond), dialFailed, closed, worst.Round(time.Millisecond), open, readTimeout+slack, answers)
	t.Logf("fresh GET /v1/status while stalled: ok=%v after %d tries (%d refused), %s", ok, probes, refused, recovered.Round(time.Millisecond))
	t.Logf("memory while %d uploads stalled: %s", stalls-dialFailed, during)
	m.failIfDown(t, "4,000 stalled uploads")
	if stalls-dialFailed < 64 {
		t.Errorf("only %d stalled connections were established: the attack proved nothing", stalls-dialFailed)
	}
	if !ok {
		t.Errorf("a fresh client got no GET /v1/status answer within %s while uploads were stalled", readTimeout+slack)
	}
	if open > 0 {
		t.Errorf("%d stalled uploads were still open %s after they stalled (api.read_timeout %s)", open, readTimeout+slack, readTimeout)
	}
	m.assertSurvived(t, "4,000 stalled uploads")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// e. Three local subscribers that never read while 48 KiB messages arrive from the broker, many times
// what any per-subscriber buffer holds: memory stays bounded and the drops are counted in /metrics and
// /v1/status.
func attackSlowSubscribers(t *testing.T) {
	const (
		subscribers = 3
		n           = 1500
		size        = 48 << 10
		topic       = "attack/slow/x"
	)
	// Mosquitto's WebSocket listener sends large messages slowly (a few 48 KiB messages a second, its
	// libwebsockets write path: eclipse-mosquitto/mosquitto#1390, #2252), so this flood comes from the
	// in-process broker, through its plain TCP listener, to the agent on its WebSocket listener.
	db, err := devbroker.Start(devbroker.Options{TCPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m := startMemAgent(t, db.URL(), memOptions{})
	m.waitState(15*time.Second, "connected", connected)
	for range subscribers {
		rawSubscribe(t, m, "attack/slow/#") // and never read again
	}
	received0, _ := m.statusNumber("received")
	err = mqttFlood(db.TCPAddr(), topic, n, func(i int) []byte {
		p := bytes.Repeat([]byte{'s'}, size)
		copy(p, strconv.Itoa(i)+":")
		return p
	})
	if err != nil {
		m.assertSurvived(t, "slow subscribers")
		t.Fatalf("flooding the broker: %v", err)
	}
	// Wait until the agent has taken in every message, or its count stands still for 3 s (a transport
	// that drops before the fan-out counts those drops in the same series).
	var received float64
	last, lastChange := -1.0, time.Now()
	for deadline := time.Now().Add(60 * time.Second); ; {
		received, err = m.statusNumber("received")
		received -= received0
		if err == nil && received >= n {
			break
		}
		if received != last {
			last, lastChange = received, time.Now()
		}
		if time.Since(lastChange) > 3*time.Second || time.Now().After(deadline) || !m.alive() {
			m.failIfDown(t, "3 slow subscribers, 1,500 messages of 48 KiB")
			t.Logf("the agent took in %v of %d messages (err %v); the rest must be counted as dropped", received, n, err)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let the last dispatches settle
	metric, inMetrics, merr := m.metricSum("edge_agent_inbound_dropped_total")
	st, serr := m.statusJSON()
	inStatus, foundStatus := sumKey(st, "inbound_dropped")
	t.Logf("3 subscribers that never read, %d messages of %d bytes: received %v; dropped: /metrics %v (series found %v, err %v), status inbound_dropped %v (found %v, err %v)",
		n, size, received, metric, inMetrics, merr, inStatus, foundStatus, serr)
	// Each subscriber's buffer (api.subscriber_buffer, 1 MiB) holds ~21 of these messages and the socket
	// a few more: of every message the agent took in, each subscriber must have dropped (and counted) all
	// but at most 200; a message dropped before the fan-out counts once, for all three.
	minDrops := float64(subscribers)*(received-200) + (n - received)
	if received < 400 {
		t.Errorf("the agent took in only %v of %d messages: the attack proved nothing", received, n)
	}
	switch {
	case !inMetrics:
		t.Errorf("/metrics has no edge_agent_inbound_dropped_total series")
	case metric < minDrops:
		t.Errorf("/metrics counts %v inbound drops, want ≥ %v (3 subscribers × (%v messages − at most 200 buffered))", metric, minDrops, received)
	}
	switch {
	case !foundStatus:
		t.Errorf("/v1/status has no inbound_dropped")
	case inStatus < minDrops:
		t.Errorf("/v1/status inbound_dropped is %v, want ≥ %v", inStatus, minDrops)
	}

	// Inbound still works: a subscriber that reads gets the next message.
	fresh, br := rawSubscribe(t, m, "attack/slow/after")
	if err := mqttFlood(db.TCPAddr(), "attack/slow/after", 1, func(int) []byte { return []byte("after") }); err != nil {
		t.Fatal(err)
	}
	fresh.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := readStreamLine(br); err != nil || !strings.Contains(l, `"after"`) {
		t.Errorf("a fresh subscriber after the flood got %q, %v", l, err)
	}
	m.assertSurvived(t, "3 slow subscribers, 1,500 messages of 48 KiB")
}

// rawSubscribe opens GET /v1/subscribe?topic=filter on its own connection and returns once the stream's
// headers (200) arrived; t.Cleanup closes it.
func rawSubscribe(t *testing.T, m *memAgent, filter string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("unix", m.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /v1/subscribe?topic=%s HTTP/1.1\r\nHost: agent\r\n\r\n", url.QueryEscape(filter))
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		m.failIfDown(t, "subscribing")
		t.Fatalf("GET /v1/subscribe?topic=%s: %v %v", filter, resp, err)
	}
	conn.SetReadDeadline(time.Time{})
	return conn, br
}

// readStreamLine reads the next NDJSON line of a chunked subscriber stream read raw (chunk-size lines
// and blank lines are skipped).
func readStreamLine(br *bufio.Reader) (string, error) {
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return l, err
		}
		if strings.HasPrefix(l, "{") {
			return l, nil
		}
	}
}

// f. Items 8 and 9 through the real binary: a ';' in the query string, invalid UTF-8 inside an NDJSON
// "payload" string and a lone surrogate escape are 400 (naming the line), and nothing is stored.
func attackParams(t *testing.T) {
	_, m := startAttack(t, "")
	c := m.client(15 * time.Second)
	accepted0, err := m.statusNumber("accepted")
	if err != nil {
		t.Fatal(err)
	}
	good := `{"topic":"attack/params","payload":"fine"}` + "\n"
	for _, tc := range []struct {
		name, target, ctype, body, line string
	}{
		{"semicolon", "/v1/publish?topic=attack/params&qos=0;", "text/plain", "x", ""},
		{"semicolon-mid", "/v1/publish?topic=attack/params;qos=0", "text/plain", "x", ""},
		{"invalid-utf8", "/v1/publish", "application/x-ndjson", good + "{\"topic\":\"attack/params\",\"payload\":\"ab\xff\xfecd\"}\n", "line 2"},
		{"lone-surrogate", "/v1/publish", "application/x-ndjson", good + good + `{"topic":"attack/params","payload":"x\ud800y"}` + "\n", "line 3"},
		{"lone-low-surrogate", "/v1/publish", "application/x-ndjson", `{"topic":"attack/params","payload":"\udc00"}` + "\n", "line 1"},
	} {
		a := do(c, http.MethodPost, tc.target, tc.ctype, strings.NewReader(tc.body))
		t.Logf("%s: %s", tc.name, a)
		if a.status != http.StatusBadRequest {
			t.Errorf("%s: want 400, got %s", tc.name, a)
		} else if tc.line != "" && !strings.Contains(a.body, tc.line) {
			t.Errorf("%s: the 400 does not name %s: %s", tc.name, tc.line, a.body)
		}
	}
	if accepted, err := m.statusNumber("accepted"); err != nil || accepted != accepted0 {
		t.Errorf("messages were stored by rejected requests: accepted %v → %v (%v)", accepted0, accepted, err)
	}
	// A valid surrogate pair is not a lone surrogate: accepted.
	if a := do(c, http.MethodPost, "/v1/publish", "application/x-ndjson", strings.NewReader(`{"topic":"attack/params","payload":"\ud83d\ude00"}`+"\n")); a.status != http.StatusAccepted {
		t.Errorf("a valid surrogate pair: want 202, got %s", a)
	}
	m.assertSurvived(t, "bad query strings and NDJSON payloads")
}

// g. Item 1 through the real binary: topics the broker would refuse (control characters, noncharacters)
// are 400 at the socket, raw and NDJSON, and nothing is queued.
func attackTopics(t *testing.T) {
	_, m := startAttack(t, "")
	c := m.client(15 * time.Second)
	accepted0, err := m.statusNumber("accepted")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []rune{0x0001, 0x007F, 0x0085, 0xFFFF, 0xFDD0} {
		topic := "attack/topic/a" + string(r) + "b"
		a := do(c, http.MethodPost, "/v1/publish?topic="+url.QueryEscape(topic), "text/plain", strings.NewReader("x"))
		if a.status != http.StatusBadRequest {
			t.Errorf("raw publish to a topic with U+%04X: want 400, got %s", r, a)
		}
		line, _ := json.Marshal(map[string]string{"topic": topic, "payload": "x"})
		a2 := do(c, http.MethodPost, "/v1/publish", "application/x-ndjson", bytes.NewReader(append(line, '\n')))
		if a2.status != http.StatusBadRequest || !strings.Contains(a2.body, "line 1") {
			t.Errorf("NDJSON publish to a topic with U+%04X: want 400 naming line 1, got %s", r, a2)
		}
		t.Logf("U+%04X: raw %s; NDJSON %s", r, a.shortString(), a2.shortString())
	}
	accepted, err := m.statusNumber("accepted")
	if err != nil || accepted != accepted0 {
		t.Errorf("topics the broker refuses were queued: accepted %v → %v (%v)", accepted0, accepted, err)
	}
	if a := do(c, http.MethodPost, "/v1/publish?topic="+url.QueryEscape("attack/topic/température"), "text/plain", strings.NewReader("x")); a.status != http.StatusAccepted {
		t.Errorf("an ordinary non-ASCII topic: want 202, got %s", a)
	}
	m.assertSurvived(t, "topics with control characters and noncharacters")
}

// mqttFlood publishes n messages (payload(i)) to topic through a plain MQTT 3.1.1 connection to addr
// at QoS 1, at most 32 unacknowledged, and returns once the broker acknowledged every one.
func mqttFlood(addr, topic string, n int, payload func(i int) []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(90 * time.Second))
	var vh bytes.Buffer
	vh.Write([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60}) // MQTT 3.1.1, clean session, keepalive 60 s
	vh.Write(mqttwire.String(fmt.Sprintf("edge-agent-e2e-flood-%d", time.Now().UnixNano())))
	if _, err := c.Write(mqttwire.Packet(0x10, vh.Bytes())); err != nil {
		return err
	}
	connack := make([]byte, 4)
	if _, err := io.ReadFull(c, connack); err != nil {
		return fmt.Errorf("CONNACK: %w", err)
	}
	if connack[0] != 0x20 || connack[3] != 0 {
		return fmt.Errorf("CONNACK % x", connack)
	}
	window := make(chan struct{}, 32)
	acked := make(chan error, 1)
	go func() {
		buf := make([]byte, 4)
		for range n {
			if _, err := io.ReadFull(c, buf); err != nil {
				acked <- fmt.Errorf("PUBACK: %w", err)
				return
			}
			if buf[0] != 0x40 || buf[1] != 2 {
				acked <- fmt.Errorf("want PUBACK, got % x", buf)
				return
			}
			<-window
		}
		acked <- nil
	}()
	fail := func(err error) error {
		c.Close()
		<-acked
		return err
	}
	for i := range n {
		select {
		case window <- struct{}{}:
		case err := <-acked:
			return fmt.Errorf("after %d messages: %v", i, err)
		}
		var p bytes.Buffer
		p.Write(mqttwire.String(topic))
		id := uint16(i%65535 + 1)
		p.Write([]byte{byte(id >> 8), byte(id)})
		p.Write(payload(i))
		if _, err := c.Write(mqttwire.Packet(0x32, p.Bytes())); err != nil {
			return fail(err)
		}
	}
	if err := <-acked; err != nil {
		return err
	}
	_, err = c.Write(mqttwire.Packet(0xe0, nil)) // DISCONNECT
	return err
}
