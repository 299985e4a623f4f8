package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
)

func setupStatus(fs *flag.FlagSet) func(context.Context, *cli) int {
	asJSON := fs.Bool("json", false, "print the agent's status JSON as it is")
	socket := socketFlag(fs)
	return func(ctx context.Context, c *cli) int {
		api := localapi.NewClient(socket(c.getenv))
		defer api.Close()
		resp, err := api.Do(ctx, http.MethodGet, "/v1/status", "", nil, -1)
		if err != nil {
			return c.errorf("%v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return c.errorf("%v", localapi.ReadError(resp))
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return c.errorf("reading the status from edge-agent: %v", err)
		}
		if *asJSON {
			c.stdout.Write(body)
			if !bytes.HasSuffix(body, []byte("\n")) {
				io.WriteString(c.stdout, "\n")
			}
			return 0
		}
		v, err := decodeStatus(body)
		if err != nil {
			return c.errorf("edge-agent sent a status that is not a JSON object: %v", err)
		}
		writeStatus(c.stdout, v, time.Now())
		return 0
	}
}

// statusView is a status as the CLI got it: typed (localapi.Status), with the keys the agent
// sent, since an older agent sends fewer fields and a newer one more.
type statusView struct {
	localapi.Status
	sent map[string]any // top-level keys as sent, numbers as json.Number
	used map[string]bool
}

func decodeStatus(body []byte) (*statusView, error) {
	v := &statusView{used: map[string]bool{}}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v.sent); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &v.Status); err != nil {
		return nil, err
	}
	return v, nil
}

// has reports whether the agent sent key with a value other than null, and marks it printed.
func (v *statusView) has(key string) bool {
	v.used[key] = true
	return v.sent[key] != nil
}

// perBrokerKeys are the top-level status fields that, with several brokers, are one broker's
// (the first's) rather than the agent's: the sections per broker show them instead.
var perBrokerKeys = []string{"state", "since", "provider", "endpoint", "client_id", "last_error", "last_error_at",
	"aws", "diagnosis", "protocol", "session_present", "receive_maximum"}

// writeStatus prints the status for people: known fields first in a fixed order, anything else
// after them, missing fields left out, the diagnosis last. With several brokers the agent's
// totals come first, then a section per broker (writeBroker).
func writeStatus(w io.Writer, v *statusView, now time.Time) {
	v.used["brokers"] = true
	brokers := v.Brokers
	if len(brokers) < 2 {
		brokers = nil // one broker: the top-level fields are its own, printed as ever
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, value string) { fmt.Fprintf(tw, "%s:\t%s\n", label, value) }
	if brokers != nil {
		connected := 0
		for _, b := range brokers {
			if b.State == "connected" {
				connected++
			}
		}
		row("State", fmt.Sprintf("%s (%d of %d brokers connected)", v.State, connected, len(brokers)))
		for _, k := range perBrokerKeys {
			delete(v.sent, k)
		}
	}
	writeConnection(v, row, now)
	if v.has("queue") {
		writeQueue(v.Queue, row)
	}
	if v.has("aws") && v.AWS != nil {
		writeAWS(*v.AWS, row)
	}
	writeTraffic(v, row)
	if v.has("uptime_seconds") {
		row("Uptime", (time.Duration(v.UptimeSeconds) * time.Second).String())
	}
	if v.has("version") {
		row("Agent version", v.Version)
	}
	for _, k := range slices.Sorted(maps.Keys(v.sent)) {
		if !v.used[k] && k != "diagnosis" {
			row(k, str(v.sent[k]))
		}
	}
	tw.Flush()
	if v.has("diagnosis") && v.Diagnosis != "" {
		fmt.Fprintf(w, "\nDiagnosis:\n%s\n", strings.TrimRight(v.Diagnosis, "\n"))
	}
	for _, b := range brokers {
		writeBroker(w, b, now)
	}
}

// writeBroker prints one broker's section of a status with several brokers.
func writeBroker(w io.Writer, b localapi.BrokerStatus, now time.Time) {
	fmt.Fprintf(w, "\nBroker %s:\n", b.Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, value string) { fmt.Fprintf(tw, "  %s:\t%s\n", label, value) }
	row("State", stateSince(b.State, b.Since, now))
	row("Provider", b.Provider)
	row("Endpoint", b.Endpoint)
	if b.ClientID != "" {
		row("Client ID", b.ClientID)
	}
	routes := "every topic"
	if len(b.Publish) > 0 {
		routes = strings.Join(b.Publish, ", ")
	}
	row("Routes", routes)
	writeQueue(b.Queue, row)
	s := fmt.Sprintf("%d of %d accepted since start", b.Delivered, b.Accepted)
	if b.Rejected > 0 {
		s += fmt.Sprintf(", %d refused by the broker", b.Rejected)
	}
	if b.Poisoned > 0 {
		s += fmt.Sprintf(" (%d because the broker hung up each time they were sent)", b.Poisoned)
	}
	row("Delivered", s)
	s = fmt.Sprintf("%d connection%s", b.Connects, plural(b.Connects))
	if b.Protocol != "" {
		s += " over MQTT " + b.Protocol
	}
	row("Connections", s+fmt.Sprintf(", %d in flight", b.Inflight))
	row("Last error", lastError(b.LastError, b.LastErrorAt, now))
	if b.AWS != nil {
		writeAWS(*b.AWS, row)
	}
	tw.Flush()
	if b.Diagnosis != "" {
		fmt.Fprintf(w, "  Diagnosis:\n    %s\n", strings.ReplaceAll(strings.TrimRight(b.Diagnosis, "\n"), "\n", "\n    "))
	}
}

// stateSince is "connected since 2025-03-01T10:00:00+01:00 (1h0m0s ago)".
func stateSince(state string, since time.Time, now time.Time) string {
	if since.IsZero() {
		return state
	}
	return state + fmt.Sprintf(" since %s (%s ago)", since.Local().Format(time.RFC3339), now.Sub(since).Round(time.Second))
}

// lastError is the last error and how long ago it was, or "none".
func lastError(msg string, at *time.Time, now time.Time) string {
	if msg == "" {
		msg = "none"
	}
	if at != nil {
		msg += fmt.Sprintf(" (%s ago)", now.Sub(*at).Round(time.Second))
	}
	return msg
}

// writeConnection prints the state of the broker connection and its last error.
func writeConnection(v *statusView, row func(label, value string), now time.Time) {
	if v.has("state") {
		s := v.State
		if v.has("since") {
			if !v.Since.IsZero() {
				s += fmt.Sprintf(" since %s (%s ago)", v.Since.Local().Format(time.RFC3339), now.Sub(v.Since).Round(time.Second))
			} else {
				s += " since " + v.Since.Format(time.RFC3339Nano)
			}
		}
		row("State", s)
	}
	for _, f := range []struct{ key, label, value string }{
		{"provider", "Provider", v.Provider}, {"endpoint", "Endpoint", v.Endpoint}, {"client_id", "Client ID", v.ClientID},
	} {
		if v.has(f.key) {
			row(f.label, f.value)
		}
	}
	if v.has("last_error") {
		var at *time.Time
		if v.has("last_error_at") {
			at = v.LastErrorAt
		}
		row("Last error", lastError(v.LastError, at, now))
	}
}

// writeQueue prints the durable queue's state.
func writeQueue(q localapi.QueueStatus, row func(label, value string)) {
	parts := []string{
		fmt.Sprintf("%d messages", q.Depth),
		humanBytes(float64(q.Bytes)) + " of " + humanBytes(float64(q.MaxBytes)),
	}
	if q.OldestAgeSeconds > 0 {
		parts = append(parts, "oldest "+time.Duration(q.OldestAgeSeconds*float64(time.Second)).Round(time.Second).String()+" old")
	}
	parts = append(parts, fmt.Sprintf("%d dropped", q.Dropped), "overflow "+q.Overflow)
	if q.Expired > 0 {
		parts = append(parts, fmt.Sprintf("%d expired", q.Expired))
	}
	row("Queue", strings.Join(parts, ", "))
	if q.DeadLetters > 0 {
		row("Dead letters", fmt.Sprintf("%d refused by the broker (edge-agent deadletters)", q.DeadLetters))
	}
	if r := q.Recovered; r != nil {
		row("Queue recovered", fmt.Sprintf("the queue file was damaged at start and moved to %s (%s)", r.MovedTo, r.Reason))
	}
}

// writeAWS prints the AWS IoT credentials' state.
func writeAWS(a localapi.AWSStatus, row func(label, value string)) {
	expire := ""
	if a.CredentialsExpire != nil {
		expire = a.CredentialsExpire.Format(time.RFC3339Nano)
	}
	for _, f := range []struct{ label, value string }{
		{"Identity ID", a.IdentityID}, {"Credentials from", a.CredentialSource},
		{"Credentials expire", expire}, {"Region", a.Region}, {"Credentials error", a.LastError},
	} {
		if f.value != "" {
			row(f.label, f.value)
		}
	}
	if a.Authenticated {
		row("Identity kind", "authenticated (Cognito login); the IoT policy attached to the identity applies")
	}
	if a.ClockSkewSeconds != 0 {
		row("Clock skew", fmt.Sprintf("%s (AWS time minus this device's clock; signing uses AWS time)",
			time.Duration(a.ClockSkewSeconds*float64(time.Second)).Round(time.Second)))
	}
}

// writeTraffic prints what went through the agent: delivered, broker, subscriptions, drops.
func writeTraffic(v *statusView, row func(label, value string)) {
	if v.has("delivered") {
		s := strconv.FormatUint(v.Delivered, 10)
		if v.has("accepted") {
			s += fmt.Sprintf(" of %d accepted since start", v.Accepted)
		}
		if v.has("rejected") && v.Rejected > 0 {
			s += fmt.Sprintf(", %d refused by the broker", v.Rejected)
		}
		if v.has("poisoned") && v.Poisoned > 0 {
			s += fmt.Sprintf(" (%d because the broker hung up each time they were sent)", v.Poisoned)
		}
		row("Delivered", s)
	}
	if v.has("connects") {
		s := fmt.Sprintf("%d connection%s", v.Connects, plural(v.Connects))
		if v.has("protocol") && v.Protocol != "" {
			s += " over MQTT " + v.Protocol
			if v.has("session_present") && v.SessionPresent {
				s += " (persistent session resumed)"
			}
		}
		if v.has("inflight") {
			s += fmt.Sprintf(", %d in flight", v.Inflight)
		}
		if v.has("receive_maximum") && v.ReceiveMaximum > 0 {
			s += fmt.Sprintf(" (broker Receive Maximum %d)", v.ReceiveMaximum)
		}
		row("Broker", s)
	}
	if v.has("received") {
		s := fmt.Sprintf("%d received from the broker", v.Received)
		if v.has("subscribers") {
			s += fmt.Sprintf(", %d local subscriber streams", v.Subscribers)
		}
		row("Subscriptions", s)
	}
	if v.has("inbound_dropped") {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(v.InboundDropped)) {
			if n := v.InboundDropped[k]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, strings.ReplaceAll(k, "_", " ")))
			}
		}
		if len(parts) > 0 {
			row("Inbound dropped", strings.Join(parts, ", ")+" (broker messages not passed to local subscribers)")
		}
	}
	if v.has("inbound_too_large") && v.InboundTooLarge > 0 {
		s := fmt.Sprintf("%d packets over broker.max_packet_size", v.InboundTooLarge)
		if v.has("max_packet_size") {
			s += " (" + humanBytes(float64(v.MaxPacketSize)) + ")"
		}
		row("Inbound too large", s)
	}
}

func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}

// humanBytes writes 268435456 as "256 MiB".
func humanBytes(n float64) string {
	if math.IsNaN(n) {
		return "?"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 || n == math.Trunc(n) {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

// plural is "s" unless n is 1.
func plural(n uint64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
