package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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
func (a *Agent) httpServer(streams context.Context) *http.Server {
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
	return &http.Server{
		Handler:           mux,
		ConnContext:       connContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
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

// failErr answers with err's status (an *apiError), 403 for access errors, 507 for a full queue
// or disk, 500 otherwise.
func (a *Agent) failErr(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		a.fail(w, ae.status, ae.msg)
	case errors.Is(err, errForbidden):
		a.fail(w, http.StatusForbidden, err.Error())
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
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.limits.maxPayload))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over the limit of %d bytes", a.limits.maxPayload))
			return
		}
		a.fail(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	m := queue.Message{Topic: p.topic, Payload: payload, QoS: p.qos, Retain: p.retain}
	if p.ttl > 0 {
		m.Expires = time.Now().Add(p.ttl)
	}
	ids, err := a.q.Append(r.Context(), m)
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

// batchLine is one line of an NDJSON publish.
type batchLine struct {
	Topic         *string `json:"topic"`
	Payload       *string `json:"payload"`
	PayloadBase64 *string `json:"payload_base64"`
	QoS           *int    `json:"qos"`
	Retain        *bool   `json:"retain"`
	TTL           *string `json:"ttl"`
}

func (a *Agent) handlePublishBatch(w http.ResponseWriter, r *http.Request) {
	for k := range r.URL.Query() {
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q for an NDJSON publish (put topic, qos and retain on each line)", k))
		return
	}
	msgs, err := a.readBatch(w, r)
	if err != nil {
		a.failErr(w, err)
		return
	}
	if len(msgs) == 0 {
		a.fail(w, http.StatusBadRequest, "empty NDJSON body: no messages")
		return
	}
	ids, err := a.q.Append(r.Context(), msgs...)
	if err != nil {
		a.failErr(w, err)
		return
	}
	a.stats.accepted.Add(uint64(len(ids)))
	writeJSON(w, http.StatusAccepted, map[string]any{"accepted": len(ids), "first_id": ids[0], "last_id": ids[len(ids)-1]})
}

// readBatch parses and validates every line; any bad line fails the whole request, naming the line.
func (a *Agent) readBatch(w http.ResponseWriter, r *http.Request) ([]queue.Message, error) {
	body := http.MaxBytesReader(w, r.Body, a.limits.maxBatchBytes)
	sc := bufio.NewScanner(body)
	// A line holds at most a base64 payload of maxPayload bytes plus the topic and JSON framing.
	sc.Buffer(make([]byte, 0, 64<<10), int(a.limits.maxPayload*4/3)+a.limits.maxTopicBytes+4096)
	pr := peerFrom(r.Context())
	var msgs []queue.Message
	now := time.Now()
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if len(msgs) >= a.limits.maxBatchLines {
			return nil, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d messages in one request; split the batch", a.limits.maxBatchLines)}
		}
		m, err := a.parseLine(line, pr, now)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				return nil, &apiError{ae.status, fmt.Sprintf("line %d: %s; nothing was stored", n, ae.msg)}
			}
			return nil, fmt.Errorf("line %d: %w; nothing was stored", n, err)
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the limit of %d bytes; split the batch; nothing was stored", a.limits.maxBatchBytes)}
		case errors.Is(err, bufio.ErrTooLong):
			return nil, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("line %d: payload over the limit of %d bytes; nothing was stored", n+1, a.limits.maxPayload)}
		}
		return nil, badRequest("reading body: %v", err)
	}
	return msgs, nil
}

func (a *Agent) parseLine(line []byte, pr peer, now time.Time) (queue.Message, error) {
	var bl batchLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bl); err != nil {
		return queue.Message{}, badRequest("bad JSON: %v", err)
	}
	if dec.More() {
		return queue.Message{}, badRequest("bad JSON: more than one value on the line")
	}
	if bl.Topic == nil || *bl.Topic == "" {
		return queue.Message{}, badRequest("missing topic")
	}
	m := queue.Message{Topic: *bl.Topic, QoS: 1}
	if err := a.limits.checkTopic(m.Topic); err != nil {
		return m, badRequest("bad topic %q: %v", truncate(m.Topic, 80), err)
	}
	if err := a.access.canPublish(pr, m.Topic); err != nil {
		return m, &apiError{http.StatusForbidden, err.Error()}
	}
	switch {
	case bl.Payload != nil && bl.PayloadBase64 != nil:
		return m, badRequest("give payload or payload_base64, not both")
	case bl.Payload != nil:
		m.Payload = []byte(*bl.Payload)
	case bl.PayloadBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*bl.PayloadBase64)
		if err != nil {
			return m, badRequest("bad payload_base64: %v", err)
		}
		m.Payload = b
	default:
		m.Payload = []byte{}
	}
	if int64(len(m.Payload)) > a.limits.maxPayload {
		return m, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("payload is %d bytes, over the limit of %d", len(m.Payload), a.limits.maxPayload)}
	}
	if bl.QoS != nil {
		if *bl.QoS != 0 && *bl.QoS != 1 {
			return m, badRequest("bad qos %d: use 0 or 1", *bl.QoS)
		}
		m.QoS = byte(*bl.QoS)
	}
	if bl.Retain != nil {
		m.Retain = *bl.Retain
	}
	if bl.TTL != nil {
		d, err := time.ParseDuration(*bl.TTL)
		if err != nil || d <= 0 {
			return m, badRequest("bad ttl %q: use a positive duration such as 30s", *bl.TTL)
		}
		m.Expires = now.Add(d)
	}
	return m, nil
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
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.ch:
			if sse {
				bw.WriteString("data: ")
			}
			if err := enc.Encode(toStreamLine(m.Topic, m.Payload, m.QoS, m.Retain)); err != nil {
				return
			}
			if sse {
				bw.WriteString("\n")
			}
			if len(s.ch) == 0 { // flush when caught up, so bursts go out in few writes
				if bw.Flush() != nil {
					return
				}
				flusher.Flush()
			}
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
