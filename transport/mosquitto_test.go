package transport

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mosquitto is a real Mosquitto process with a WebSocket listener (and a plain TCP one for the
// mosquitto_pub CLI), started on fixed ports so it can be killed and restarted in place.
type mosquitto struct {
	t       testing.TB
	bin     string
	conf    string
	log     string // the process's stderr (mosquitto drops privileges, so it cannot open files itself)
	wsPort  int
	tcpPort int
	cmd     *exec.Cmd
	exited  chan struct{}
}

func mosquittoBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	t.Fatalf("the mosquitto binary is required for this test and was not found in PATH or /usr/sbin; install it (Debian: apt-get install mosquitto mosquitto-clients)")
	return ""
}

func startMosquitto(t testing.TB) *mosquitto {
	t.Helper()
	dir := t.TempDir()
	m := &mosquitto{t: t, bin: mosquittoBinary(t), conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log"),
		wsPort: freePort(t), tcpPort: freePort(t)}
	conf := fmt.Sprintf(`per_listener_settings false
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages 64
log_dest stderr
listener %d 127.0.0.1
protocol websockets
listener %d 127.0.0.1
`, m.wsPort, m.tcpPort)
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			if b, err := os.ReadFile(m.log); err == nil {
				t.Logf("mosquitto log:\n%s", b)
			}
		}
	})
	return m
}

func (m *mosquitto) URL() string { return fmt.Sprintf("ws://127.0.0.1:%d/mqtt", m.wsPort) }

func (m *mosquitto) start() {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			m.t.Fatal(err)
		}
		cmd := exec.Command(m.bin, "-c", m.conf)
		cmd.Stdout, cmd.Stderr = logf, logf
		err = cmd.Start()
		_ = logf.Close() // the child has its own copy
		if err != nil {
			m.t.Fatalf("start mosquitto: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		m.cmd, m.exited = cmd, exited
		if m.waitListening(exited) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(m.log)
			m.t.Fatalf("mosquitto did not listen on ports %d/%d within 10s; its log:\n%s", m.wsPort, m.tcpPort, b)
		}
		time.Sleep(50 * time.Millisecond) // ports still held by the previous instance: try again
	}
}

// waitListening reports whether both ports accept connections before the process exits.
func (m *mosquitto) waitListening(exited chan struct{}) bool {
	for range 200 {
		select {
		case <-exited:
			return false
		default:
		}
		ok := true
		for _, p := range []int{m.wsPort, m.tcpPort} {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), 200*time.Millisecond)
			if err != nil {
				ok = false
				break
			}
			_ = c.Close()
		}
		if ok {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// kill sends SIGKILL and waits for the process (no clean shutdown, nothing saved).
func (m *mosquitto) kill() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

// pub publishes one message through the plain TCP listener with the mosquitto_pub CLI.
func (m *mosquitto) pub(topic, payload string) error {
	out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(m.tcpPort), "-V", "mqttv5",
		"-q", "1", "-t", topic, "-m", payload).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_pub: %v: %s", err, out)
	}
	return nil
}

// subscriber is a transport Client used only to receive.
type subscriber struct {
	*running
	mu   sync.Mutex
	got  []uint64
	seen map[string]bool
}

func startSubscriber(t testing.TB, url, filter string) *subscriber {
	s := &subscriber{seen: map[string]bool{}}
	s.running = startClient(t, Config{URL: url, ClientID: "sub-" + strconv.Itoa(freePort(t)), Backoff: fastBackoff,
		IncomingBuffer: 100000,
		Subscriptions:  []Subscription{{Filter: filter, QoS: 1}, {Filter: "probe/#", QoS: 1}},
		OnMessage: func(m Received) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.seen[m.Topic] = true
			if q, err := strconv.ParseUint(string(m.Payload), 10, 64); err == nil && !strings.HasPrefix(m.Topic, "probe/") {
				s.got = append(s.got, q)
			}
		}}, newFakeSource())
	return s
}

func (s *subscriber) arrivals() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.got...)
}

// ready publishes probes until the subscriber receives one: its subscriptions are in place.
func (s *subscriber) ready(t testing.TB, m *mosquitto) {
	t.Helper()
	topic := fmt.Sprintf("probe/%d", time.Now().UnixNano())
	waitFor(t, 15*time.Second, "subscriber to receive a probe", func() bool {
		if err := m.pub(topic, "p"); err != nil {
			return false // broker still starting
		}
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.seen[topic]
	})
}

func TestMosquittoPublishInOrder(t *testing.T) {
	m := startMosquitto(t)
	sub := startSubscriber(t, m.URL(), "m/#")
	sub.ready(t, m)
	src := newFakeSource()
	seqs := src.add(2000, qos1("m"))
	c := startClient(t, Config{URL: m.URL(), ClientID: "mpub", MaxInflight: 32}, src)
	src.waitSettled(t, len(seqs), 30*time.Second)
	src.checkAckedOnce(t, seqs)
	waitFor(t, 10*time.Second, "all at the subscriber", func() bool { return len(sub.arrivals()) >= len(seqs) })
	if dups := checkFirstArrivals(t, sub.arrivals(), seqs); dups != 0 {
		t.Fatalf("%d duplicates without a reconnect", dups)
	}
	t.Logf("mosquitto status: %+v", c.Status())
}

// Mosquitto is SIGKILLed mid-stream and restarted on the same ports. Every message that was not acked
// before the kill must reach the subscriber after the restart (resent), first arrivals stay in order,
// and every message is acked exactly once. Messages Mosquitto PUBACKed before it died but had not yet
// forwarded are the broker's loss (it took responsibility with the PUBACK); they are allowed to be
// missing, and nothing else is.
func TestMosquittoKillRestart(t *testing.T) {
	m := startMosquitto(t)
	sub := startSubscriber(t, m.URL(), "k/#")
	sub.ready(t, m)

	var gateMu sync.Mutex
	gate := make(chan struct{})
	close(gate)
	var calls int
	src := newFakeSource()
	seqs := src.add(2000, qos1("k"))
	c := startClient(t, Config{ClientID: "kpub", MaxInflight: 64,
		Backoff: FullJitter(20*time.Millisecond, 300*time.Millisecond),
		Endpoint: func(ctx context.Context) (string, http.Header, error) {
			gateMu.Lock()
			g := gate
			calls++
			gateMu.Unlock()
			select { // hold reconnects until the subscriber is back, so it can see the resends
			case <-g:
			case <-ctx.Done():
				return "", nil, ctx.Err()
			}
			return m.URL(), nil, nil
		}}, src)

	waitFor(t, 20*time.Second, "300 messages at the subscriber", func() bool { return len(sub.arrivals()) >= 300 })
	gateMu.Lock()
	gate = make(chan struct{})
	gateMu.Unlock()
	m.kill()
	src.mu.Lock()
	ackedBefore := map[uint64]bool{}
	for q := range src.acked {
		ackedBefore[q] = true
	}
	src.mu.Unlock()
	m.start()
	sub.ready(t, m)
	gateMu.Lock()
	close(gate)
	gateMu.Unlock()

	src.waitSettled(t, len(seqs), 30*time.Second)
	src.checkAckedOnce(t, seqs)
	var mustArrive []uint64
	for _, q := range seqs {
		if !ackedBefore[q] {
			mustArrive = append(mustArrive, q)
		}
	}
	if len(mustArrive) == 0 {
		t.Fatal("everything was acked before the kill; the test proved nothing")
	}
	waitFor(t, 10*time.Second, "resent messages at the subscriber", func() bool {
		got := map[uint64]bool{}
		for _, q := range sub.arrivals() {
			got[q] = true
		}
		for _, q := range mustArrive {
			if !got[q] {
				return false
			}
		}
		return true
	})
	arr := sub.arrivals()
	dups := checkFirstArrivalsOrderOnly(t, arr)
	st := c.Status()
	if st.Connects < 2 {
		t.Fatalf("connects = %d", st.Connects)
	}
	gateMu.Lock()
	n := calls
	gateMu.Unlock()
	t.Logf("acked before kill: %d, resent and received after restart: %d, duplicates: %d, endpoint calls: %d, last error: %s",
		len(ackedBefore), len(mustArrive), dups, n, st.LastError)
}

// checkFirstArrivalsOrderOnly asserts first arrivals are increasing and returns the duplicate count.
func checkFirstArrivalsOrderOnly(t testing.TB, got []uint64) (dups int) {
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
	return dups
}
