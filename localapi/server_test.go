package localapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/topic"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memBackend is a Backend that keeps messages in memory: enough to test the HTTP layer alone.
// Its brokers (none: one broker named "default" that takes every topic) route as the agent does:
// by their publish filters, or to the one named. It records what the server asked of it.
type memBackend struct {
	brokers []memBroker

	mu       sync.Mutex
	stored   []queue.Message
	to       []queue.Targets
	calls    []string // "Route a/b plant", "Requeue plant [1 2]", …
	waitedTo queue.Targets
	dead     []DeadLetterOf // in id order
	inbound  []memInbound   // what a Subscription streams
}

type memBroker struct {
	name    string
	publish []string // empty: every topic
}

// memInbound is a message from broker, streamed by a memBackend's Subscription.
type memInbound struct{ broker, topic, payload string }

func (b *memBackend) brokerList() []memBroker {
	if len(b.brokers) == 0 {
		return []memBroker{{name: "default"}}
	}
	return b.brokers
}

func (b *memBackend) record(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf(format, args...))
}

func (b *memBackend) called() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// lane is the index of the broker named name, or an ErrBadInput error naming the brokers.
func (b *memBackend) lane(name string) (int, error) {
	var names []string
	for i, br := range b.brokerList() {
		if br.name == name {
			return i, nil
		}
		names = append(names, br.name)
	}
	return 0, Mark(fmt.Errorf("no broker named %q (brokers: %s)", name, strings.Join(names, ", ")), ErrBadInput)
}

func (b *memBackend) Route(t, broker string) (queue.Targets, error) {
	b.record("Route %s %s", t, broker)
	if err := topic.Validate(t); err != nil {
		return 0, Mark(err, ErrBadInput)
	}
	if broker != "" {
		i, err := b.lane(broker)
		return queue.Lane(i), err
	}
	var to queue.Targets
	var routes []string
	for i, br := range b.brokerList() {
		fs, _ := topic.ParseFilters(br.publish)
		if len(fs) == 0 || topic.MatchAny(fs, t) {
			to |= queue.Lane(i)
		}
		routes = append(routes, br.name+" "+strings.Join(br.publish, ","))
	}
	if to == 0 {
		return 0, Mark(fmt.Errorf("no broker takes topic %q (routes: %s)", t, strings.Join(routes, "; ")), ErrBadInput)
	}
	return to, nil
}

func (b *memBackend) CheckFilter(f, broker string) error {
	b.record("CheckFilter %s %s", f, broker)
	if broker != "" {
		if _, err := b.lane(broker); err != nil {
			return err
		}
	}
	return topic.ValidateFilter(f)
}

func (b *memBackend) Store(_ context.Context, msgs []queue.Message, to []queue.Targets) ([]uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(msgs) != len(to) {
		return nil, fmt.Errorf("%d messages, %d targets", len(msgs), len(to))
	}
	ids := make([]uint64, len(msgs))
	for i, m := range msgs {
		b.stored = append(b.stored, m)
		b.to = append(b.to, to[i])
		ids[i] = uint64(len(b.stored))
	}
	return ids, nil
}

func (b *memBackend) WaitDelivered(_ context.Context, _ uint64, to queue.Targets) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waitedTo = to
	return nil
}

func (b *memBackend) Subscribe(_ context.Context, filters []string, broker string) (Subscription, error) {
	b.record("Subscribe %s %s", strings.Join(filters, ","), broker)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inbound == nil {
		return nil, Mark(errors.New("no broker in this test"), ErrBusy)
	}
	sub := &memSub{wake: make(chan struct{}, 1)}
	for _, m := range b.inbound {
		if broker == "" || m.broker == broker {
			sub.msgs = append(sub.msgs, m)
		}
	}
	sub.wake <- struct{}{}
	return sub, nil
}

func (b *memBackend) Status() Status {
	st := Status{BrokerStatus: BrokerStatus{State: "connected"}}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.brokers) > 0 {
		for _, br := range b.brokers {
			bs := BrokerStatus{Name: br.name, State: "connected"}
			for _, d := range b.dead {
				if d.Broker == br.name {
					bs.Queue.DeadLetters++
				}
			}
			st.Brokers = append(st.Brokers, bs)
		}
	}
	st.Queue.DeadLetters = len(b.dead)
	return st
}

func (b *memBackend) DeadLetters(broker string, after uint64, n int) ([]DeadLetterOf, error) {
	if broker != "" {
		if _, err := b.lane(broker); err != nil {
			return nil, err
		}
	}
	b.record("DeadLetters %s %d %d", broker, after, n)
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []DeadLetterOf
	for _, d := range b.dead {
		if d.Seq > after && (broker == "" || d.Broker == broker) && len(out) < n {
			out = append(out, d)
		}
	}
	return out, nil
}

func (b *memBackend) Requeue(_ context.Context, broker string, ids ...uint64) ([]uint64, error) {
	b.record("Requeue %s %v", broker, ids)
	if broker == "" && len(b.brokers) > 1 {
		return nil, Mark(errors.New("several brokers: name one with ?broker="), ErrBadInput)
	}
	return ids, nil
}

func (b *memBackend) DeleteDeadLetters(_ context.Context, broker string, ids ...uint64) (int, error) {
	b.record("DeleteDeadLetters %s %v", broker, ids)
	if broker != "" {
		if _, err := b.lane(broker); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

func (b *memBackend) Identity(_ context.Context, broker string) (Identity, error) {
	b.record("Identity %s", broker)
	switch broker {
	case "aws":
		return Identity{IdentityID: "eu-west-1:aws", IdentityPoolID: "eu-west-1:pool"}, nil
	case "", "default":
		return Identity{}, Mark(errors.New("no Cognito identity"), ErrNotFound)
	}
	_, err := b.lane(broker)
	if err == nil {
		err = Mark(fmt.Errorf("broker %q is not aws-iot", broker), ErrNotFound)
	}
	return Identity{}, err
}

// memSub streams its messages once.
type memSub struct {
	wake chan struct{}
	msgs []memInbound
}

func (s *memSub) Wake() <-chan struct{} { return s.wake }
func (s *memSub) Pending() bool         { return false }
func (s *memSub) Close()                {}
func (s *memSub) Drain(write func(broker, topic string, payload []byte, qos byte, retain bool) error) error {
	msgs := s.msgs
	s.msgs = nil
	for _, m := range msgs {
		if err := write(m.broker, m.topic, []byte(m.payload), 1, false); err != nil {
			return err
		}
	}
	return nil
}

// startServer serves a Server in front of b on a real Unix socket and returns it with a Client.
func startServer(t *testing.T, b Backend, access []config.Access, prep func(*Server)) *Client {
	t.Helper()
	sock := testutil.SocketPath(t, "api.sock")
	s, err := New(b, Options{Socket: sock, Access: access, Limits: Limits{
		MaxPayload: 1 << 10, MaxTopicBytes: 256, MaxBatchBytes: 4 << 20, MaxBatchLines: 20000, MaxFilters: 4,
		BodyBudget: 64 << 20, MaxConnections: 8, ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if prep != nil {
		prep(s)
	}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c := NewClient(sock)
	t.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

// The caller's groups are read from /proc once per connection, not per request or per NDJSON line.
func TestGroupsReadOncePerConnection(t *testing.T) {
	uid := 4242
	b := &memBackend{}
	var reads atomic.Int64
	c := startServer(t, b, []config.Access{{UID: &uid, Publish: []string{"a/#"}}}, func(s *Server) {
		s.groupsOf = func(pid int32) []uint32 { reads.Add(1); return procGroups(pid) }
	})
	ctx := context.Background()

	var batch strings.Builder
	for range 10000 {
		batch.WriteString(`{"topic":"a/b","payload":"x"}` + "\n")
	}
	for range 3 { // three requests on the client's one kept-alive connection
		resp, err := c.DoRetry(ctx, http.MethodPost, "/v1/publish", "application/x-ndjson", []byte(batch.String()))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("publish: %s", resp.Status)
		}
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(b.stored); n != 30000 {
		t.Fatalf("stored %d messages, want 30000", n)
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("groups read %d times for 30,000 lines and 4 requests on one connection, want 1", n)
	}
}

// Every route answers a wrong method with 405, Allow and a JSON error; an unknown path with 404.
func TestRoutesMethods(t *testing.T) {
	c := startServer(t, &memBackend{}, nil, nil)
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/v1/publish", 405, "POST"},
		{"POST", "/v1/status", 405, "GET"},
		{"HEAD", "/v1/status", 405, "GET"},
		{"PUT", "/v1/deadletters", 405, "GET, DELETE"},
		{"GET", "/v1/deadletters/requeue", 405, "POST"},
		{"POST", "/v1/identity", 405, "GET"},
		{"GET", "/v1/identity", 404, ""},
		{"GET", "/v1/nothing", 404, ""},
		{"GET", "/v1/status", 200, ""},
		{"GET", "/metrics", 200, ""},
	}
	for _, tc := range cases {
		resp, err := c.Do(context.Background(), tc.method, tc.path, "", nil, -1)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q (%s)", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.status, tc.allow, body)
		}
		if tc.status >= 400 && tc.method != "HEAD" && !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s %s: body %q is not a JSON error", tc.method, tc.path, body)
		}
	}
}
