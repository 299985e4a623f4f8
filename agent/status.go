package agent

import (
	"context"
	"math"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
)

// Status reports the agent's state; it is cheap and safe to call at any time during Run.
func (a *Agent) Status() localapi.Status {
	ts := a.tr.Status()
	qs := a.q.Stats()
	now := time.Now()
	st := localapi.Status{
		State:          ts.State,
		Provider:       a.cfg.Broker.Provider,
		Endpoint:       ts.URL,
		ClientID:       a.cfg.ClientID,
		Since:          ts.Since,
		LastError:      a.secrets.String(ts.LastError), // may quote a server's answer
		Accepted:       a.stats.accepted.Load(),
		Delivered:      a.stats.delivered.Load(),
		Rejected:       a.stats.rejected.Load(),
		Received:       a.hub.received.Load(),
		Connects:       ts.Connects,
		Inflight:       ts.Inflight,
		ReceiveMaximum: ts.ReceiveMaximum,
		Protocol:       ts.Protocol,
		SessionPresent: ts.SessionPresent,
		Subscribers:    a.hub.count(),
		InboundDropped: a.hub.dropped(),
		LocalAPI: localapi.LocalAPIStatus{
			MaxConnections:   a.cfg.API.MaxConnections,
			SubscriberBudget: int64(a.cfg.API.SubscriberBudget),
			SubscriberBytes:  a.hub.bytes.Load(),
		},
		UptimeSeconds: math.Round(now.Sub(a.started).Seconds()*1000) / 1000,
		Version:       Version,
		Commit:        commit(),
		Reconnects:    a.stats.reconnects.snapshot(),
		Queue: localapi.QueueStatus{
			Depth:          qs.Depth,
			Bytes:          qs.Bytes,
			Dropped:        qs.Dropped,
			MaxBytes:       int64(a.cfg.Queue.MaxBytes),
			Overflow:       a.cfg.Queue.Overflow,
			Expired:        qs.Expired, // read-time expiries and the sender's (source.Expire) alike
			DeadLetters:    qs.DeadLetters,
			DeadLettered:   qs.DeadLettered,
			CorruptRecords: qs.Corrupt,
		},
	}
	// Messages are buffered once, by the hub: the transport's queue and its two drop reasons are gone.
	// Their keys stay, at 0, so that dashboards and alerts that name them keep working.
	st.InboundDropped["incoming_buffer"] = 0
	st.InboundDropped["incoming_bytes"] = 0
	st.InboundDropped["too_large"] = ts.DroppedIncomingTooLarge
	st.InboundTooLarge = ts.InboundTooLarge
	st.MaxPacketSize = uint32(a.cfg.Broker.MaxPacketSize)
	st.Poisoned = a.stats.poisoned.Load()
	if r := a.recovery; r != nil {
		st.Queue.Recovered = &localapi.RecoveryStatus{MovedTo: r.MovedTo, Reason: r.Reason, At: r.At.UTC(),
			Salvaged: r.Salvaged, SalvageError: r.SalvageError}
	}
	if !ts.LastErrorAt.IsZero() {
		at := ts.LastErrorAt.UTC()
		st.LastErrorAt = &at
	}
	if a.aws != nil {
		as := a.aws.Status()
		st.AWS = &localapi.AWSStatus{
			IdentityID:       as.IdentityID,
			CredentialSource: as.CredentialSource,
			ClockSkewSeconds: as.ClockSkew.Seconds(),
			Region:           a.aws.Region(),
			LastError:        a.secrets.String(as.LastError),
			Authenticated:    as.Authenticated,
		}
		if !as.CredentialsExpire.IsZero() {
			exp := as.CredentialsExpire.UTC()
			st.AWS.CredentialsExpire = &exp
		}
		diag, _ := a.diag.get()
		st.Diagnosis = a.secrets.String(diag)
	}
	if at := a.stats.lastDelivery.get(); !at.IsZero() {
		at = at.UTC()
		st.LastDeliveryAt = &at
	}
	if !qs.Oldest.IsZero() {
		st.Queue.OldestAgeSeconds = math.Max(0, math.Round(now.Sub(qs.Oldest).Seconds()*1000)/1000)
	}
	return st
}

// Commit is the VCS revision reported by /v1/status and /metrics (edge_agent_build_info); cmd/agent
// may set it from its build stamp. Empty: the revision Go recorded in the binary, if any.
var Commit = ""

func commit() string {
	if Commit != "" {
		return Commit
	}
	return buildCommit()
}

var buildCommit = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
})

// ServeMetrics answers GET /metrics, and nothing else, on ln (a TCP listener for metrics.listen)
// until ctx is done; see localapi.Server.ServeMetrics. Call it only after Run said ready.
func (a *Agent) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return a.api.ServeMetrics(ctx, ln)
}
