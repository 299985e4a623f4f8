package mqtt311

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Msg is one message received by a Sub.
type Msg struct {
	Topic     string
	Payload   []byte
	QoS       byte // QoS of the delivery (min of publish and subscription QoS)
	Retained  bool
	Duplicate bool
}

// Sub is a subscribed client that records what it receives.
type Sub struct {
	filter string
	addr   string
	c      paho.Client

	mu      sync.Mutex
	msgs    []Msg
	changed chan struct{} // closed and replaced on every new message
	subErr  error         // the last failed (re)subscribe
	subOK   chan struct{} // closed at the first SUBACK that granted the filter
	okOnce  sync.Once

	closeOnce sync.Once
}

// Subscribe connects to addr, subscribes to filter at QoS 1 and returns once the
// broker granted it (t.Fatal after 10 s or if it refused). The client reconnects by
// itself (at most 1 s apart) and subscribes again after every reconnect; with
// Persistent, messages queued by the broker meanwhile arrive too. A t.Cleanup
// closes it.
func Subscribe(t testing.TB, addr, filter string, opts ...Option) *Sub {
	t.Helper()
	po, _ := newOptions(addr, opts)
	s := &Sub{filter: filter, addr: addr, changed: make(chan struct{}), subOK: make(chan struct{})}
	po.SetAutoReconnect(true).
		SetDefaultPublishHandler(s.record). // also catches a session's messages before the SUBACK
		SetOnConnectHandler(s.subscribe)
	s.c = paho.NewClient(po)
	t.Cleanup(s.Close)
	tok := s.c.Connect()
	if !tok.WaitTimeout(opTimeout) {
		t.Fatalf("mqtt311: connect to %s: no CONNACK within %v", addr, opTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("mqtt311: connect to %s: %v", addr, err)
	}
	timer := time.NewTimer(opTimeout)
	defer timer.Stop()
	select {
	case <-s.subOK:
	case <-timer.C:
		s.mu.Lock()
		err := s.subErr
		s.mu.Unlock()
		t.Fatalf("mqtt311: subscribe to %q on %s: not granted within %v (last error: %v)", filter, addr, opTimeout, err)
	}
	return s
}

// subscribe runs on paho's goroutine after every (re)connect.
func (s *Sub) subscribe(c paho.Client) {
	tok := c.Subscribe(s.filter, 1, nil)
	var err error
	switch {
	case !tok.WaitTimeout(opTimeout):
		err = fmt.Errorf("no SUBACK within %v", opTimeout)
	case tok.Error() != nil:
		err = tok.Error()
	default:
		if code := tok.(*paho.SubscribeToken).Result()[s.filter]; code == 0x80 {
			err = fmt.Errorf("SUBACK refused the filter (return code 0x80)")
		}
	}
	if err != nil {
		s.mu.Lock()
		s.subErr = err
		s.mu.Unlock()
		return
	}
	s.okOnce.Do(func() { close(s.subOK) })
}

// record runs on paho's goroutine, in arrival order (SetOrderMatters).
func (s *Sub) record(_ paho.Client, m paho.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, Msg{
		Topic:     m.Topic(),
		Payload:   append([]byte(nil), m.Payload()...),
		QoS:       m.Qos(),
		Retained:  m.Retained(),
		Duplicate: m.Duplicate(),
	})
	close(s.changed)
	s.changed = make(chan struct{})
}

// Messages returns a copy of everything received so far, in arrival order.
func (s *Sub) Messages() []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Msg(nil), s.msgs...)
}

// WaitCount waits until at least n messages have arrived and returns all of them
// (t.Fatal, with how many arrived, after timeout).
func (s *Sub) WaitCount(t testing.TB, n int, timeout time.Duration) []Msg {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		got, changed := len(s.msgs), s.changed
		s.mu.Unlock()
		if got >= n {
			return s.Messages()
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("mqtt311: %q on %s: %d of %d messages after %v", s.filter, s.addr, got, n, timeout)
		}
	}
}

// Close disconnects and stops the client's goroutines. Idempotent. A Persistent
// session stays on the broker (clean session = false).
func (s *Sub) Close() {
	s.closeOnce.Do(func() { s.c.Disconnect(disconnectQuiesce) })
}
