package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
)

// notifier speaks the systemd notify protocol (sd_notify(3)): datagrams of
// newline-separated VAR=value assignments sent to the unixgram socket named
// by $NOTIFY_SOCKET. A name starting with '@' is an abstract socket; Go's
// net package maps the '@' to the leading NUL byte itself.
//
// A nil *notifier (not started by systemd) ignores every call. Notify may
// be called from several goroutines.
type notifier struct {
	mu   sync.Mutex
	conn *net.UnixConn
}

// newNotifier connects to $NOTIFY_SOCKET; it returns nil, nil when the
// variable is unset (not run by systemd with Type=notify).
func newNotifier(getenv func(string) string) (*notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil, nil
	}
	if name[0] != '/' && name[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q is neither a path nor an abstract socket name", name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("connect to systemd notify socket %s: %w", name, err)
	}
	return &notifier{conn: conn}, nil
}

// Notify sends one datagram, e.g. "READY=1\nSTATUS=serving".
func (n *notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errors.New("systemd notify socket already closed")
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("systemd notify %q: %w", state, err)
	}
	return nil
}

// Close releases the socket; later Notify calls fail.
func (n *notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// watchdogInterval returns how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises. ok is false when the
// watchdog is off, or when $WATCHDOG_PID names another process.
func watchdogInterval(getenv func(string) string) (every time.Duration, ok bool, err error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, false, nil
	}
	if pid := getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, false, fmt.Errorf("WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond / 2, true, nil
}

// watchdog sends WATCHDOG=1 every interval until ctx is done. It returns
// when ctx is done; the caller waits for it.
func (n *notifier) watchdog(ctx context.Context, every time.Duration, healthy func(context.Context) error, onErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy != nil {
				hctx, cancel := context.WithTimeout(ctx, every)
				err := healthy(hctx)
				cancel()
				if err != nil {
					// No ping: if this lasts for WatchdogSec, systemd restarts the agent.
					onErr(fmt.Errorf("unhealthy, not pinging the watchdog: %w", err))
					continue
				}
			}
			if err := n.Notify("WATCHDOG=1"); err != nil {
				onErr(err)
			}
		}
	}
}

// How STATUS= follows the agent: its state is read every statusPoll; a new connection state is sent
// at once, any other change (the queue depth) at most once per statusMinGap, so a busy queue costs
// systemd one datagram a second.
const (
	statusPoll   = 250 * time.Millisecond
	statusMinGap = time.Second
)

// statusSource is what the STATUS= reporter reads: *agent.Agent.
type statusSource interface{ Status() localapi.Status }

// statusText is the STATUS= line for st: "connected to wss://broker/mqtt, 0 queued". It holds no
// secret: the endpoint loses any user info, query string (a presigned URL's signature) or fragment.
func statusText(st localapi.Status) string {
	endpoint := st.Endpoint
	if i := strings.IndexAny(endpoint, "?#"); i >= 0 {
		endpoint = endpoint[:i]
	}
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 && at < strings.IndexByte(rest+"/", '/') {
			endpoint = scheme + "://" + rest[at+1:]
		}
	}
	var b strings.Builder
	switch {
	case len(st.Brokers) > 1: // "degraded: aws connected, plant disconnected"
		b.WriteString(st.State)
		sep := ": "
		for _, br := range st.Brokers {
			b.WriteString(sep + br.Name + " " + br.State)
			sep = ", "
		}
	case st.State == "connected":
		b.WriteString("connected to " + endpoint)
	case st.State == "connecting":
		b.WriteString("connecting to " + endpoint)
	case st.State == "disconnected":
		b.WriteString("disconnected from " + endpoint + ", retrying")
	default:
		b.WriteString(st.State)
	}
	fmt.Fprintf(&b, ", %d queued", st.Queue.Depth)
	if st.Queue.DeadLetters > 0 {
		fmt.Fprintf(&b, ", %d dead letters", st.Queue.DeadLetters)
	}
	return b.String()
}

// statusThrottle decides when STATUS= is sent. Not safe for concurrent use.
type statusThrottle struct {
	minGap time.Duration
	text   string    // last sent
	state  string    // connection state last sent
	since  time.Time // its Since: a reconnect between two polls changes it even if State reads the same
	sentAt time.Time
}

// next returns the text to send for st at now, or ok false when nothing is due.
func (t *statusThrottle) next(st localapi.Status, now time.Time) (text string, ok bool) {
	text = statusText(st)
	stateChanged := t.sentAt.IsZero() || st.State != t.state || !st.Since.Equal(t.since)
	if !stateChanged && (text == t.text || now.Sub(t.sentAt) < t.minGap) {
		return "", false // unchanged, or a depth change within the gap: a later poll sends the latest
	}
	t.text, t.state, t.since, t.sentAt = text, st.State, st.Since, now
	return text, true
}

// reportStatus keeps STATUS= current until ctx is done (see statusPoll). It returns when ctx is
// done; the caller waits for it.
func (n *notifier) reportStatus(ctx context.Context, poll, minGap time.Duration, status func() localapi.Status, onErr func(error)) {
	th := statusThrottle{minGap: minGap}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if text, ok := th.next(status(), time.Now()); ok && ctx.Err() == nil {
			if err := n.Notify("STATUS=" + text); err != nil {
				onErr(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
