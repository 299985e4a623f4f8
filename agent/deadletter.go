package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edge-agent/edge-agent/queue"
)

const (
	defaultDeadLetterPage = 100
	maxDeadLetterPage     = 1000
)

// deadLetterJSON is one entry of GET /v1/deadletters.
type deadLetterJSON struct {
	ID uint64 `json:"id"`
	streamLine
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	Created time.Time `json:"created"`
}

// handleDeadLetters serves GET (list, ?after=ID&limit=N) and DELETE (?id=…&id=… or ?all=1).
// Managing dead letters is for trusted callers only (root, the agent's user and group).
func (a *Agent) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	if !a.access.trusted(peerFrom(r.Context())) {
		a.fail(w, http.StatusForbidden, "only root, the agent's user and its group may manage dead letters")
		return
	}
	switch r.Method {
	case http.MethodGet:
		a.listDeadLetters(w, r)
	case http.MethodDelete:
		ids, err := a.deadLetterIDs(r)
		if err != nil {
			a.failErr(w, err)
			return
		}
		n, err := a.q.DeleteDeadLetters(r.Context(), ids...)
		if err != nil {
			a.failErr(w, err)
			return
		}
		a.log.Info("dead letters deleted", "count", n)
		writeJSON(w, http.StatusOK, map[string]any{"deleted": n})
	default:
		w.Header().Set("Allow", "GET, DELETE")
		a.fail(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use GET or DELETE", r.Method, r.URL.Path))
	}
}

func (a *Agent) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	var after uint64
	limit := defaultDeadLetterPage
	for k, vs := range r.URL.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "after":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				a.fail(w, http.StatusBadRequest, fmt.Sprintf("bad after %q: use a message id", v))
				return
			}
			after = n
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxDeadLetterPage {
				a.fail(w, http.StatusBadRequest, fmt.Sprintf("bad limit %q: use 1..%d", v, maxDeadLetterPage))
				return
			}
			limit = n
		default:
			a.fail(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q", k))
			return
		}
	}
	dls, err := a.q.DeadLetters(after, limit)
	if err != nil {
		a.failErr(w, err)
		return
	}
	out := make([]deadLetterJSON, len(dls))
	for i, d := range dls {
		out[i] = deadLetterJSON{ID: d.Seq, streamLine: toStreamLine(d.Topic, d.Payload, d.QoS, d.Retain),
			Reason: d.Reason, At: d.At.UTC(), Created: d.Created.UTC()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": out, "total": a.q.Stats().DeadLetters})
}

// handleRequeue serves POST /v1/deadletters/requeue?id=…&id=… (or ?all=1): the messages go back to
// the tail of the queue with new ids, durably, all or nothing.
func (a *Agent) handleRequeue(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	if !a.access.trusted(peerFrom(r.Context())) {
		a.fail(w, http.StatusForbidden, "only root, the agent's user and its group may manage dead letters")
		return
	}
	ids, err := a.deadLetterIDs(r)
	if err != nil {
		a.failErr(w, err)
		return
	}
	if len(ids) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"requeued": 0, "ids": []uint64{}})
		return
	}
	newIDs, err := a.q.Requeue(r.Context(), ids...)
	if errors.Is(err, queue.ErrNotDeadLettered) {
		a.fail(w, http.StatusNotFound, err.Error()+"; nothing was requeued")
		return
	}
	if err != nil {
		a.failErr(w, err)
		return
	}
	a.log.Info("dead letters requeued", "count", len(newIDs))
	writeJSON(w, http.StatusOK, map[string]any{"requeued": len(newIDs), "ids": newIDs})
}

// deadLetterIDs reads ?id=N (repeatable) or ?all=1.
func (a *Agent) deadLetterIDs(r *http.Request) ([]uint64, error) {
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
	return a.allDeadLetterIDs(r.Context())
}

func (a *Agent) allDeadLetterIDs(ctx context.Context) ([]uint64, error) {
	var ids []uint64
	var after uint64
	for ctx.Err() == nil {
		page, err := a.q.DeadLetters(after, maxDeadLetterPage)
		if err != nil {
			return nil, err
		}
		for _, d := range page {
			ids = append(ids, d.Seq)
			after = d.Seq
		}
		if len(page) < maxDeadLetterPage {
			return ids, nil
		}
	}
	return nil, ctx.Err()
}
