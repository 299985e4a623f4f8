package localapi

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// identityTimeout bounds GET /v1/identity (it may ask Cognito for a new identity).
const identityTimeout = 30 * time.Second

// identity serves GET /v1/identity: the Cognito identity id, created (GetId) if this device has
// none yet; 404 when the agent has no identity pool.
func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), identityTimeout)
	defer cancel()
	id, err := s.b.Identity(ctx, "")
	switch {
	case errors.Is(err, ErrNotFound):
		s.fail(w, http.StatusNotFound, err.Error())
	case err != nil:
		s.fail(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, id)
	}
}
