package transport

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/devbroker"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// fakeSource is an in-memory Source. It records every Ack/Reject and can check, through onAck, that an
// ack happens only after the broker received the message.
type fakeSource struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever msgs or the settled set change
	msgs     []Message
	acked    map[uint64]int
	rejected map[uint64]error // Quarantine
	expired  map[uint64]int   // Expire
	onAck    func(seq uint64) // called under no lock before recording
	nextSeq  uint64
}

func newFakeSource() *fakeSource {
	return &fakeSource{changed: make(chan struct{}), acked: map[uint64]int{}, rejected: map[uint64]error{}, expired: map[uint64]int{}}
}

func (s *fakeSource) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// add appends n messages on topic prefix+"/"+seq (payload: the seq in decimal) and returns the seqs.
func (s *fakeSource) add(n int, mk func(seq uint64) Message) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var seqs []uint64
	for range n {
		s.nextSeq++
		m := mk(s.nextSeq)
		m.Seq = s.nextSeq
		s.msgs = append(s.msgs, m)
		seqs = append(seqs, m.Seq)
	}
	s.notifyLocked()
	return seqs
}

func qos1(prefix string) func(uint64) Message {
	return func(seq uint64) Message {
		return Message{Topic: prefix + "/" + strconv.FormatUint(seq, 10), Payload: []byte(strconv.FormatUint(seq, 10)), QoS: 1}
	}
}

func (s *fakeSource) Next(ctx context.Context, after uint64, max int) ([]Message, error) {
	for {
		s.mu.Lock()
		var out []Message
		i := sort.Search(len(s.msgs), func(i int) bool { return s.msgs[i].Seq > after })
		for _, m := range s.msgs[i:] {
			if m.Seq <= after || s.acked[m.Seq] > 0 || s.rejected[m.Seq] != nil || s.expired[m.Seq] > 0 {
				continue
			}
			out = append(out, m)
			if len(out) == max {
				break
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

func (s *fakeSource) Ack(seq uint64) {
	if s.onAck != nil {
		s.onAck(seq)
	}
	s.mu.Lock()
	s.acked[seq]++
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *fakeSource) Expire(seq uint64) {
	s.mu.Lock()
	s.expired[seq]++
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *fakeSource) Quarantine(seq uint64, reason error) {
	s.mu.Lock()
	s.rejected[seq] = reason
	s.notifyLocked()
	s.mu.Unlock()
}

// settled reports how many messages were acked, quarantined or expired.
func (s *fakeSource) settled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked) + len(s.rejected) + len(s.expired)
}

// waitSettled waits until n messages are acked, quarantined or expired.
func (s *fakeSource) waitSettled(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		done := len(s.acked)+len(s.rejected)+len(s.expired) >= n
		ch := s.changed
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("only %d of %d messages settled after %s", s.settled(), n, timeout)
		}
	}
}

// checkAckedOnce asserts each of seqs was acked exactly once.
func (s *fakeSource) checkAckedOnce(t testing.TB, seqs []uint64) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range seqs {
		if n := s.acked[q]; n != 1 {
			t.Fatalf("seq %d acked %d times, want exactly 1 (rejected: %v)", q, n, s.rejected[q])
		}
	}
}

// recorder is a mochi hook that records, in arrival order, the payload of every PUBLISH whose topic
// starts with prefix — before the broker writes the PUBACK. It can delay each PUBLISH (which delays its
// PUBACK) and refuse topics starting with refusePrefix with PUBACK reason 0x87.
type recorder struct {
	mqtt.HookBase
	prefix       string
	refusePrefix string
	delay        time.Duration

	mu    sync.Mutex
	got   []uint64
	props []packets.Properties
	seen  map[uint64]bool
	qos   []byte
}

func newRecorder(prefix string) *recorder { return &recorder{prefix: prefix, seen: map[uint64]bool{}} }

func (r *recorder) ID() string { return "test-recorder" }

func (r *recorder) Provides(b byte) bool { return b == mqtt.OnPublish }

func (r *recorder) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if r.delay > 0 {
		time.Sleep(r.delay) // test hook: hold the broker's reader so PUBACKs come late
	}
	if r.refusePrefix != "" && strings.HasPrefix(pk.TopicName, r.refusePrefix) {
		return pk, packets.ErrNotAuthorized
	}
	if strings.HasPrefix(pk.TopicName, r.prefix) {
		if seq, err := strconv.ParseUint(string(pk.Payload), 10, 64); err == nil {
			r.mu.Lock()
			r.got = append(r.got, seq)
			r.seen[seq] = true
			r.props = append(r.props, pk.Properties)
			r.qos = append(r.qos, pk.FixedHeader.Qos)
			r.mu.Unlock()
		}
	}
	return pk, nil
}

func (r *recorder) has(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[seq]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *recorder) arrivals() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.got...)
}

// checkFirstArrivals asserts that every seq in want arrived and that first arrivals are in increasing
// order (duplicates from resends are allowed).
func checkFirstArrivals(t testing.TB, got []uint64, want []uint64) (dups int) {
	t.Helper()
	seen := map[uint64]bool{}
	var last uint64
	for _, q := range got {
		if seen[q] {
			dups++
			continue
		}
		seen[q] = true
		if q <= last {
			t.Fatalf("first arrival of seq %d after seq %d: out of order", q, last)
		}
		last = q
	}
	var missing []uint64
	for _, q := range want {
		if !seen[q] {
			missing = append(missing, q)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d messages never arrived, first ones: %v", len(missing), missing[:min(10, len(missing))])
	}
	return dups
}

func startBroker(t testing.TB, opts devbroker.Options) *devbroker.Broker {
	t.Helper()
	b, err := devbroker.Start(opts)
	if err != nil {
		t.Fatalf("start devbroker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// restartBroker starts a broker on addr, retrying briefly while the port is released.
func restartBroker(t testing.TB, opts devbroker.Options) *devbroker.Broker {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := devbroker.Start(opts)
		if err == nil {
			t.Cleanup(func() { _ = b.Close() })
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart devbroker on %s: %v", opts.WSAddr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running is a Client whose Run is active until stop.
type running struct {
	*Client
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's result, valid after done
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Run returned %v, want nil on cancel", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return within 10s of cancel")
	}
}

func startClient(t testing.TB, cfg Config, src Source) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := New(cfg, src)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.testHooks = &testHooks{}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Client: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = c.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func fastBackoff(int) time.Duration { return 20 * time.Millisecond }

type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var verboseLogs = false

func testLogger(t testing.TB) *slog.Logger {
	if verboseLogs {
		return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
