package localapi

import (
	"context"
	"errors"
	"io"
	"net/http"
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
type memBackend struct {
	mu     sync.Mutex
	stored []queue.Message
}

func (b *memBackend) CheckTopic(t string) error  { return topic.Validate(t) }
func (b *memBackend) CheckFilter(f string) error { return topic.ValidateFilter(f) }
func (b *memBackend) Store(_ context.Context, msgs ...queue.Message) ([]uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]uint64, len(msgs))
	for i, m := range msgs {
		b.stored = append(b.stored, m)
		ids[i] = uint64(len(b.stored))
	}
	return ids, nil
}
func (b *memBackend) WaitDelivered(context.Context, uint64) error { return nil }
func (b *memBackend) Subscribe(context.Context, []string) (Subscription, error) {
	return nil, Mark(errors.New("no broker in this test"), ErrBusy)
}
func (b *memBackend) Status() Status                                       { return Status{State: "connected"} }
func (b *memBackend) DeadLetters(uint64, int) ([]queue.DeadLetter, error)  { return nil, nil }
func (b *memBackend) Requeue(context.Context, ...uint64) ([]uint64, error) { return nil, nil }
func (b *memBackend) DeleteDeadLetters(context.Context, ...uint64) (int, error) {
	return 0, nil
}
func (b *memBackend) Identity(context.Context) (Identity, error) {
	return Identity{}, Mark(errors.New("no Cognito identity"), ErrNotFound)
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
