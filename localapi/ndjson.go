package localapi

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/queue"
)

// This file parses an NDJSON publish (POST /v1/publish, Content-Type: application/x-ndjson) as a
// stream: one line at a time from the size-limited body, keeping only the decoded messages, each
// charged to the body budget as it is decoded. Any bad line fails the whole request, naming the line;
// nothing is stored.

// lineBufferSize is the read buffer of an NDJSON body; a longer line is gathered in a buffer that
// grows (and is charged) up to the longest line allowed.
const lineBufferSize = 32 << 10

// errLineTooLong is returned by lineReader.next for a line over its maximum.
var errLineTooLong = errors.New("line too long")

// lineReader reads lines of at most max bytes (without the '\n') from r.
type lineReader struct {
	br   *bufio.Reader
	long []byte // gathers a line longer than br's buffer
	max  int
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, lineBufferSize), max: max}
}

// next returns the next line without its '\n', valid until the next call; io.EOF after the last.
// A last line without '\n' is a line.
func (lr *lineReader) next() ([]byte, error) {
	frag, err := lr.br.ReadSlice('\n')
	if err == nil || (errors.Is(err, io.EOF) && len(frag) > 0) {
		line := bytes.TrimSuffix(frag, []byte("\n"))
		if len(line) > lr.max {
			return nil, errLineTooLong
		}
		return line, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	lr.long = append(lr.long[:0], frag...)
	for {
		frag, err = lr.br.ReadSlice('\n')
		if len(lr.long)+len(frag) > lr.max+1 { // +1: the '\n'
			return nil, errLineTooLong
		}
		lr.long = append(lr.long, frag...)
		switch {
		case err == nil, errors.Is(err, io.EOF):
			return bytes.TrimSuffix(lr.long, []byte("\n")), nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, err
		}
	}
}

// checkLineText rejects what encoding/json would silently replace with U+FFFD: bytes that are not
// UTF-8, and \u escapes of lone or unpaired UTF-16 surrogates. JSON text is UTF-8 (RFC 8259 §8.1),
// and a string holding a lone surrogate is not Unicode text (§8.2); a payload that is not text
// belongs in payload_base64.
func checkLineText(line []byte) error {
	if !utf8.Valid(line) {
		i := 0
		for i < len(line) {
			r, n := utf8.DecodeRune(line[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return badRequest("invalid UTF-8 at byte %d: JSON text must be UTF-8; send binary payloads as payload_base64", i+1)
	}
	for i := 0; i < len(line); i++ {
		if line[i] != '\\' {
			continue
		}
		i++ // the escaped character; an escaped '\\' is skipped as a whole
		if i >= len(line) || line[i] != 'u' {
			continue
		}
		r, ok := hex4(line[i+1:])
		if !ok {
			continue // a bad escape: the JSON decoder names it
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return badRequest(`lone surrogate escape \u%04x: a JSON string must be valid Unicode; send binary payloads as payload_base64`, r)
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 < len(line) && line[i+1] == '\\' && line[i+2] == 'u' {
				if lo, ok := hex4(line[i+3:]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 6
					continue
				}
			}
			return badRequest(`unpaired surrogate escape \u%04x (not followed by a low surrogate \udc00-\udfff): a JSON string must be valid Unicode; send binary payloads as payload_base64`, r)
		}
	}
	return nil
}

// hex4 reads the 4 hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// parseBatchLine parses and validates one non-empty NDJSON line against l; route checks its
// topic and its broker (the line's "broker", else broker). It does not check access.
func parseBatchLine(line []byte, l Limits, route func(topic, broker string) error, broker string, now time.Time) (queue.Message, error) {
	if err := checkLineText(line); err != nil {
		return queue.Message{}, err
	}
	var bl BatchLine
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
	if bl.Broker != nil {
		broker = *bl.Broker
	}
	if err := route(m.Topic, broker); err != nil {
		return m, routeError(m.Topic, broker, err)
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
	if int64(len(m.Payload)) > l.MaxPayload {
		return m, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("payload is %d bytes, over the limit of %d (api.max_payload)", len(m.Payload), l.MaxPayload)}
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

// maxLineBytes is the longest NDJSON line: a payload of maxPayload bytes base64-encoded, the
// longest topic and the JSON framing.
func (l Limits) maxLineBytes() int {
	return int(l.MaxPayload*4/3) + l.MaxTopicBytes + 4096
}

// readBatch reads and validates every line of an NDJSON publish, charging res for what it keeps;
// any bad line fails the whole request, naming the line. broker is ?broker= (a line's own
// "broker" wins).
func (s *Server) readBatch(w http.ResponseWriter, r *http.Request, res *reservation, broker string) ([]queue.Message, []queue.Targets, error) {
	body := http.MaxBytesReader(w, r.Body, s.lim.MaxBatchBytes)
	lr := newLineReader(body, s.lim.maxLineBytes())
	pr := peerFrom(r.Context())
	now := time.Now()
	var msgs []queue.Message
	var to []queue.Targets
	var target queue.Targets
	route := func(topic, to string) (err error) {
		target, err = s.b.Route(topic, to)
		return err
	}
	held := int64(lineBufferSize) // what res must cover: the buffers and the messages so far
	longCharged := 0
	for n := 1; ; n++ {
		line, err := lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return msgs, to, nil
			}
			return nil, nil, s.batchReadError(n, err)
		}
		if c := cap(lr.long); c > longCharged {
			held += int64(c - longCharged)
			longCharged = c
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(msgs) >= s.lim.MaxBatchLines {
			return nil, nil, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d messages in one request (api.max_batch_lines); split the batch; nothing was stored", s.lim.MaxBatchLines)}
		}
		m, err := parseBatchLine(line, s.lim, route, broker, now)
		if err == nil {
			if aerr := s.access.canPublish(pr, m.Topic); aerr != nil {
				err = &apiError{http.StatusForbidden, aerr.Error()}
			}
		}
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				return nil, nil, &apiError{ae.status, fmt.Sprintf("line %d: %s; nothing was stored", n, ae.msg)}
			}
			return nil, nil, fmt.Errorf("line %d: %w; nothing was stored", n, err)
		}
		held += messageCharge(m.Topic, m.Payload)
		if held > res.n {
			if err := res.grow(held - res.n); err != nil {
				return nil, nil, fmt.Errorf("line %d: %w; nothing was stored", n, err)
			}
		}
		msgs = append(msgs, m)
		to = append(to, target)
	}
}

func (s *Server) batchReadError(n int, err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the limit of %d bytes (api.max_batch_bytes); split the batch; nothing was stored", s.lim.MaxBatchBytes)}
	case errors.Is(err, errLineTooLong):
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("line %d: longer than %d bytes, more than a payload of api.max_payload (%d bytes) base64-encoded; nothing was stored", n, s.lim.maxLineBytes(), s.lim.MaxPayload)}
	case isTimeout(err):
		return s.readTimeoutError()
	}
	return badRequest("reading body at line %d: %v; nothing was stored", n, err)
}
