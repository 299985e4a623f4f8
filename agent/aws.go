package agent

import (
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
func (l *link) onConnectError(err error) {
	l.stats.reconnects.count(err)
	if l.aws == nil {
		return
	}
	var f awsiot.Failure
	var he *transport.HandshakeError
	switch {
	case errors.As(err, &he):
		l.aws.ObserveResponse(&http.Response{StatusCode: he.StatusCode, Header: he.Header})
		f.Kind, f.Status = awsiot.KindUpgradeRefused, he.StatusCode
	case errors.Is(err, transport.ErrClosedAfterConnect):
		f.Kind = awsiot.KindClosedAfterConnect
	case errors.Is(err, transport.ErrEndpoint):
		f.Kind = awsiot.KindCognito
	default:
		return // network trouble: the reconnect loop's own log line says enough
	}
	st := l.aws.Status()
	f.IdentityID, f.Authenticated, f.Skew = st.IdentityID, st.Authenticated, st.ClockSkew
	f.Region, f.Endpoint = l.aws.Region(), l.endpointForHumans()
	f.IdentityFile = awsiot.IdentityFileFor(l.name)
	text := awsiot.Diagnose(f)
	if l.diag.set(text) {
		l.log.Error("AWS IoT refused the connection", "identity_id", st.IdentityID, "reason", err, "diagnosis", text)
	}
}

func (l *link) onConnected() {
	if l.diag.set("") {
		l.log.Info("connected; the earlier diagnosis no longer applies")
	}
}

// endpointForHumans is the broker URL without any query string.
func (l *link) endpointForHumans() string {
	u := l.cfg.URL
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	return u
}
