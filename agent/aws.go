package agent

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/awsiot"
	"github.com/edge-agent/edge-agent/transport"
)

// diagnosis keeps the latest advice about why the broker refuses us, for the log and /v1/status.
type diagnosis struct {
	mu   sync.Mutex
	text string
	at   time.Time
}

func (d *diagnosis) set(text string) (changed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	changed = text != d.text
	d.text = text
	if changed {
		d.at = time.Now()
	}
	return changed
}

func (d *diagnosis) get() (string, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.text, d.at
}

// onConnectError turns a failed connection into advice. For AWS IoT a refused upgrade also teaches
// the provider the server's clock (the 403's Date header). Advice is logged once each time it changes.
func (a *Agent) onConnectError(err error) {
	if a.aws == nil {
		return
	}
	var f awsiot.Failure
	var he *transport.HandshakeError
	switch {
	case errors.As(err, &he):
		a.aws.ObserveResponse(&http.Response{StatusCode: he.StatusCode, Header: he.Header})
		f.Kind, f.Status = awsiot.KindUpgradeRefused, he.StatusCode
	case errors.Is(err, transport.ErrClosedAfterConnect):
		f.Kind = awsiot.KindClosedAfterConnect
	case errors.Is(err, transport.ErrEndpoint):
		f.Kind = awsiot.KindCognito
	default:
		return // network trouble: the reconnect loop's own log line says enough
	}
	st := a.aws.Status()
	f.IdentityID, f.Authenticated, f.Skew = st.IdentityID, st.Authenticated, st.ClockSkew
	f.Region, f.Endpoint = a.aws.Region(), a.endpointForHumans()
	text := awsiot.Diagnose(f)
	if a.diag.set(text) {
		a.log.Error("AWS IoT refused the connection", "identity_id", st.IdentityID, "reason", err, "diagnosis", text)
	}
}

func (a *Agent) onConnected() {
	if a.diag.set("") {
		a.log.Info("connected; the earlier diagnosis no longer applies")
	}
}

// endpointForHumans is the broker URL without any query string.
func (a *Agent) endpointForHumans() string {
	u := a.cfg.Broker.URL
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	return u
}

// handleIdentity answers GET /v1/identity with the Cognito identity id, creating it (GetId) if this
// device has none yet.
func (a *Agent) handleIdentity(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet) {
		return
	}
	if a.aws == nil || a.cfg.Cognito.IdentityPoolID == "" {
		a.fail(w, http.StatusNotFound, "no Cognito identity: broker.provider is not \"aws-iot\" or [cognito] identity_pool_id is not set")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	id, err := a.aws.IdentityID(ctx)
	if err != nil {
		a.fail(w, http.StatusBadGateway, "getting the Cognito identity id: "+a.secrets.String(err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"identity_id": id, "identity_pool_id": a.cfg.Cognito.IdentityPoolID})
}
