package agent

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/transport"
)

const (
	defaultWaitTimeout = 5 * time.Second
	maxWaitTimeout     = 10 * time.Minute
	unsubscribeTimeout = 5 * time.Second
)

// httpServer builds the local API server. streams is cancelled at shutdown to end subscriber streams.
// It sets up the API's shared bounds: the body budget and the connection limit.
func (a *Agent) httpServer(streams context.Context) *http.Server {
	a.body = newBudget(a.limits.bodyBudget)
	a.conns = newConnLimiter(a.limits.maxConnections)
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/publish", a.handlePublish)
	mux.HandleFunc("/v1/subscribe", func(w http.ResponseWriter, r *http.Request) { a.handleSubscribe(streams, w, r) })
	mux.HandleFunc("/v1/status", a.handleStatus)
	mux.HandleFunc("/v1/identity", a.handleIdentity)
	mux.HandleFunc("/v1/deadletters", a.handleDeadLetters)
	mux.HandleFunc("/v1/deadletters/requeue", a.handleRequeue)
	mux.HandleFunc("/metrics", a.handleMetrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s; see /v1/publish, /v1/subscribe, /v1/status, /metrics", r.URL.Path))
	})
	rt := a.limits.readTimeout
	return &http.Server{
		Handler: a.checkQuery(mux),
		// The listener hands over *limitedConn (connlimit.go); the caller's credentials are read
		// from the socket under it.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return connContext(ctx, unwrapConn(c)) },
		// ReadTimeout bounds reading a request, headers and body, so a stalled upload cannot hold
		// its connection and its budget. It does not cut a subscriber stream: net/http clears the
		// read deadline once a request's body is read (to notice a client that goes away), and a
		// stream's GET has none. No WriteTimeout, for the same streams; a reader that stops
		// reading only fills its own bounded buffer (hub.go).
		ReadTimeout:       rt,
		ReadHeaderTimeout: min(rt, 10*time.Second),
		IdleTimeout:       a.limits.idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
}

// checkQuery refuses a query string that Go's url.Query would read only in part: a ';' (once a
// separator, now a pair that is silently dropped) or a malformed escape.
func (a *Agent) checkQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, ";") {
			a.fail(w, http.StatusBadRequest, "';' is not a query separator; use '&' (write a ';' inside a value as %3B)")
			return
		}
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			a.fail(w, http.StatusBadRequest, fmt.Sprintf("bad query string: %v", err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiError is an error with the HTTP status it answers with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func (a *Agent) fail(w http.ResponseWriter, status int, msg string) {
	a.stats.apiErrors.Add(1)
	writeJSON(w, status, map[string]string{"error": msg})
}

// failErr answers with err's status (an *apiError), 403 for access errors, 503 with Retry-After
// for an exhausted body budget, 507 for a full queue or disk, 500 otherwise.
func (a *Agent) failErr(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		a.fail(w, ae.status, ae.msg)
	case errors.Is(err, errForbidden):
		a.fail(w, http.StatusForbidden, err.Error())
	case errors.Is(err, errBudgetExhausted):
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		a.fail(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, queue.ErrTooLarge):
		a.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("larger than the whole queue (max_bytes %d): %v", int64(a.cfg.Queue.MaxBytes), err))
	case errors.Is(err, queue.ErrInvalid):
		a.fail(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, queue.ErrFull):
		a.fail(w, http.StatusInsufficientStorage, fmt.Sprintf("queue full (max_bytes %d, overflow %q): %v", int64(a.cfg.Queue.MaxBytes), a.cfg.Queue.Overflow, err))
	case errors.Is(err, queue.ErrDiskFull), errors.Is(err, syscall.ENOSPC):
		a.fail(w, http.StatusInsufficientStorage, "disk full: the message was not stored: "+err.Error())
	case errors.Is(err, queue.ErrClosed):
		a.fail(w, http.StatusServiceUnavailable, "agent is shutting down")
	default:
		a.log.Error("local API request failed", "err", err)
		a.fail(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // "<identity id>" in advice stays readable
	enc.Encode(v)
}

func allowMethod(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, method)})
	return false
}

// publishParams are the query parameters of POST /v1/publish.
type publishParams struct {
	topic   string
	qos     byte
	retain  bool
	ttl     time.Duration
	wait    bool
	timeout time.Duration
}

func parsePublishParams(r *http.Request) (publishParams, error) {
	p := publishParams{qos: 1, timeout: defaultWaitTimeout}
	q := r.URL.Query()
	for k, vs := range q {
		if len(vs) != 1 {
			return p, badRequest("query parameter %q given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "topic":
			p.topic = v
		case "qos":
			switch v {
			case "0":
				p.qos = 0
			case "1":
				p.qos = 1
			default:
				return p, badRequest("bad qos %q: use 0 or 1", v)
			}
		case "retain":
			b, err := parseBool(v)
			if err != nil {
				return p, badRequest("bad retain %q: use 0 or 1", v)
			}
			p.retain = b
		case "ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return p, badRequest("bad ttl %q: use a positive duration such as 30s or 10m", v)
			}
			p.ttl = d
		case "wait":
			if v != "delivered" {
				return p, badRequest("bad wait %q: the only value is \"delivered\"", v)
			}
			p.wait = true
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > maxWaitTimeout {
				return p, badRequest("bad timeout %q: use a duration between 1ms and %s", v, maxWaitTimeout)
			}
			p.timeout = d
		default:
			return p, badRequest("unknown query parameter %q", k)
		}
	}
	return p, nil
}

func parseBool(v string) (bool, error) {
	switch v {
	case "1", "true":
		return true, nil
	case "0", "false", "":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

func (a *Agent) handlePublish(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-ndjson" {
		a.handlePublishBatch(w, r)
		return
	}
	p, err := parsePublishParams(r)
	if err != nil {
		a.failErr(w, err)
		return
	}
	if p.topic == "" {
		a.fail(w, http.StatusBadRequest, "missing topic: POST /v1/publish?topic=T")
		return
	}
	if err := a.limits.checkTopic(p.topic); err != nil {
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("bad topic %q: %v", truncate(p.topic, 80), err))
		return
	}
	if err := a.access.canPublish(peerFrom(r.Context()), p.topic); err != nil {
		a.failErr(w, err)
		return
	}
	if r.ContentLength > a.limits.maxPayload {
		a.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload of %d bytes is over the limit of %d bytes (api.max_payload)", r.ContentLength, a.limits.maxPayload))
		return
	}
	// Reserve what the message will hold before reading a byte of it.
	res, err := a.body.acquire(r.Context(), rawCharge(r.ContentLength, a.limits.maxPayload), budgetWait)
	if err != nil {
		a.failErr(w, err)
		return
	}
	defer res.release()
	payload, err := a.readPayload(w, r)
	if err != nil {
		a.failErr(w, err)
		return
	}
	m := queue.Message{Topic: p.topic, Payload: payload, QoS: p.qos, Retain: p.retain}
	if p.ttl > 0 {
		m.Expires = time.Now().Add(p.ttl)
	}
	ids, err := a.q.Append(r.Context(), m)
	res.release() // stored: the payload is no longer held (wait=delivered may take minutes)
	if err != nil {
		a.failErr(w, err)
		return
	}
	a.stats.accepted.Add(1)
	id := ids[0]
	if !p.wait {
		writeJSON(w, http.StatusAccepted, map[string]any{"id": id})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	err = a.q.WaitAcked(ctx, id)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "delivered": true})
	case errors.Is(err, queue.ErrDeadLettered):
		writeJSON(w, http.StatusBadGateway, map[string]any{"id": id, "error": "the broker refused the message; it is in the dead-letter store (GET /v1/deadletters): " + err.Error()})
	case errors.Is(err, queue.ErrExpired):
		writeJSON(w, http.StatusGone, map[string]any{"id": id, "error": "the message expired before it could be delivered"})
	case errors.Is(err, queue.ErrDropped):
		writeJSON(w, http.StatusGone, map[string]any{"id": id, "error": "the message was dropped from the full queue (overflow drop-oldest) before delivery"})
	case errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusGatewayTimeout, map[string]any{"id": id, "error": fmt.Sprintf("not acknowledged by the broker within %s; the message stays queued and will be delivered", p.timeout)})
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"id": id, "error": "stopped waiting: " + err.Error() + "; the message stays queued"})
	}
}

// readPayload reads a raw publish's body: into a buffer of exactly its length when that is known,
// else up to api.max_payload.
func (a *Agent) readPayload(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, a.limits.maxPayload)
	var payload []byte
	var err error
	if r.ContentLength >= 0 {
		payload = make([]byte, r.ContentLength)
		_, err = io.ReadFull(body, payload)
	} else {
		payload, err = io.ReadAll(body)
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return payload, nil
	case errors.As(err, &mbe):
		return nil, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over the limit of %d bytes (api.max_payload)", a.limits.maxPayload)}
	case isTimeout(err):
		return nil, a.readTimeoutError()
	}
	return nil, badRequest("reading body: %v; nothing was stored", err)
}

// readTimeoutError answers a body that did not arrive within api.read_timeout.
func (a *Agent) readTimeoutError() error {
	return &apiError{http.StatusRequestTimeout, fmt.Sprintf("request body not received within %s (api.read_timeout); nothing was stored", a.limits.readTimeout)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func (a *Agent) handlePublishBatch(w http.ResponseWriter, r *http.Request) {
	for k := range r.URL.Query() {
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q for an NDJSON publish (put topic, qos and retain on each line)", k))
		return
	}
	if r.ContentLength > a.limits.maxBatchBytes {
		a.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes is over the limit of %d bytes (api.max_batch_bytes); split the batch; nothing was stored", r.ContentLength, a.limits.maxBatchBytes))
		return
	}
	// Cover the whole body up front when its length is known (decoded messages are never longer
	// than their lines), so that a batch does not stop half-way for want of budget; the messages'
	// own overhead, and a body of unknown length, are charged line by line.
	want := int64(lineBufferSize)
	if r.ContentLength > 0 {
		want += chargeFactor * r.ContentLength
	}
	res, err := a.body.acquire(r.Context(), want, budgetWait)
	if err != nil {
		a.failErr(w, err)
		return
	}
	defer res.release()
	msgs, err := a.readBatch(w, r, res)
	if err != nil {
		a.failErr(w, err)
		return
	}
	if len(msgs) == 0 {
		a.fail(w, http.StatusBadRequest, "empty NDJSON body: no messages")
		return
	}
	ids, err := a.q.Append(r.Context(), msgs...)
	res.release()
	if err != nil {
		a.failErr(w, err)
		return
	}
	a.stats.accepted.Add(uint64(len(ids)))
	writeJSON(w, http.StatusAccepted, map[string]any{"accepted": len(ids), "first_id": ids[0], "last_id": ids[len(ids)-1]})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// streamLine is one message of a subscribe stream.
type streamLine struct {
	Topic         string  `json:"topic"`
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 *string `json:"payload_base64,omitempty"`
	QoS           byte    `json:"qos"`
	Retain        bool    `json:"retain"`
}

func (a *Agent) handleSubscribe(streams context.Context, w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet) {
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "topic" {
			a.fail(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q", k))
			return
		}
	}
	filters := q["topic"]
	if len(filters) == 0 {
		a.fail(w, http.StatusBadRequest, "missing topic: GET /v1/subscribe?topic=FILTER[&topic=FILTER2]")
		return
	}
	if len(filters) > a.limits.maxFilters {
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("%d filters in one request, over the limit of %d", len(filters), a.limits.maxFilters))
		return
	}
	pr := peerFrom(r.Context())
	for _, f := range filters {
		if err := a.limits.checkFilter(f); err != nil {
			a.fail(w, http.StatusBadRequest, fmt.Sprintf("bad topic filter %q: %v", truncate(f, 80), err))
			return
		}
		if err := a.access.canSubscribe(pr, f); err != nil {
			a.failErr(w, err)
			return
		}
	}
	sse := false
	for _, acc := range r.Header.Values("Accept") {
		if mt, _, _ := mime.ParseMediaType(acc); mt == "text/event-stream" {
			sse = true
		}
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		a.fail(w, http.StatusInternalServerError, "streaming not supported")
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(streams, cancel)
	defer stop()

	s, err := a.hub.add(ctx, filters)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errTooManySubscribers) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
			a.fail(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if errors.Is(err, transport.ErrTooManySubscriptions) {
			a.fail(w, http.StatusBadRequest, "subscribe: "+err.Error()+" (broker.max_subscriptions)")
			return
		}
		a.fail(w, http.StatusBadGateway, "subscribe: "+err.Error())
		return
	}
	defer a.hub.remove(s)

	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var batch []transport.Received
	defer func() { // release what was taken and not written
		for _, m := range batch {
			s.done(m)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		batch = s.take()
		for len(batch) > 0 {
			m := batch[0]
			batch[0] = transport.Received{} // the payload is not kept once written
			batch = batch[1:]
			if sse {
				bw.WriteString("data: ")
			}
			err := enc.Encode(toStreamLine(m.Topic, m.Payload, m.QoS, m.Retain))
			if sse {
				bw.WriteString("\n")
			}
			s.done(m)
			if err != nil {
				return
			}
		}
		if !s.pending() { // flush when caught up, so bursts go out in few writes
			if bw.Flush() != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func toStreamLine(topic string, payload []byte, qos byte, retain bool) streamLine {
	l := streamLine{Topic: topic, QoS: qos, Retain: retain}
	if utf8.Valid(payload) {
		s := string(payload)
		l.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(payload)
		l.PayloadBase64 = &s
	}
	return l
}
