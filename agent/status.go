package agent

import (
	"context"
	"math"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
	"github.com/edge-agent/edge-agent/transport"
)

// Status reports the agent's state; it is cheap and safe to call at any time during Run. Brokers
// holds each broker's own state; with one broker the top-level fields are that broker's, with several
// see localapi.Status.
func (a *Agent) Status() localapi.Status {
	now := time.Now()
	st := localapi.Status{
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
		MaxPacketSize: uint32(a.links[0].cfg.MaxPacketSize),
		Brokers:       make([]localapi.BrokerStatus, len(a.links)),
	}
	var tooLarge uint64
	connected := 0
	for i, l := range a.links {
		b, ts := l.status(now)
		st.Brokers[i] = b
		tooLarge += ts.DroppedIncomingTooLarge
		if b.State == transport.StateConnected {
			connected++
		}
	}
	// The whole agent: the first broker's connection (the only one's, with one broker) and the
	// brokers' sums.
	t := &st.BrokerStatus
	*t = st.Brokers[0]
	t.Name, t.Publish = "", nil
	t.ClientID = a.cfg.ClientID
	t.Accepted = 0
	t.Received = a.hub.received.Load()
	t.Queue = localapi.QueueStatus{MaxBytes: int64(a.cfg.Queue.MaxBytes), Overflow: a.cfg.Queue.Overflow}
	t.Delivered, t.Rejected, t.Connects, t.Inflight, t.InboundTooLarge, t.Poisoned = 0, 0, 0, 0, 0, 0
	t.Reconnects = make(map[string]uint64, len(reconnectReasons))
	for _, b := range st.Brokers {
		t.Accepted += b.Accepted
		t.Delivered += b.Delivered
		t.Rejected += b.Rejected
		t.Connects += b.Connects
		t.Inflight += b.Inflight
		t.InboundTooLarge += b.InboundTooLarge
		t.Poisoned += b.Poisoned
		for r, n := range b.Reconnects {
			t.Reconnects[r] += n
		}
		if b.LastDeliveryAt != nil && (t.LastDeliveryAt == nil || b.LastDeliveryAt.After(*t.LastDeliveryAt)) {
			t.LastDeliveryAt = b.LastDeliveryAt
		}
		addQueue(&t.Queue, b.Queue)
	}
	if len(a.links) > 1 && connected == len(a.links) {
		t.State = transport.StateConnected
	} else if len(a.links) > 1 && connected > 0 {
		t.State = StateDegraded
	}
	// Messages are buffered once, by the hub: the transport's queue and its two drop reasons are gone.
	// Their keys stay, at 0, so that dashboards and alerts that name them keep working.
	st.InboundDropped["incoming_buffer"] = 0
	st.InboundDropped["incoming_bytes"] = 0
	st.InboundDropped["too_large"] = tooLarge
	if r := a.recovery; r != nil {
		t.Queue.Recovered = &localapi.RecoveryStatus{MovedTo: r.MovedTo, Reason: r.Reason, At: r.At.UTC(),
			Salvaged: r.Salvaged, SalvageError: r.SalvageError}
	}
	return st
}

// StateDegraded is Status.State when some brokers are connected and others are not.
const StateDegraded = "degraded"

// status is this broker's part of the agent's status, and its transport's status.
func (l *link) status(now time.Time) (localapi.BrokerStatus, transport.Status) {
	ts := l.tr.Status()
	qs := l.q.Stats()
	st := localapi.BrokerStatus{
		Name:            l.name,
		State:           ts.State,
		Provider:        l.cfg.Provider,
		Endpoint:        ts.URL,
		ClientID:        l.cfg.ClientID,
		Publish:         l.cfg.Publish,
		Since:           ts.Since,
		LastError:       l.secrets.String(ts.LastError), // may quote a server's answer
		Accepted:        l.stats.accepted.Load(),
		Delivered:       l.stats.delivered.Load(),
		Rejected:        l.stats.rejected.Load(),
		Received:        l.stats.received.Load(),
		Connects:        ts.Connects,
		Inflight:        ts.Inflight,
		ReceiveMaximum:  ts.ReceiveMaximum,
		Protocol:        ts.Protocol,
		SessionPresent:  ts.SessionPresent,
		InboundTooLarge: ts.InboundTooLarge,
		Poisoned:        l.stats.poisoned.Load(),
		Reconnects:      l.stats.reconnects.snapshot(),
		Queue: localapi.QueueStatus{
			Depth:          qs.Depth,
			Bytes:          qs.Bytes,
			Dropped:        qs.Dropped,
			MaxBytes:       int64(l.cfg.Queue.MaxBytes),
			Overflow:       l.cfg.Queue.Overflow,
			Expired:        qs.Expired, // read-time expiries and the sender's (source.Expire) alike
			DeadLetters:    qs.DeadLetters,
			DeadLettered:   qs.DeadLettered,
			CorruptRecords: qs.Corrupt,
		},
	}
	if !ts.LastErrorAt.IsZero() {
		at := ts.LastErrorAt.UTC()
		st.LastErrorAt = &at
	}
	if l.aws != nil {
		as := l.aws.Status()
		st.AWS = &localapi.AWSStatus{
			IdentityID:       as.IdentityID,
			CredentialSource: as.CredentialSource,
			ClockSkewSeconds: as.ClockSkew.Seconds(),
			Region:           l.aws.Region(),
			LastError:        l.secrets.String(as.LastError),
			Authenticated:    as.Authenticated,
		}
		if !as.CredentialsExpire.IsZero() {
			exp := as.CredentialsExpire.UTC()
			st.AWS.CredentialsExpire = &exp
		}
		diag, _ := l.diag.get()
		st.Diagnosis = l.secrets.String(diag)
	}
	if at := l.stats.lastDelivery.get(); !at.IsZero() {
		at = at.UTC()
		st.LastDeliveryAt = &at
	}
	if !qs.Oldest.IsZero() {
		st.Queue.OldestAgeSeconds = math.Max(0, math.Round(now.Sub(qs.Oldest).Seconds()*1000)/1000)
	}
	return st, ts
}

// addQueue adds a broker's queue figures to the agent's (the oldest message is the oldest of all).
func addQueue(sum *localapi.QueueStatus, q localapi.QueueStatus) {
	sum.Depth += q.Depth
	sum.Bytes += q.Bytes
	sum.Dropped += q.Dropped
	sum.Expired += q.Expired
	sum.DeadLetters += q.DeadLetters
	sum.DeadLettered += q.DeadLettered
	sum.CorruptRecords += q.CorruptRecords
	sum.OldestAgeSeconds = max(sum.OldestAgeSeconds, q.OldestAgeSeconds)
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
