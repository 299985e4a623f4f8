package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/edge-agent/edge-agent/queue"
)

const (
	defaultDeadLetterPage = 100
	maxDeadLetterPage     = 1000
	// deadLetterPageBytes bounds a page of GET /v1/deadletters: it stops before the entry that
	// would take it past this size (a page holds at least one entry) and gives "next_after".
	deadLetterPageBytes = 1 << 20
	// deadLetterFetch is how many dead letters are read from the queue at once.
	deadLetterFetch = 4
)

// listDeadLetters serves GET /v1/deadletters?after=ID&limit=N. The listing is streamed and paged
// by bytes as well as by limit (DeadLetterPage).
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	var after uint64
	limit := defaultDeadLetterPage
	for k, vs := range r.URL.Query() {
		if len(vs) != 1 {
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q given %d times", k, len(vs)))
			return
		}
		v := vs[0]
		switch k {
		case "after":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				s.fail(w, http.StatusBadRequest, fmt.Sprintf("bad after %q: use a message id", v))
				return
			}
			after = n
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxDeadLetterPage {
				s.fail(w, http.StatusBadRequest, fmt.Sprintf("bad limit %q: use 1..%d", v, maxDeadLetterPage))
				return
			}
			limit = n
		default:
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q", k))
			return
		}
	}
	// A page holds one entry (and its encoding) at a time: cover the largest.
	res, err := s.body.acquire(r.Context(), deadLetterCharge(s.lim.MaxPayload), budgetWait)
	if err != nil {
		s.failErr(w, err)
		return
	}
	defer res.release()
	it := deadLetterIter{b: s.b, after: after}
	next, err := it.next()
	if err != nil {
		s.failErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	var entry bytes.Buffer
	enc := json.NewEncoder(&entry)
	enc.SetEscapeHTML(false)
	io.WriteString(w, `{"dead_letters":[`)
	written, n := 0, 0
	var last uint64
	for next != nil {
		d := next
		entry.Reset()
		if n > 0 {
			entry.WriteByte(',')
		}
		enc.Encode(DeadLetter{ID: d.Seq, Message: toMessage(d.Topic, d.Payload, d.QoS, d.Retain),
			Reason: d.Reason, At: d.At.UTC(), Created: d.Created.UTC()})
		if n > 0 && written+entry.Len() > deadLetterPageBytes {
			break // next stays: there is more
		}
		if _, err := w.Write(bytes.TrimSuffix(entry.Bytes(), []byte("\n"))); err != nil {
			return
		}
		written += entry.Len()
		n++
		last = d.Seq
		if next, err = it.next(); err != nil {
			s.log.Error("listing dead letters", "err", err)
			panic(http.ErrAbortHandler) // the client sees a cut answer, not a short list
		}
		if n == limit {
			break
		}
	}
	fmt.Fprintf(w, `],"total":%d`, s.b.Status().Queue.DeadLetters)
	if next != nil {
		fmt.Fprintf(w, `,"next_after":%d`, last)
	}
	io.WriteString(w, "}\n")
}

// deleteDeadLetters serves DELETE /v1/deadletters?id=…&id=… (or ?all=1).
func (s *Server) deleteDeadLetters(w http.ResponseWriter, r *http.Request) {
	ids, err := s.deadLetterIDs(r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	n, err := s.b.DeleteDeadLetters(r.Context(), "", ids...)
	if err != nil {
		s.failErr(w, err)
		return
	}
	s.log.Info("dead letters deleted", "count", n)
	writeJSON(w, http.StatusOK, Deleted{Deleted: n})
}

// requeue serves POST /v1/deadletters/requeue?id=…&id=… (or ?all=1): the messages go back to
// the tail of the queue with new ids, durably, all or nothing.
func (s *Server) requeue(w http.ResponseWriter, r *http.Request) {
	ids, err := s.deadLetterIDs(r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	if len(ids) == 0 {
		writeJSON(w, http.StatusOK, Requeued{IDs: []uint64{}})
		return
	}
	newIDs, err := s.b.Requeue(r.Context(), "", ids...)
	if errors.Is(err, queue.ErrNotDeadLettered) {
		s.fail(w, http.StatusNotFound, err.Error()+"; nothing was requeued")
		return
	}
	if err != nil {
		s.failErr(w, err)
		return
	}
	s.log.Info("dead letters requeued", "count", len(newIDs))
	writeJSON(w, http.StatusOK, Requeued{Requeued: len(newIDs), IDs: newIDs})
}

// deadLetterIDs reads ?id=N (repeatable) or ?all=1.
func (s *Server) deadLetterIDs(r *http.Request) ([]uint64, error) {
	q := r.URL.Query()
	var ids []uint64
	all := false
	for k, vs := range q {
		switch k {
		case "id":
			for _, v := range vs {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return nil, badRequest("bad id %q: use the id from GET /v1/deadletters", v)
				}
				ids = append(ids, n)
			}
		case "all":
			if len(vs) != 1 {
				return nil, badRequest("query parameter \"all\" given %d times", len(vs))
			}
			b, err := parseBool(vs[0])
			if err != nil {
				return nil, badRequest("bad all %q: use 1", vs[0])
			}
			all = b
		default:
			return nil, badRequest("unknown query parameter %q", k)
		}
	}
	switch {
	case all && len(ids) > 0:
		return nil, badRequest("give id=… or all=1, not both")
	case !all && len(ids) == 0:
		return nil, badRequest("missing id: give id=N (repeatable) or all=1")
	case !all:
		return ids, nil
	}
	return s.allDeadLetterIDs(r.Context())
}

// allDeadLetterIDs collects the id of every dead letter, holding no more than a few of them at once.
func (s *Server) allDeadLetterIDs(ctx context.Context) ([]uint64, error) {
	var ids []uint64
	it := deadLetterIter{b: s.b}
	for ctx.Err() == nil {
		d, err := it.next()
		if err != nil || d == nil {
			return ids, err
		}
		ids = append(ids, d.Seq)
	}
	return nil, ctx.Err()
}

// deadLetterIter reads the dead-letter store in order, a few entries at a time (each read returns
// whole messages: a page of 1,000 could hold 1,000 payloads).
type deadLetterIter struct {
	b     Backend
	after uint64
	buf   []DeadLetterOf
}

// next returns the next dead letter, or nil after the last.
func (it *deadLetterIter) next() (*DeadLetterOf, error) {
	if len(it.buf) == 0 {
		page, err := it.b.DeadLetters("", it.after, deadLetterFetch)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return nil, nil
		}
		it.buf = page
	}
	d := it.buf[0]
	it.buf[0] = DeadLetterOf{}
	it.buf = it.buf[1:]
	it.after = d.Seq
	return &d, nil
}

// deadLetterCharge is what listing dead letters holds at most: deadLetterFetch entries read ahead,
// the one being encoded, its base64 and JSON copies.
func deadLetterCharge(maxPayload int64) int64 {
	return (deadLetterFetch+3)*maxPayload + perMessageCharge
}
