package netproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type mode int

const (
	modeNormal mode = iota
	modeCut
	modeBlackhole
)

// dialTimeout bounds each connection attempt to the target.
const dialTimeout = 5 * time.Second

// chunkSize is the largest piece forwarded (and delayed) at once.
const chunkSize = 32 << 10

// Stats are cumulative counters since New.
type Stats struct {
	Accepted   uint64 // connections accepted from clients (including ones reset by Cut)
	Reset      uint64 // client connections reset by Cut (current ones and new ones while cut)
	DialErrors uint64 // connections dropped because the target could not be reached
	Active     int    // connections currently proxied
	ToTarget   uint64 // bytes forwarded client → target
	FromTarget uint64 // bytes forwarded target → client
}

// Proxy forwards TCP connections from Addr to a target address.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	mode    mode
	delay   time.Duration
	changed chan struct{} // closed and replaced on every mode change (wakes held copiers)
	conns   map[*link]struct{}
	closed  bool

	accepted, reset, dialErrors atomic.Uint64
	toTarget, fromTarget        atomic.Uint64
}

// link is one proxied connection: client ↔ proxy ↔ target.
type link struct {
	client, server *net.TCPConn
}

// New listens on 127.0.0.1:0 and forwards each accepted connection to target
// ("host:port"), dialed when the client connects.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("netproxy: listen on 127.0.0.1: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:  target,
		ln:      ln,
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		conns:   make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the proxy's listening address, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Cut resets every current connection (RST to client and target) and resets new
// ones as soon as they are accepted, until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setModeLocked(modeCut)
	for l := range p.conns {
		p.reset.Add(1)
		// Both lingers first: closing one end wakes a copier that closes the
		// other end, which must then send an RST too, not a FIN.
		_ = l.client.SetLinger(0)
		_ = l.server.SetLinger(0)
		_ = l.client.Close()
		_ = l.server.Close()
		delete(p.conns, l)
	}
}

// Blackhole stops forwarding bytes in both directions without closing anything,
// until Restore. Data sent meanwhile is held (in kernel buffers, the chunks already in the
// delay line and one more chunk per direction in the proxy) and delivered after Restore.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setModeLocked(modeBlackhole)
}

// Restore returns to normal forwarding (ends Cut and Blackhole; keeps the delay).
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setModeLocked(modeNormal)
}

// SetDelay makes every forwarded chunk wait d before it is written, in both
// directions; 0 turns it off. It applies to chunks read after the call.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{
		Accepted:   p.accepted.Load(),
		Reset:      p.reset.Load(),
		DialErrors: p.dialErrors.Load(),
		Active:     active,
		ToTarget:   p.toTarget.Load(),
		FromTarget: p.fromTarget.Load(),
	}
}

// Close stops listening, closes every connection and waits for all of the
// proxy's goroutines. Safe to call twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.cancel()
	err := p.ln.Close()
	for l := range p.conns {
		_ = l.client.Close()
		_ = l.server.Close()
		delete(p.conns, l)
	}
	p.broadcastLocked()
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) setModeLocked(m mode) {
	p.mode = m
	p.broadcastLocked()
}

func (p *Proxy) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. EMFILE; Close ends the loop
		}
		p.accepted.Add(1)
		client := c.(*net.TCPConn)
		p.mu.Lock()
		cut, closed := p.mode == modeCut, p.closed
		if !closed && !cut {
			p.wg.Add(1) // under mu: Close cannot be in wg.Wait yet
		}
		p.mu.Unlock()
		switch {
		case closed:
			_ = client.Close()
			return
		case cut:
			p.reset.Add(1)
			resetConn(client)
		default:
			go p.serve(client)
		}
	}
}

// serve dials the target and starts the two copiers (each a reader and a writer, see forward).
func (p *Proxy) serve(client *net.TCPConn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	sc, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		p.dialErrors.Add(1)
		resetConn(client)
		return
	}
	l := &link{client: client, server: sc.(*net.TCPConn)}

	p.mu.Lock()
	if p.closed || p.mode == modeCut {
		if !p.closed {
			p.reset.Add(1)
		}
		p.mu.Unlock()
		_ = l.client.SetLinger(0)
		_ = l.server.SetLinger(0)
		_ = l.client.Close()
		_ = l.server.Close()
		return
	}
	p.conns[l] = struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()

	var done sync.WaitGroup
	done.Add(2)
	go func() { defer p.wg.Done(); defer done.Done(); p.forward(l, l.server, l.client, &p.toTarget) }()
	go func() { defer p.wg.Done(); defer done.Done(); p.forward(l, l.client, l.server, &p.fromTarget) }()
	done.Wait()

	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
	_ = l.client.Close()
	_ = l.server.Close()
}

// chunk is a piece of the byte stream in the delay line, or its end (data nil, end set).
type chunk struct {
	data []byte
	due  time.Time // written no earlier than this: read time + the delay then in force
	end  error     // io.EOF, the read error, or nil for data
}

// delayLine is how many chunks one direction holds at most between reading and writing; a full
// line stops the reader, so the sender sees TCP back-pressure like on a real link.
const delayLine = 64

// forward copies src → dst: a reader stamps each chunk with its due time (now + the delay) and
// a writer writes it when due, so chunks are pipelined and each waits exactly the delay, however
// many are in flight (a link with latency d, not a link that carries one chunk per d). Blackhole
// holds both. On EOF it half-closes dst (the FIN travels on, after the data); on any error it
// closes both ends so the other direction stops too.
//
// Both ends have TCP_NODELAY (Go's default, set again here so it is not an accident): Nagle in a
// proxy would hold small packets such as PUBACKs for up to 40 ms and add latency of its own.
func (p *Proxy) forward(l *link, dst, src *net.TCPConn, counter *atomic.Uint64) {
	_ = src.SetNoDelay(true)
	_ = dst.SetNoDelay(true)
	line := make(chan chunk, delayLine)
	stop := make(chan struct{}) // closed when the writer ends
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(stop)
		p.writeLine(l, dst, line, counter)
	}()
	defer wg.Wait()
	defer close(line) // a writer waiting for more chunks ends
	send := func(c chunk) bool {
		select {
		case line <- c:
			return true
		case <-stop:
			return false
		}
	}
	for {
		buf := make([]byte, chunkSize)
		n, rerr := src.Read(buf)
		if n > 0 {
			if !p.hold() {
				p.abort(l)
				return
			}
			if !send(chunk{data: buf[:n], due: time.Now().Add(p.currentDelay())}) {
				return
			}
		}
		if rerr != nil {
			send(chunk{end: rerr})
			return
		}
	}
}

// writeLine writes the chunks of one direction when they are due, until the end marker or an error.
func (p *Proxy) writeLine(l *link, dst *net.TCPConn, line <-chan chunk, counter *atomic.Uint64) {
	for c := range line {
		if c.end != nil {
			if errors.Is(c.end, io.EOF) && p.hold() {
				_ = dst.CloseWrite()
				return
			}
			if errors.Is(c.end, syscall.ECONNRESET) {
				_ = dst.SetLinger(0) // pass a reset on as a reset
			}
			p.abort(l)
			return
		}
		if err := p.waitUntil(c.due); err != nil {
			p.abort(l)
			return
		}
		if !p.hold() { // Blackhole may have started during the delay
			p.abort(l)
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			p.abort(l)
			return
		}
		counter.Add(uint64(len(c.data)))
	}
}

// hold blocks while the proxy is blackholed. It returns false when the link must
// stop (Cut or Close).
func (p *Proxy) hold() bool {
	for {
		p.mu.Lock()
		m, closed, ch := p.mode, p.closed, p.changed
		p.mu.Unlock()
		switch {
		case closed || m == modeCut:
			return false
		case m == modeNormal:
			return true
		}
		<-ch
	}
}

func (p *Proxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

func (p *Proxy) waitUntil(due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		return p.ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// abort closes both ends of l (a plain close; Cut has already sent RSTs).
func (p *Proxy) abort(l *link) {
	_ = l.client.Close()
	_ = l.server.Close()
}

// resetConn closes c with an RST instead of a FIN.
func resetConn(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}
