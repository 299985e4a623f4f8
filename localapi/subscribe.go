package localapi

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// subscribe serves GET /v1/subscribe?topic=F[&topic=F2…][&broker=NAME]: a stream of NDJSON lines
// (Message, each naming its broker), or SSE events for Accept: text/event-stream, until the client
// goes away or the server shuts down. Without broker the filters are subscribed with every broker.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	if !s.onlyParams(w, r, "topic", "broker") {
		return
	}
	filters := r.URL.Query()["topic"]
	broker, err := brokerParam(r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	if len(filters) == 0 {
		s.fail(w, http.StatusBadRequest, "missing topic: GET /v1/subscribe?topic=FILTER[&topic=FILTER2]")
		return
	}
	if len(filters) > s.lim.MaxFilters {
		s.fail(w, http.StatusBadRequest, fmt.Sprintf("%d filters in one request, over the limit of %d", len(filters), s.lim.MaxFilters))
		return
	}
	pr := peerFrom(r.Context())
	for _, f := range filters {
		if err := s.b.CheckFilter(f, broker); err != nil {
			msg := fmt.Sprintf("bad topic filter %q: %v", truncate(f, 80), err)
			if broker != "" {
				msg = fmt.Sprintf("cannot subscribe to %q with broker %q: %v", truncate(f, 80), truncate(broker, 80), err)
			}
			s.fail(w, http.StatusBadRequest, msg)
			return
		}
		if err := s.access.canSubscribe(pr, f); err != nil {
			s.failErr(w, err)
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
		s.fail(w, http.StatusInternalServerError, "streaming not supported")
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()

	sub, err := s.b.Subscribe(ctx, filters, broker)
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, ErrBusy):
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
			s.fail(w, http.StatusServiceUnavailable, err.Error())
		case errors.Is(err, ErrBadInput):
			s.fail(w, http.StatusBadRequest, "subscribe: "+err.Error())
		default:
			s.fail(w, http.StatusBadGateway, "subscribe: "+err.Error())
		}
		return
	}
	defer sub.Close()

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
	write := func(from, topic string, payload []byte, qos byte, retain bool) error {
		if sse {
			bw.WriteString("data: ")
		}
		err := enc.Encode(toMessage(from, topic, payload, qos, retain))
		if sse {
			bw.WriteString("\n")
		}
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Wake():
		}
		if sub.Drain(write) != nil {
			return
		}
		if !sub.Pending() { // flush when caught up, so bursts go out in few writes
			if bw.Flush() != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// EncodePayload returns p as the API writes a payload: as text (payload) when it is UTF-8, else in
// base64 (payload_base64); the other result is nil. The CLI's pub -l writes its batch lines with it.
func EncodePayload(p []byte) (text, b64 *string) {
	if utf8.Valid(p) {
		s := string(p)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(p)
	return nil, &s
}

// toMessage is a message as the API shows it: the payload as text when it is UTF-8, else base64.
func toMessage(broker, topic string, payload []byte, qos byte, retain bool) Message {
	l := Message{Broker: broker, Topic: topic, QoS: qos, Retain: retain}
	l.Payload, l.PayloadBase64 = EncodePayload(payload)
	return l
}
