package localapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file bounds the local API's connections in number (api.max_connections); read_timeout and
// idle_timeout (api.go) bound them in time. A connection over the limit never reaches the HTTP
// server: it gets a minimal "503 Service Unavailable" with Retry-After and is closed, counted, without
// taking a slot. The agent's own health check (same process) is always let in, so that a
// flood of local clients cannot make systemd's watchdog restart a working agent.

const (
	// maxRefusing bounds the refused connections being answered at once (a goroutine and a 4 KiB
	// buffer each). When all are busy a refused connection waits up to refuseWait for one, then is
	// closed without an answer (and still counted): a burst of ordinary clients gets its 503s, a
	// flood of stalled ones cannot hold up the accept loop.
	maxRefusing = 128
	refuseWait  = 20 * time.Millisecond
	// refuseLinger bounds how long a refused connection is read (its request, so that the client
	// reads the answer instead of a reset) and drained before it is closed.
	refuseLinger = time.Second
	// refuseReadMax bounds what is read of a refused connection.
	refuseReadMax = 64 << 10
)

// connLimiter counts the local API's open connections. Safe for concurrent use.
type connLimiter struct {
	max     int
	answer  []byte // the 503 a refused connection gets
	active  atomic.Int64
	refused atomic.Uint64
	// exemptSelf lets this process's own connections (the health check) past the limit. On by
	// default; tests, whose clients share the agent's process, turn it off to see the limit.
	exemptSelf atomic.Bool

	slots chan struct{} // refusals being answered
	mu    sync.Mutex
	open  map[net.Conn]struct{} // refused connections being answered, closed by Close
	wg    sync.WaitGroup
}

func newConnLimiter(max int) *connLimiter {
	body := fmt.Sprintf(`{"error":"too many connections to the local API (api.max_connections %d); retry after %ds"}`+"\n", max, retryAfterSeconds)
	answer := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		retryAfterSeconds, len(body), body)
	l := &connLimiter{max: max, answer: []byte(answer), slots: make(chan struct{}, maxRefusing), open: map[net.Conn]struct{}{}}
	l.exemptSelf.Store(true)
	return l
}

// wrap returns ln with the limit applied to what it accepts. Closing it waits for the refusals in
// progress (each ends within refuseLinger, or at once when the listener closes).
func (l *connLimiter) wrap(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, l: l}
}

type limitedListener struct {
	net.Listener
	l         *connLimiter
	closeOnce sync.Once
	closeErr  error
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, _ := peerCred(c)
		if ll.l.admit(cred) {
			return &limitedConn{Conn: c, l: ll.l, cred: cred}, nil
		}
		ll.l.refuse(c)
	}
}

func (ll *limitedListener) Close() error {
	ll.closeOnce.Do(func() {
		ll.closeErr = ll.Listener.Close()
		l := ll.l
		l.mu.Lock()
		for c := range l.open {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return ll.closeErr
}

// admit takes a slot for a connection from the peer cred (nil: not known), or refuses it.
func (l *connLimiter) admit(cred *syscall.Ucred) bool {
	if l.active.Add(1) <= int64(l.max) || (l.exemptSelf.Load() && cred != nil && int(cred.Pid) == os.Getpid()) {
		return true
	}
	l.active.Add(-1)
	return false
}

// refuse answers c with a 503 and closes it, in the background and bounded by maxRefusing.
func (l *connLimiter) refuse(c net.Conn) {
	l.refused.Add(1)
	select {
	case l.slots <- struct{}{}:
	default:
		t := time.NewTimer(refuseWait)
		select {
		case l.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			c.Close()
			return
		}
	}
	l.mu.Lock()
	l.open[c] = struct{}{}
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() { <-l.slots }()
		defer func() {
			l.mu.Lock()
			delete(l.open, c)
			l.mu.Unlock()
			c.Close()
		}()
		c.SetDeadline(time.Now().Add(refuseLinger))
		// Read the request's headers first: a client still writing them when the connection
		// closes sees a reset, not the answer.
		r := io.LimitReader(c, refuseReadMax)
		buf := make([]byte, 4096)
		var tail []byte
		for {
			n, err := r.Read(buf)
			tail = append(tail, buf[:n]...)
			if i := bytes.Index(tail, []byte("\r\n\r\n")); i >= 0 || err != nil {
				break
			}
			if len(tail) > 3 {
				tail = tail[len(tail)-3:]
			}
		}
		if _, err := c.Write(l.answer); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, r) // until the client closes, the deadline or the read bound
	}()
}

// limitedConn frees its slot when closed. It carries its peer's credentials, read once at accept.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	cred *syscall.Ucred // nil: not known
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.active.Add(-1) })
	return err
}

// CloseWrite lets net/http half-close the connection as it does an unwrapped one.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("CloseWrite not supported")
}
