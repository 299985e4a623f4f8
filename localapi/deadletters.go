package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
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

// listDeadLetters serves GET /v1/deadletters?after=ID&limit=N[&broker=NAME]: the dead letters of
// that broker, or of every broker merged by id; each entry names its broker. The listing is
// streamed and paged by bytes as well as by limit (DeadLetterPage). A message dead-lettered at
// two brokers has one id and two entries: a page never ends between them (so that after=ID
// resumes past both), which may take it past limit or its byte bound by those entries.
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	var after uint64
	var broker string
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
		case "broker":
			broker = v
		default:
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q", k))
			return
		}
	}
	st := s.b.Status()
	it := newDeadLetterIter(s.b, broker, after, st)
	// A page holds one entry (and its encoding) at a time: cover the largest.
	res, err := s.body.acquire(r.Context(), it.charge(s.lim.MaxPayload), budgetWait)
	if err != nil {
		s.failErr(w, err)
		return
	}
	defer res.release()
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
		enc.Encode(DeadLetter{ID: d.Seq, Message: toMessage(d.Broker, d.Topic, d.Payload, d.QoS, d.Retain),
			Reason: d.Reason, At: d.At.UTC(), Created: d.Created.UTC()})
		if n > 0 && d.Seq != last && written+entry.Len() > deadLetterPageBytes {
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
		if n >= limit && (next == nil || next.Seq != last) {
			break
		}
	}
	fmt.Fprintf(w, `],"total":%d`, deadLetterTotal(st, broker))
	if next != nil {
		fmt.Fprintf(w, `,"next_after":%d`, last)
	}
	io.WriteString(w, "}\n")
}

// deadLetterTotal is how many dead letters broker holds ("" = every broker).
func deadLetterTotal(st Status, broker string) int {
	if broker != "" {
		for _, b := range st.Brokers {
			if b.Name == broker {
				return b.Queue.DeadLetters
			}
		}
	}
	return st.Queue.DeadLetters
}

// deleteDeadLetters serves DELETE /v1/deadletters?id=…&id=… (or ?all=1)[&broker=NAME].
func (s *Server) deleteDeadLetters(w http.ResponseWriter, r *http.Request) {
	broker, ids, err := s.deadLetterIDs(r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	n, err := s.b.DeleteDeadLetters(r.Context(), broker, ids...)
	if err != nil {
		s.failErr(w, err)
		return
	}
	s.log.Info("dead letters deleted", "count", n)
	writeJSON(w, http.StatusOK, Deleted{Deleted: n})
}

// requeue serves POST /v1/deadletters/requeue?id=…&id=… (or ?all=1)[&broker=NAME]: the messages
// go back to the tail of their broker's queue with new ids, durably, all or nothing. What broker
// "" means (the only broker) is the Backend's to say.
func (s *Server) requeue(w http.ResponseWriter, r *http.Request) {
	broker, ids, err := s.deadLetterIDs(r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	if len(ids) == 0 {
		writeJSON(w, http.StatusOK, Requeued{IDs: []uint64{}})
		return
	}
	newIDs, err := s.b.Requeue(r.Context(), broker, ids...)
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

// deadLetterIDs reads ?id=N (repeatable) or ?all=1, and ?broker=NAME.
func (s *Server) deadLetterIDs(r *http.Request) (string, []uint64, error) {
	q := r.URL.Query()
	var ids []uint64
	var broker string
	all := false
	for k, vs := range q {
		switch k {
		case "id":
			for _, v := range vs {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return "", nil, badRequest("bad id %q: use the id from GET /v1/deadletters", v)
				}
				ids = append(ids, n)
			}
		case "all", "broker":
			if len(vs) != 1 {
				return "", nil, badRequest("query parameter %q given %d times", k, len(vs))
			}
			if k == "broker" {
				broker = vs[0]
				continue
			}
			b, err := parseBool(vs[0])
			if err != nil {
				return "", nil, badRequest("bad all %q: use 1", vs[0])
			}
			all = b
		default:
			return "", nil, badRequest("unknown query parameter %q", k)
		}
	}
	switch {
	case all && len(ids) > 0:
		return "", nil, badRequest("give id=… or all=1, not both")
	case !all && len(ids) == 0:
		return "", nil, badRequest("missing id: give id=N (repeatable) or all=1")
	case !all:
		return broker, ids, nil
	}
	ids, err := s.allDeadLetterIDs(r.Context(), broker)
	return broker, ids, err
}

// allDeadLetterIDs collects the id of every dead letter of broker ("" = every broker; an id
// dead-lettered at several brokers once), holding no more than a few of them at once.
func (s *Server) allDeadLetterIDs(ctx context.Context, broker string) ([]uint64, error) {
	var ids []uint64
	it := newDeadLetterIter(s.b, broker, 0, s.b.Status())
	for ctx.Err() == nil {
		d, err := it.next()
		if err != nil || d == nil {
			return ids, err
		}
		if len(ids) == 0 || ids[len(ids)-1] != d.Seq {
			ids = append(ids, d.Seq)
		}
	}
	return nil, ctx.Err()
}

// deadLetterIter reads the dead-letter store in order, a few entries at a time (each read returns
// whole messages: a page of 1,000 could hold 1,000 payloads).
//
// Listed for every broker of several, a message dead-lettered at two brokers comes twice with one
// id, and Backend.DeadLetters(after) would skip the second if a read ended between them; so such an
// iterator reads again from the last id it returned and skips the entries it already returned.
type deadLetterIter struct {
	b       Backend
	broker  string
	after   uint64
	merged  bool // broker "" with several brokers: ids may repeat
	brokers int  // how many there are
	// With merged: the brokers of the entries already returned with id after.
	seen []string
	buf  []DeadLetterOf
}

func newDeadLetterIter(b Backend, broker string, after uint64, st Status) *deadLetterIter {
	return &deadLetterIter{b: b, broker: broker, after: after, merged: broker == "" && len(st.Brokers) > 1, brokers: len(st.Brokers)}
}

// next returns the next dead letter, or nil after the last.
func (it *deadLetterIter) next() (*DeadLetterOf, error) {
	for len(it.buf) == 0 {
		from, n := it.after, deadLetterFetch
		if it.merged && len(it.seen) > 0 && it.after > 0 {
			from, n = it.after-1, deadLetterFetch+len(it.seen) // at most len(seen) are skipped
		}
		page, err := it.b.DeadLetters(it.broker, from, n)
		if err != nil {
			return nil, err
		}
		page = slices.DeleteFunc(page, func(d DeadLetterOf) bool {
			return d.Seq < it.after || (d.Seq == it.after && slices.Contains(it.seen, d.Broker))
		})
		if len(page) == 0 { // no more: of n entries at most len(seen) are skipped
			return nil, nil
		}
		it.buf = page
	}
	d := it.buf[0]
	it.buf[0] = DeadLetterOf{}
	it.buf = it.buf[1:]
	if d.Seq != it.after {
		it.seen = it.seen[:0]
	}
	it.after = d.Seq
	if it.merged {
		it.seen = append(it.seen, d.Broker)
	}
	return &d, nil
}

// charge is what listing dead letters holds at most: the entries read ahead (deadLetterFetch, and
// one more per broker when merged), the one being encoded, its base64 and JSON copies.
func (it *deadLetterIter) charge(maxPayload int64) int64 {
	ahead := int64(deadLetterFetch)
	if it.merged {
		ahead += int64(it.brokers)
	}
	return (ahead+3)*maxPayload + perMessageCharge
}
