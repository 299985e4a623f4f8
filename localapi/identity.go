package localapi

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// identityTimeout bounds GET /v1/identity (it may ask Cognito for a new identity).
const identityTimeout = 30 * time.Second

// identity serves GET /v1/identity[?broker=NAME]: the Cognito identity id of that aws-iot broker
// (without broker: of the only one), created (GetId) if this device has none yet; 404 when that
// broker has no identity pool, 400 for an unknown or ambiguous broker.
func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	if !s.onlyParams(w, r, "broker") {
		return
	}
	broker, err := brokerParam(r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), identityTimeout)
	defer cancel()
	id, err := s.b.Identity(ctx, broker)
	switch {
	case errors.Is(err, ErrBadInput):
		s.fail(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		s.fail(w, http.StatusNotFound, err.Error())
	case err != nil:
		s.fail(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, id)
	}
}
