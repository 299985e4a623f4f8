package transport

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/eclipse/paho.golang/paho/store/memory"
)

// connSession wraps paho's in-memory session state for ONE connection (we connect with CleanStart and our
// Source is the durable session, so nothing here outlives the connection).
//
// It exists for two reasons found in paho's source (paho/session/state/state.go, paho/client.go):
//
//  1. The sender writes its PUBLISH packets itself (pubWriter, wire.go) but needs paho's State for
//     the packet identifier and to route the PUBACK that paho's reader receives. It calls AddToSession
//     itself; for PUBLISH a channel of our own is handed to the State and remembered in captured,
//     which the single sender goroutine reads right after AddToSession returns — same goroutine, so
//     the correlation with the message's Seq is deterministic. State.AddToSession also blocks on its
//     send quota (initialised from the CONNACK Receive Maximum) so the broker's limit holds even
//     without our own window.
//  2. With Session Expiry 0, State.ConnectionLost drops its map of pending transactions without
//     answering their response channels (State.clean), so a Subscribe waiting for SUBACK would hang
//     until PacketTimeout. ConnectionLost here answers every SUBSCRIBE/UNSUBSCRIBE channel with an
//     empty ControlPacket, which paho reads as "connection lost". (PUBLISH outcomes are awaited by our
//     waiter, which also watches the paho client's Done channel.)
type connSession struct {
	*state.State

	captured chan packets.ControlPacket // last PUBLISH response channel; touched only by the sender goroutine

	mu       sync.Mutex
	lost     bool
	respSent []chan<- packets.ControlPacket // SUBSCRIBE/UNSUBSCRIBE channels to release on loss
	lostWhy  error                          // DISCONNECT reason from the broker, if any
}

func newConnSession() *connSession {
	return &connSession{State: state.New(discardStore{}, memory.New())}
}

// discardStore is the client side of paho's session store, and keeps nothing. paho's State reads its
// client store only in ConnectionUp, to send again what an earlier connection of the same State left
// unacknowledged; a connSession lives for one connection and the Source is the durable session, so a
// store would only copy every PUBLISH for nothing (an allocation and a copy per message on the drain's
// path). The other packet it stores, PUBREL, follows a QoS 2 publish, which the sender never makes.
// The server side (inbound QoS 2 PUBREC) keeps paho's memory store.
type discardStore struct{}

func (discardStore) Put(uint16, byte, io.WriterTo) error { return nil }
func (discardStore) Get(id uint16) (io.ReadCloser, error) {
	return nil, fmt.Errorf("session store: packet %d is not kept (each connection starts clean)", id)
}
func (discardStore) Delete(uint16) error     { return nil }
func (discardStore) Quarantine(uint16) error { return nil }
func (discardStore) List() ([]uint16, error) { return nil, nil }
func (discardStore) Reset() error            { return nil }

func (s *connSession) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	if p.Type() != packets.PUBLISH {
		if err := s.State.AddToSession(ctx, p, resp); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.lost {
			release(resp)
		} else {
			s.respSent = append(s.respSent, resp)
		}
		return nil
	}
	ch := make(chan packets.ControlPacket, 1)
	if err := s.State.AddToSession(ctx, p, ch); err != nil {
		return err
	}
	s.captured = ch
	return nil
}

// takeCaptured returns the response channel of the PUBLISH just added (sender goroutine only).
func (s *connSession) takeCaptured() chan packets.ControlPacket {
	ch := s.captured
	s.captured = nil
	return ch
}

func (s *connSession) ConnectionLost(dp *packets.Disconnect) error {
	err := s.State.ConnectionLost(dp)
	s.mu.Lock()
	defer s.mu.Unlock()
	if dp != nil && s.lostWhy == nil {
		reason := ""
		if dp.Properties != nil {
			reason = dp.Properties.ReasonString
		}
		s.lostWhy = fmt.Errorf("%w: DISCONNECT reason 0x%02x %s", ErrServerDisconnect, dp.ReasonCode, reason)
	}
	s.lost = true
	for _, ch := range s.respSent {
		release(ch)
	}
	s.respSent = nil
	return err
}

func (s *connSession) disconnectReason() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lostWhy
}

// release answers a response channel with the empty packet that means "connection lost", unless it holds
// an answer already. Never blocks: every channel involved has a buffer of one and at most one sender
// (paho's State stops sending once ConnectionLost removed the transaction).
func release(ch chan<- packets.ControlPacket) {
	select {
	case ch <- packets.ControlPacket{}:
	default:
	}
}

var _ session.SessionManager = (*connSession)(nil)
