package localapi

import (
	"net/http"
)

// status serves GET /v1/status.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.statusNow())
}

// statusNow is the agent's status with the local API's own bounds and counters filled in.
func (s *Server) statusNow() Status {
	st := s.b.Status()
	st.LocalAPI.Connections = int(s.conns.active.Load())
	st.LocalAPI.ConnectionsRefused = s.conns.refused.Load()
	st.LocalAPI.BodyBudget = s.body.size
	st.LocalAPI.BodyBudgetInUse = s.body.inUse()
	st.LocalAPI.BodyBudgetRefused = s.body.refused.Load()
	return st
}
