package netproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer is the proxy's target: it echoes every byte and counts them.
type echoServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	received atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	connErrs chan error // how each server-side connection ended (nil = EOF)
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, connErrs: make(chan error, 100)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					s.received.Add(int64(n))
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							s.connErrs <- werr
							return
						}
					}
					if err != nil {
						if errors.Is(err, io.EOF) {
							err = nil
						}
						s.connErrs <- err
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// expectReset connects to addr and expects the connection to be reset: either
// already during connect (the RST can beat the handshake's completion) or on
// the first read.
func expectReset(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		defer c.Close()
		// The RST may arrive before the write: then the write reports it (ECONNRESET or EPIPE) and the
		// read after it sees a plain EOF, the socket error having been consumed.
		if _, werr := c.Write([]byte("x")); errors.Is(werr, syscall.ECONNRESET) || errors.Is(werr, syscall.EPIPE) {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection to %s: %v, want ECONNRESET", addr, err)
	}
}

// waitStats polls (bounded) until cond holds: counters are updated just after
// the bytes are written, so a reader can see the data a moment before the count.
func waitStats(t *testing.T, p *Proxy, cond func(Stats) bool, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(p.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %s", p.Stats(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func roundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo mismatch: %d bytes differ", len(msg))
	}
}

func TestForwardsBothWaysAndCounts(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p.Addr())
	msg := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: several chunks
	go func() { _, _ = c.Write(msg) }()
	got := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through proxy: err %v, equal %v", err, bytes.Equal(got, msg))
	}
	waitStats(t, p, func(st Stats) bool {
		return st.Accepted == 1 && st.Active == 1 && st.ToTarget == uint64(len(msg)) && st.FromTarget == uint64(len(msg))
	}, "1 accepted, 1 active, all bytes counted each way")

	// A client half-close reaches the target as EOF, the target's close comes back.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-srv.connErrs:
		if err != nil {
			t.Fatalf("target saw %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("target never saw the FIN")
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("client read after target closed = %d, %v; want EOF", n, err)
	}
}

func TestCutResetsCurrentAndNewConnections(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("hello"))

	p.Cut()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("established connection after Cut: read err %v, want ECONNRESET", err)
	}
	select {
	case err := <-srv.connErrs:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("target side after Cut: %v, want ECONNRESET", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("target connection not reset")
	}

	// New connections while cut: accepted, then reset; nothing reaches the target.
	before := srv.received.Load()
	expectReset(t, p.Addr())
	if srv.received.Load() != before {
		t.Fatal("bytes reached the target while cut")
	}
	waitStats(t, p, func(st Stats) bool { return st.Reset == 2 && st.Active == 0 }, "2 resets, 0 active")

	p.Restore()
	c3 := dial(t, p.Addr())
	roundTrip(t, c3, []byte("back"))
}

func TestBlackholeHoldsBytesWithoutClosing(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("before"))
	before := srv.received.Load()

	p.Blackhole()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	// Nothing comes back and the connection is not closed: the read times out.
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 16))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read during blackhole = %d, %v; want a timeout", n, err)
	}
	if got := srv.received.Load(); got != before {
		t.Fatalf("target received %d bytes during blackhole", got-before)
	}
	// New connections are accepted but silent too.
	c2 := dial(t, p.Addr())
	_, _ = c2.Write([]byte("new"))

	p.Restore()
	got := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after Restore: %q, %v; want the held bytes", got, err)
	}
	got = make([]byte, 3)
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != "new" {
		t.Fatalf("connection opened during blackhole: %q, %v", got, err)
	}
}

func TestDelaySlowsEachChunk(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("warm"))

	const d = 150 * time.Millisecond
	p.SetDelay(d)
	start := time.Now()
	roundTrip(t, c, []byte("slow"))
	// Two chunks (there and back) each waited d: a lower bound, not a speed claim.
	if el := time.Since(start); el < 2*d {
		t.Fatalf("round trip took %v with delay %v per chunk, want >= %v", el, d, 2*d)
	}
	p.SetDelay(0)
	roundTrip(t, c, []byte("fast again"))
}

func TestUnreachableTargetResetsClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := newProxy(t, target)
	expectReset(t, p.Addr())
	waitStats(t, p, func(st Stats) bool { return st.DialErrors == 1 && st.Accepted == 1 }, "1 dial error")
}

func TestCloseEndsEverythingEvenWhenBlackholed(t *testing.T) {
	srv := newEchoServer(t)
	p, err := New(srv.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("x"))
	p.Blackhole()
	_, _ = c.Write([]byte("stuck"))
	p.SetDelay(time.Hour)

	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("client connection still open after Close")
	}
	// goleak in TestMain proves no copier or dialer outlived Close.
}

// With a delay, many chunks are in the delay line at once (pipelined, not one per delay) and the
// byte stream still arrives whole and in order in both directions.
func TestDelayLineKeepsOrderWithManyChunksInFlight(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.ln.Addr().String())
	p.SetDelay(20 * time.Millisecond)
	c := dial(t, p.Addr())
	var sent bytes.Buffer
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 200*1000)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, _ := io.ReadFull(c, buf)
		got <- buf[:n]
	}()
	for i := range 200 { // 200 separate writes of 1,000 bytes, each its own chunk most of the time
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 1000)
		sent.Write(msg)
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // let the reader see separate chunks
		}
	}
	if echo := <-got; !bytes.Equal(echo, sent.Bytes()) {
		t.Fatalf("echo of %d bytes differs from the %d sent (order or loss in the delay line)", len(echo), sent.Len())
	}
}
