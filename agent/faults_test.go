package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
	"github.com/edge-agent/edge-agent/queue"
)

// A message the broker refuses (PUBACK 0x87 not authorised, from a real Mosquitto ACL) goes to the
// dead-letter store with the reason and does not block the messages behind it; it can be listed,
// requeued and deleted through the API.
func TestPoisonMessageDeadLettered(t *testing.T) {
	aclDir := t.TempDir()
	acl := filepath.Join(aclDir, "acl")
	os.WriteFile(acl, []byte("topic deny forbidden/#\ntopic readwrite #\n"), 0o644)
	b := mosquitto.Start(t, mosquitto.WithConfig("acl_file "+acl))
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "ok/#")
	ta := startAgent(t, b.WSURL(), "")
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

	var body strings.Builder
	body.WriteString(`{"topic":"ok/n","payload":"1"}` + "\n")
	body.WriteString(`{"topic":"forbidden/x","payload":"poison"}` + "\n")
	body.WriteString(`{"topic":"ok/n","payload":"2"}` + "\n")
	if r := ta.do("POST", "/v1/publish", "application/x-ndjson", []byte(body.String())); r.status != 202 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	msgs, err := sub.WaitDistinct(2, 15*time.Second)
	if err != nil {
		t.Fatalf("the refused message blocked the queue: %v\n%s", err, ta.logs)
	}
	assertInOrder(t, msgs, 2)
	testutil.WaitFor(t, 10*time.Second, "the dead letter", func() bool {
		st := ta.status()
		return st.Queue.DeadLetters == 1 && st.Queue.Depth == 0
	})
	st := ta.status()
	if st.Rejected != 1 || st.Queue.DeadLettered != 1 {
		t.Fatalf("status %+v", st)
	}
	r := ta.do("GET", "/v1/deadletters", "", nil)
	var list struct {
		DeadLetters []localapi.DeadLetter `json:"dead_letters"`
		Total       int                   `json:"total"`
	}
	if err := json.Unmarshal([]byte(r.raw), &list); err != nil || r.status != 200 || list.Total != 1 || len(list.DeadLetters) != 1 {
		t.Fatalf("list: %d %s (%v)", r.status, r.raw, err)
	}
	dl := list.DeadLetters[0]
	if dl.Topic != "forbidden/x" || dl.Payload == nil || *dl.Payload != "poison" || !strings.Contains(strings.ToLower(dl.Reason), "not authori") {
		t.Fatalf("dead letter %+v", dl)
	}
	t.Logf("dead letter %d: %s", dl.ID, dl.Reason)
	m := ta.do("GET", "/metrics", "", nil)
	if !strings.Contains(m.raw, "edge_agent_dead_letters 1") || !strings.Contains(m.raw, "edge_agent_dead_lettered_total 1") {
		t.Fatalf("metrics:\n%s", m.raw)
	}
	// wait=delivered on a refused message answers 502 with the reason.
	r = ta.do("POST", "/v1/publish?topic=forbidden/y&wait=delivered&timeout=10s", "", []byte("p2"))
	if r.status != http.StatusBadGateway || !strings.Contains(r.raw, "dead-letter") {
		t.Fatalf("wait=delivered on a refused message: %d %s", r.status, r.raw)
	}
	// Requeue an unknown id: 404, nothing moved. Requeue the real one: it is refused again.
	if r := ta.do("POST", "/v1/deadletters/requeue?id=999999", "", nil); r.status != 404 {
		t.Fatalf("requeue unknown: %d %s", r.status, r.raw)
	}
	r = ta.do("POST", fmt.Sprintf("/v1/deadletters/requeue?id=%d", dl.ID), "", nil)
	if r.status != 200 || r.body["requeued"] != float64(1) {
		t.Fatalf("requeue: %d %s", r.status, r.raw)
	}
	testutil.WaitFor(t, 10*time.Second, "the requeued message to be refused again", func() bool {
		st := ta.status()
		return st.Queue.DeadLettered == 3 && st.Queue.DeadLetters == 2
	})
	// Delete all.
	r = ta.do("DELETE", "/v1/deadletters?all=1", "", nil)
	if r.status != 200 || r.body["deleted"] != float64(2) {
		t.Fatalf("delete all: %d %s", r.status, r.raw)
	}
	if n := ta.status().Queue.DeadLetters; n != 0 {
		t.Fatalf("dead letters after delete: %d", n)
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/deadletters/requeue"}, {"DELETE", "/v1/deadletters?id=x"}, {"GET", "/v1/deadletters?limit=0"},
		{"DELETE", "/v1/deadletters?id=1&all=1"},
	} {
		if r := ta.do(c.method, c.path, "", nil); r.status != 400 {
			t.Errorf("%s %s: %d %s, want 400", c.method, c.path, r.status, r.raw)
		}
	}
}

// A damaged queue file is detected at start, moved aside as <name>.corrupt-<timestamp>, a fresh queue
// is started, and the log, status and metrics say so. The agent keeps serving.
func TestCorruptQueueMovedAside(t *testing.T) {
	b := mosquitto.Start(t)
	state := t.TempDir()
	garbage := bytes.Repeat([]byte("this is not a bbolt file "), 2000)
	qpath := filepath.Join(state, QueueFile)
	if err := os.WriteFile(qpath, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	ta := startAgentAt(t, b.WSURL(), "", state, testutil.SocketPath(t, "agent.sock"))
	st := ta.status()
	if st.Queue.Recovered == nil || !strings.HasPrefix(st.Queue.Recovered.MovedTo, qpath+".corrupt-") {
		t.Fatalf("status.queue.recovered = %+v", st.Queue.Recovered)
	}
	moved, err := os.ReadFile(st.Queue.Recovered.MovedTo)
	if err != nil || !bytes.Equal(moved, garbage) {
		t.Fatalf("the damaged file was not kept as it was: %v", err)
	}
	if !strings.Contains(ta.logs.String(), "queue database was damaged") {
		t.Fatalf("log does not say so:\n%s", ta.logs)
	}
	// Not a bbolt file: nothing to salvage, and the status says so.
	sr := ta.do("GET", "/v1/status", "", nil)
	qj, _ := sr.body["queue"].(map[string]any)
	rj, _ := qj["recovered"].(map[string]any)
	if salvaged, ok := rj["salvaged"]; !ok || salvaged != float64(0) || rj["salvage_error"] == "" || rj["salvage_error"] == nil {
		t.Fatalf("status.queue.recovered salvage fields: %s", sr.raw)
	}
	if m := ta.do("GET", "/metrics", "", nil); !strings.Contains(m.raw, "edge_agent_queue_recovered 1") {
		t.Fatalf("metrics:\n%s", m.raw)
	}
	if r := ta.publish("after/corrupt", "works"); r.status != 202 {
		t.Fatalf("publish after recovery: %d %s", r.status, r.raw)
	}
	t.Logf("recovered: %+v", *st.Queue.Recovered)
}

// max_age and ttl: messages that wait too long are dropped before sending, and counted.
func TestExpiredMessagesDroppedAndCounted(t *testing.T) {
	b, proxy, url := proxiedBroker(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "exp/#")
	proxy.Cut()
	ta := startAgent(t, url, "[queue]\nmax_age = \"2s\"\n")
	// Both old: one by max_age, one by its own ttl.
	if r := ta.publish("exp/old", "a"); r.status != 202 {
		t.Fatal(r.raw)
	}
	if r := ta.do("POST", "/v1/publish?topic=exp/ttl&ttl=500ms", "", []byte("b")); r.status != 202 {
		t.Fatal(r.raw)
	}
	time.Sleep(2200 * time.Millisecond)
	if r := ta.publish("exp/fresh", "c"); r.status != 202 {
		t.Fatal(r.raw)
	}
	proxy.Restore()
	if _, err := sub.WaitCount(1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "expired counted and queue empty", func() bool {
		st := ta.status()
		return st.Queue.Expired == 2 && st.Queue.Depth == 0
	})
	time.Sleep(300 * time.Millisecond) // nothing else may arrive
	msgs := sub.Messages()
	if len(msgs) != 1 || msgs[0].Topic != "exp/fresh" {
		t.Fatalf("delivered %v, want only exp/fresh", msgs)
	}
	if m := ta.do("GET", "/metrics", "", nil); !strings.Contains(m.raw, "edge_agent_queue_expired_total 2") {
		t.Fatalf("metrics:\n%s", m.raw)
	}
	if r := ta.do("POST", "/v1/publish?topic=x&ttl=soon", "", nil); r.status != 400 {
		t.Fatalf("bad ttl: %d %s", r.status, r.raw)
	}
}

// Full disk: on a tiny tmpfs, publishes get 507 with a clear message, the database stays valid, and the
// agent recovers by itself once space is back. Needs root (mount); CI runs as root.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestDiskFull mounts a tmpfs and needs root: run the suite as root (scripts/test.sh does in CI)")
	}
	state := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", state).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", state).Run() })
	// A filler file we can delete later to make room.
	filler := filepath.Join(state, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	_, proxy, url := proxiedBroker(t)
	proxy.Cut() // offline: nothing drains, the queue only grows
	ta := startAgentAt(t, url, "[api]\nmax_payload = \"64KiB\"\n", state, testutil.SocketPath(t, "agent.sock"))
	payload := strings.Repeat("d", 16<<10)
	accepted, full := 0, false
	for i := 0; i < 400 && !full; i++ {
		r := ta.publish("disk/n", payload)
		switch r.status {
		case 202:
			accepted++
		case http.StatusInsufficientStorage:
			if !strings.Contains(r.raw, "disk full") {
				t.Fatalf("507 without a clear message: %s", r.raw)
			}
			full = true
			t.Logf("disk full after %d messages: %s", accepted, r.raw)
		default:
			t.Fatalf("publish %d: %d %s", i, r.status, r.raw)
		}
	}
	if !full {
		t.Fatal("the 3 MiB filesystem never filled up")
	}
	if d := ta.status().Queue.Depth; d != accepted {
		t.Fatalf("depth %d, want %d: a 507 must store nothing", d, accepted)
	}
	// Space comes back: the agent recovers by itself, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if r := ta.publish("disk/n", payload); r.status != 202 {
		t.Fatalf("after freeing space: %d %s", r.status, r.raw)
	}
	accepted++
	ta.stop()
	// The database is valid and holds exactly what was acknowledged.
	q, err := queue.Open(filepath.Join(state, QueueFile), queue.Options{})
	if err != nil {
		t.Fatalf("database not valid after the disk-full episode: %v", err)
	}
	defer q.Close()
	if d := q.Stats().Depth; d != accepted {
		t.Fatalf("reopened depth %d, want %d", d, accepted)
	}
}
