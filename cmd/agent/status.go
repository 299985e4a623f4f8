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
		var st map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&st); err != nil {
			return c.errorf("edge-agent sent a status that is not a JSON object: %v", err)
		}
		writeStatus(c.stdout, st, time.Now())
		return 0
	}
}

// writeStatus prints the fields of the status JSON (see CONTRACTS) for
// people: known fields first in a fixed order, anything else after them,
// missing fields left out.
func writeStatus(w io.Writer, st map[string]any, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	row := func(label, value string) { fmt.Fprintf(tw, "%s:\t%s\n", label, value) }
	used := map[string]bool{}
	field := func(m map[string]any, k string) (any, bool) {
		v, ok := m[k]
		return v, ok && v != nil
	}
	get := func(k string) (any, bool) { // a top-level field, marked as printed
		used[k] = true
		return field(st, k)
	}

	if v, ok := get("state"); ok {
		s := str(v)
		if since, ok := get("since"); ok {
			if t, err := time.Parse(time.RFC3339Nano, str(since)); err == nil && !t.IsZero() {
				s += fmt.Sprintf(" since %s (%s ago)", t.Local().Format(time.RFC3339), now.Sub(t).Round(time.Second))
			} else if str(since) != "" {
				s += " since " + str(since)
			}
		}
		row("State", s)
	}
	for _, f := range []struct{ key, label string }{
		{"provider", "Provider"}, {"endpoint", "Endpoint"}, {"client_id", "Client ID"},
		{"identity_id", "Identity ID"}, {"credentials_expire", "Credentials expire"},
	} {
		if v, ok := get(f.key); ok {
			row(f.label, str(v))
		}
	}
	if v, ok := get("last_error"); ok {
		s := str(v)
		if s == "" {
			s = "none"
		}
		if at, ok := get("last_error_at"); ok {
			if t, err := time.Parse(time.RFC3339Nano, str(at)); err == nil {
				s += fmt.Sprintf(" (%s ago)", now.Sub(t).Round(time.Second))
			}
		}
		row("Last error", s)
	}
	if v, ok := get("queue"); ok {
		q, _ := v.(map[string]any)
		var parts []string
		if d, ok := field(q, "depth"); ok {
			parts = append(parts, str(d)+" messages")
		}
		if b, ok := field(q, "bytes"); ok {
			s := humanBytes(num(b))
			if m, ok := field(q, "max_bytes"); ok {
				s += " of " + humanBytes(num(m))
			}
			parts = append(parts, s)
		}
		if a, ok := field(q, "oldest_age_seconds"); ok && num(a) > 0 {
			parts = append(parts, "oldest "+(time.Duration(num(a)*float64(time.Second))).Round(time.Second).String()+" old")
		}
		if d, ok := field(q, "dropped"); ok {
			parts = append(parts, str(d)+" dropped")
		}
		if o, ok := field(q, "overflow"); ok {
			parts = append(parts, "overflow "+str(o))
		}
		if e, ok := field(q, "expired"); ok && num(e) > 0 {
			parts = append(parts, str(e)+" expired")
		}
		if len(parts) == 0 {
			parts = append(parts, str(v))
		}
		row("Queue", strings.Join(parts, ", "))
		if d, ok := field(q, "dead_letters"); ok && num(d) > 0 {
			row("Dead letters", str(d)+" refused by the broker (edge-agent deadletters)")
		}
		if r, ok := field(q, "recovered"); ok {
			if m, ok := r.(map[string]any); ok {
				row("Queue recovered", fmt.Sprintf("the queue file was damaged at start and moved to %s (%s)", str(m["moved_to"]), str(m["reason"])))
			}
		}
	}
	if v, ok := get("aws"); ok {
		if m, ok := v.(map[string]any); ok {
			for _, f := range []struct{ key, label string }{
				{"identity_id", "Identity ID"}, {"credential_source", "Credentials from"},
				{"credentials_expire", "Credentials expire"}, {"region", "Region"}, {"last_error", "Credentials error"},
			} {
				if v, ok := field(m, f.key); ok && str(v) != "" {
					row(f.label, str(v))
				}
			}
			if v, ok := field(m, "authenticated"); ok && str(v) == "true" {
				row("Identity kind", "authenticated (Cognito login); the IoT policy attached to the identity applies")
			}
			if v, ok := field(m, "clock_skew_seconds"); ok && num(v) != 0 {
				row("Clock skew", fmt.Sprintf("%s (AWS time minus this device's clock; signing uses AWS time)",
					time.Duration(num(v)*float64(time.Second)).Round(time.Second)))
			}
		}
	}
	if v, ok := get("delivered"); ok {
		s := str(v)
		if a, ok := get("accepted"); ok {
			s += " of " + str(a) + " accepted since start"
		}
		if r, ok := get("rejected"); ok && num(r) > 0 {
			s += ", " + str(r) + " refused by the broker"
		}
		if p, ok := get("poisoned"); ok && num(p) > 0 {
			s += " (" + str(p) + " because the broker hung up each time they were sent)"
		}
		row("Delivered", s)
	}
	if v, ok := get("connects"); ok {
		s := str(v) + " connections"
		if w, ok := get("inflight"); ok {
			s += ", " + str(w) + " in flight"
		}
		if m, ok := get("receive_maximum"); ok && num(m) > 0 {
			s += " (broker Receive Maximum " + str(m) + ")"
		}
		row("Broker", s)
	}
	if v, ok := get("received"); ok {
		s := str(v) + " received from the broker"
		if n, ok := get("subscribers"); ok {
			s += ", " + str(n) + " local subscriber streams"
		}
		row("Subscriptions", s)
	}
	if v, ok := get("inbound_dropped"); ok {
		if m, ok := v.(map[string]any); ok {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if num(m[k]) > 0 {
					parts = append(parts, str(m[k])+" "+strings.ReplaceAll(k, "_", " "))
				}
			}
			if len(parts) > 0 {
				row("Inbound dropped", strings.Join(parts, ", ")+" (broker messages not passed to local subscribers)")
			}
		}
	}
	if v, ok := get("inbound_too_large"); ok && num(v) > 0 {
		s := str(v) + " packets over broker.max_packet_size"
		if m, ok := get("max_packet_size"); ok {
			s += " (" + humanBytes(num(m)) + ")"
		}
		row("Inbound too large", s)
	}
	if v, ok := get("uptime_seconds"); ok {
		row("Uptime", (time.Duration(num(v)) * time.Second).String())
	}
	if v, ok := get("version"); ok {
		row("Agent version", str(v))
	}
	var rest []string
	for k := range st {
		if !used[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	var diagnosis string
	for _, k := range rest {
		if k == "diagnosis" {
			diagnosis = str(st[k])
			continue
		}
		row(k, str(st[k]))
	}
	if diagnosis != "" {
		tw.Flush()
		fmt.Fprintf(w, "\nDiagnosis:\n%s\n", strings.TrimRight(diagnosis, "\n"))
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

func num(v any) float64 {
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		if err == nil {
			return f
		}
	}
	return math.NaN()
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
