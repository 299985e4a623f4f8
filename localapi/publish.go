package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/queue"
)

const (
	defaultWaitTimeout = 5 * time.Second
	maxWaitTimeout     = 10 * time.Minute
)

// apiError is an error with the HTTP status it answers with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func (s *Server) fail(w http.ResponseWriter, status int, msg string) {
	s.errors.Add(1)
	writeJSON(w, status, ErrorAnswer{Error: msg})
}

// failErr answers with err's status (an *apiError), 403 for access errors, 400 and 404 for the
// Backend's ErrBadInput and ErrNotFound, 503 with Retry-After for an exhausted body budget, 507
// for a full queue or disk, 500 otherwise.
func (s *Server) failErr(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		s.fail(w, ae.status, ae.msg)
	case errors.Is(err, errForbidden):
		s.fail(w, http.StatusForbidden, err.Error())
	case errors.Is(err, ErrBadInput):
		s.fail(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		s.fail(w, http.StatusNotFound, err.Error())
	case errors.Is(err, errBudgetExhausted):
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		s.fail(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, queue.ErrTooLarge):
		s.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("larger than the whole queue (max_bytes %d): %v", s.lim.QueueMaxBytes, err))
	case errors.Is(err, queue.ErrInvalid):
		s.fail(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, queue.ErrFull):
		s.fail(w, http.StatusInsufficientStorage, fmt.Sprintf("queue full (max_bytes %d, overflow %q): %v", s.lim.QueueMaxBytes, s.lim.Overflow, err))
	case errors.Is(err, queue.ErrDiskFull), errors.Is(err, syscall.ENOSPC):
		s.fail(w, http.StatusInsufficientStorage, "disk full: the message was not stored: "+err.Error())
	case errors.Is(err, queue.ErrClosed):
		s.fail(w, http.StatusServiceUnavailable, "agent is shutting down")
	default:
		s.log.Error("local API request failed", "err", err)
		s.fail(w, http.StatusInternalServerError, err.Error())
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

// publishParams are the query parameters of POST /v1/publish.
type publishParams struct {
	topic   string
	broker  string // "": route by the brokers' publish filters
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
		case "broker":
			p.broker = v
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

// publish serves POST /v1/publish: one raw message, or NDJSON (ndjson.go).
func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-ndjson" {
		s.publishBatch(w, r)
		return
	}
	p, err := parsePublishParams(r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	if p.topic == "" {
		s.fail(w, http.StatusBadRequest, "missing topic: POST /v1/publish?topic=T")
		return
	}
	to, err := s.b.Route(p.topic, p.broker)
	if err != nil {
		s.failErr(w, routeError(p.topic, p.broker, err))
		return
	}
	if err := s.access.canPublish(peerFrom(r.Context()), p.topic); err != nil {
		s.failErr(w, err)
		return
	}
	if r.ContentLength > s.lim.MaxPayload {
		s.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload of %d bytes is over the limit of %d bytes (api.max_payload)", r.ContentLength, s.lim.MaxPayload))
		return
	}
	// Reserve what the message will hold before reading a byte of it.
	res, err := s.body.acquire(r.Context(), rawCharge(r.ContentLength, s.lim.MaxPayload), budgetWait)
	if err != nil {
		s.failErr(w, err)
		return
	}
	defer res.release()
	payload, err := s.readPayload(w, r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	m := queue.Message{Topic: p.topic, Payload: payload, QoS: p.qos, Retain: p.retain}
	if p.ttl > 0 {
		m.Expires = time.Now().Add(p.ttl)
	}
	ids, err := s.b.Store(r.Context(), []queue.Message{m}, []queue.Targets{to})
	res.release() // stored: the payload is no longer held (wait=delivered may take minutes)
	if err != nil {
		s.failErr(w, err)
		return
	}
	id := ids[0]
	if !p.wait {
		writeJSON(w, http.StatusAccepted, Published{ID: id})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	err = s.b.WaitDelivered(ctx, id, to)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, Published{ID: id, Delivered: true})
	case errors.Is(err, queue.ErrDeadLettered):
		writeJSON(w, http.StatusBadGateway, Published{ID: id, Error: "the broker refused the message; it is in the dead-letter store (GET /v1/deadletters): " + err.Error()})
	case errors.Is(err, queue.ErrExpired):
		writeJSON(w, http.StatusGone, Published{ID: id, Error: "the message expired before it could be delivered"})
	case errors.Is(err, queue.ErrDropped):
		writeJSON(w, http.StatusGone, Published{ID: id, Error: "the message was dropped from the full queue (overflow drop-oldest) before delivery"})
	case errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusGatewayTimeout, Published{ID: id, Error: fmt.Sprintf("not acknowledged by the broker within %s; the message stays queued and will be delivered", p.timeout)})
	default:
		writeJSON(w, http.StatusServiceUnavailable, Published{ID: id, Error: "stopped waiting: " + err.Error() + "; the message stays queued"})
	}
}

// readPayload reads a raw publish's body: into a buffer of exactly its length when that is known,
// else up to api.max_payload.
func (s *Server) readPayload(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, s.lim.MaxPayload)
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
		return nil, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over the limit of %d bytes (api.max_payload)", s.lim.MaxPayload)}
	case isTimeout(err):
		return nil, s.readTimeoutError()
	}
	return nil, badRequest("reading body: %v; nothing was stored", err)
}

// readTimeoutError answers a body that did not arrive within api.read_timeout.
func (s *Server) readTimeoutError() error {
	return &apiError{http.StatusRequestTimeout, fmt.Sprintf("request body not received within %s (api.read_timeout); nothing was stored", s.lim.ReadTimeout)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// routeError is the 400 for a message that Backend.Route refused (an unknown broker, a topic no
// broker takes, a topic a target broker cannot carry): the Backend's message, with the topic and
// the broker asked for.
func routeError(topic, broker string, err error) error {
	if broker == "" {
		return badRequest("bad topic %q: %v", truncate(topic, 80), err)
	}
	return badRequest("cannot publish %q to broker %q: %v", truncate(topic, 80), truncate(broker, 80), err)
}

func (s *Server) publishBatch(w http.ResponseWriter, r *http.Request) {
	// ?broker= is the broker of every line without its own "broker".
	var broker string
	for k, vs := range r.URL.Query() {
		if k != "broker" {
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q for an NDJSON publish (put topic, qos and retain on each line; only broker may be in the query)", k))
			return
		}
		if len(vs) != 1 {
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q given %d times", k, len(vs)))
			return
		}
		broker = vs[0]
	}
	if r.ContentLength > s.lim.MaxBatchBytes {
		s.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes is over the limit of %d bytes (api.max_batch_bytes); split the batch; nothing was stored", r.ContentLength, s.lim.MaxBatchBytes))
		return
	}
	// Cover the whole body up front when its length is known (decoded messages are never longer
	// than their lines), so that a batch does not stop half-way for want of budget; the messages'
	// own overhead, and a body of unknown length, are charged line by line.
	want := int64(lineBufferSize)
	if r.ContentLength > 0 {
		want += chargeFactor * r.ContentLength
	}
	res, err := s.body.acquire(r.Context(), want, budgetWait)
	if err != nil {
		s.failErr(w, err)
		return
	}
	defer res.release()
	msgs, to, err := s.readBatch(w, r, res, broker)
	if err != nil {
		s.failErr(w, err)
		return
	}
	if len(msgs) == 0 {
		s.fail(w, http.StatusBadRequest, "empty NDJSON body: no messages")
		return
	}
	ids, err := s.b.Store(r.Context(), msgs, to)
	res.release()
	if err != nil {
		s.failErr(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Accepted{Accepted: len(ids), FirstID: ids[0], LastID: ids[len(ids)-1]})
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
