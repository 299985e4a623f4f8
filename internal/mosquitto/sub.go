package mosquitto

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Msg is one message received by a Sub.
type Msg struct {
	Topic    string
	Payload  []byte
	QoS      byte // QoS of the delivery (min of publish and subscription QoS)
	Retain   bool
	Received time.Time
}

// Sub is a running mosquitto_sub checker process.
//
// Output format: mosquitto_sub -N -F '%q %r %x %t\0' prints, per message, the QoS,
// the retain flag, the payload in hex and the topic, terminated by a NUL byte. Hex
// makes any payload safe, and a topic can never contain NUL, so the framing
// cannot be confused by what is published.
//
// Readiness: besides the filter, the process also subscribes to a private probe
// topic in the same SUBSCRIBE packet (mosquitto_sub sends all -t filters in one
// SUBSCRIBE). Subscribe publishes probe messages with mosquitto_pub until one
// comes back; since the broker handles a SUBSCRIBE as a whole before routing a
// later PUBLISH to it, the filter is active too once a probe arrives. Probe
// messages are never reported.
type Sub struct {
	filter string
	probe  string
	cmd    *exec.Cmd
	stderr *lockedBuffer

	mu        sync.Mutex
	msgs      []Msg
	changed   chan struct{} // closed and replaced on every new message and on exit
	exited    bool
	probeSeen bool
	exitErr   error

	readerDone chan struct{}
	waitDone   chan struct{}
	closeOnce  sync.Once
}

// SubOption configures Subscribe.
type SubOption func(*subOptions)

type subOptions struct {
	persistent bool
}

// Persistent makes the checker a persistent session (mosquitto_sub -c: Clean Start
// off, a session that never expires). While it is disconnected — e.g. during a
// broker Restart — the broker queues its QoS 1 messages and sends them when it
// reconnects; with a broker started WithPersistence that includes the messages the
// broker had accepted but not yet delivered when it was stopped.
func Persistent() SubOption { return func(o *subOptions) { o.persistent = true } }

// Subscribe starts mosquitto_sub (MQTT 5, QoS 1, clean session unless Persistent)
// against tcpAddr ("127.0.0.1:PORT") for filter and returns once the subscription
// is active (at most ~10 s, else t.Fatal). A t.Cleanup closes it. mosquitto_sub
// reconnects and resubscribes by itself after a broker restart; without
// Persistent, messages published in between are not seen.
func Subscribe(t testing.TB, tcpAddr, filter string, opts ...SubOption) *Sub {
	t.Helper()
	bin := lookBinary(t, "mosquitto_sub", "/usr/bin/mosquitto_sub")
	host, port, err := net.SplitHostPort(tcpAddr)
	if err != nil {
		t.Fatalf("mosquitto.Subscribe: bad address %q: %v", tcpAddr, err)
	}
	id := randomHex(6)
	s := &Sub{
		filter:     filter,
		probe:      "edge-agent-test/probe/" + id,
		stderr:     &lockedBuffer{},
		changed:    make(chan struct{}),
		readerDone: make(chan struct{}),
		waitDone:   make(chan struct{}),
	}
	var o subOptions
	for _, opt := range opts {
		opt(&o)
	}
	args := []string{"-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
		"-i", "edge-agent-test-sub-" + id, "-t", filter, "-t", s.probe,
		"-N", "-F", `%q %r %x %t\0`}
	if o.persistent {
		args = append(args, "-c")
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stderr = s.stderr
	s.cmd.SysProcAttr = procAttr()
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("mosquitto.Subscribe: %v", err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("mosquitto.Subscribe: exec %s: %v", bin, err)
	}
	go s.read(stdout)
	go func() {
		<-s.readerDone // Wait must not run before all reads of the pipe are done
		err := s.cmd.Wait()
		s.mu.Lock()
		s.exited, s.exitErr = true, err
		s.broadcastLocked()
		s.mu.Unlock()
		close(s.waitDone)
	}()
	t.Cleanup(s.Close)

	if err := s.awaitProbe(t, tcpAddr, readyTimeout); err != nil {
		t.Fatalf("mosquitto.Subscribe %q on %s: %v\n--- mosquitto_sub stderr ---\n%s",
			filter, tcpAddr, err, s.stderr.String())
	}
	return s
}

func (s *Sub) awaitProbe(t testing.TB, tcpAddr string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		seen := s.probeSeen
		exited, exitErr := s.exited, s.exitErr
		s.mu.Unlock()
		if seen {
			return nil
		}
		if exited {
			return fmt.Errorf("mosquitto_sub exited: %v", exitErr)
		}
		if err := publish(t, tcpAddr, s.probe, []byte("probe"), 0, false); err != nil {
			return err
		}
		retry := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ch:
		case <-retry.C:
		case <-deadline.C:
			retry.Stop()
			return fmt.Errorf("no probe message came back within %v: subscription not active", timeout)
		}
		retry.Stop()
	}
}

func (s *Sub) read(r interface{ Read([]byte) (int, error) }) {
	defer close(s.readerDone)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		rec, err := br.ReadBytes(0)
		if err != nil {
			return // EOF when the process exits; a partial record is dropped
		}
		m, ok := parseRecord(rec[:len(rec)-1])
		s.mu.Lock()
		switch {
		case !ok:
			fmt.Fprintf(s.stderr, "internal/mosquitto: unparsable mosquitto_sub record %q\n", rec)
		case m.Topic == s.probe:
			s.probeSeen = true
		default:
			s.msgs = append(s.msgs, m)
		}
		s.broadcastLocked()
		s.mu.Unlock()
	}
}

// parseRecord parses "QOS RETAIN HEXPAYLOAD TOPIC" (payload may be empty).
func parseRecord(rec []byte) (Msg, bool) {
	parts := strings.SplitN(string(rec), " ", 4)
	if len(parts) != 4 || len(parts[0]) != 1 || len(parts[1]) != 1 {
		return Msg{}, false
	}
	payload, err := hex.DecodeString(parts[2])
	if err != nil {
		return Msg{}, false
	}
	q, r := parts[0][0], parts[1][0]
	if q < '0' || q > '2' || (r != '0' && r != '1') {
		return Msg{}, false
	}
	return Msg{Topic: parts[3], Payload: payload, QoS: q - '0', Retain: r == '1', Received: time.Now()}, true
}

func (s *Sub) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Messages returns a copy of every message received so far, in arrival order.
func (s *Sub) Messages() []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Msg(nil), s.msgs...)
}

// WaitCount waits until at least n messages were received and returns all of them
// (possibly more than n). On timeout, or if mosquitto_sub exits, it returns what
// it has with an error saying how many arrived.
func (s *Sub) WaitCount(n int, timeout time.Duration) ([]Msg, error) {
	return s.wait(n, timeout, func(msgs []Msg) int { return len(msgs) })
}

// WaitDistinct is WaitCount counting distinct (topic, payload) pairs, so that redeliveries of an
// at-least-once stream do not count towards n.
func (s *Sub) WaitDistinct(n int, timeout time.Duration) ([]Msg, error) {
	return s.wait(n, timeout, func(msgs []Msg) int {
		seen := make(map[string]struct{}, len(msgs))
		for _, m := range msgs {
			seen[m.Topic+"\x00"+string(m.Payload)] = struct{}{}
		}
		return len(seen)
	})
}

func (s *Sub) wait(n int, timeout time.Duration, count func([]Msg) int) ([]Msg, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		msgs := append([]Msg(nil), s.msgs...)
		ch, exited, exitErr := s.changed, s.exited, s.exitErr
		s.mu.Unlock()
		if count(msgs) >= n {
			return msgs, nil
		}
		if exited {
			return msgs, fmt.Errorf("mosquitto_sub %q exited (%v) after %d of %d messages; stderr: %s",
				s.filter, exitErr, count(msgs), n, s.stderr.String())
		}
		select {
		case <-ch:
		case <-deadline.C:
			return msgs, fmt.Errorf("mosquitto_sub %q: got %d of %d messages within %v", s.filter, count(msgs), n, timeout)
		}
	}
}

// Close stops mosquitto_sub and waits for its goroutines. Safe to call twice.
func (s *Sub) Close() {
	s.closeOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.waitDone
	})
}

// Publish sends one message with mosquitto_pub (MQTT 5) to tcpAddr and fails the
// test if mosquitto_pub fails. The payload goes through stdin, so any bytes work.
func Publish(t testing.TB, tcpAddr, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	if err := publish(t, tcpAddr, topic, payload, qos, retain); err != nil {
		t.Fatal(err)
	}
}

func publish(t testing.TB, tcpAddr, topic string, payload []byte, qos byte, retain bool) error {
	t.Helper()
	bin := lookBinary(t, "mosquitto_pub", "/usr/bin/mosquitto_pub")
	host, port, err := net.SplitHostPort(tcpAddr)
	if err != nil {
		return fmt.Errorf("mosquitto_pub: bad address %q: %w", tcpAddr, err)
	}
	args := []string{"-h", host, "-p", port, "-V", "mqttv5", "-q", fmt.Sprint(qos), "-t", topic}
	if retain {
		args = append(args, "-r")
	}
	if len(payload) == 0 {
		args = append(args, "-n")
	} else {
		args = append(args, "-s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(payload)
	cmd.SysProcAttr = procAttr()
	out, err := cmd.CombinedOutput()
	// mosquitto_pub exits 0 after some failures (e.g. "Error: Message QoS not
	// supported on broker"); it prints nothing on success, so any "Error" counts.
	if err == nil && bytes.Contains(out, []byte("Error")) {
		err = errors.New("mosquitto_pub reported an error")
	}
	if err != nil {
		return fmt.Errorf("mosquitto_pub -t %q to %s: %w: %s", topic, tcpAddr, err, out)
	}
	return nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // keep the first 64 KiB; enough to diagnose
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func randomHex(n int) string {
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		panic(errors.New("crypto/rand failed: " + err.Error()))
	}
	return hex.EncodeToString(p)
}

// CheckNumbered checks a stream whose payloads are the decimal numbers 1..n: every number arrived and
// first arrivals are in increasing order, one after the other. Redeliveries (at least once) are allowed
// and counted in dups. The error says what is wrong.
func CheckNumbered(msgs []Msg, n int) (dups int, err error) {
	seen := make(map[int]bool, n)
	last := 0
	for _, m := range msgs {
		v, err := strconv.Atoi(string(m.Payload))
		if err != nil {
			return dups, fmt.Errorf("unexpected payload %q on %s", m.Payload, m.Topic)
		}
		if seen[v] {
			dups++
			continue
		}
		seen[v] = true
		if v != last+1 {
			return dups, fmt.Errorf("out of order: %d arrived first after %d", v, last)
		}
		last = v
	}
	if len(seen) != n {
		return dups, fmt.Errorf("%d distinct messages arrived, want %d", len(seen), n)
	}
	return dups, nil
}
