package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
)

func setupDeadLetters(fs *flag.FlagSet) func(context.Context, *cli) int {
	asJSON := fs.Bool("json", false, "list as JSON lines")
	requeue := fs.String("requeue", "", "move these dead letters back to the queue: comma-separated `ids`, or \"all\"")
	del := fs.String("delete", "", "delete these dead letters for good: comma-separated `ids`, or \"all\"")
	broker := fs.String("broker", "", "the dead letters of the broker named `name` (list default: every broker; --requeue and --delete need it with several brokers)")
	socket := socketFlag(fs)
	return func(ctx context.Context, c *cli) int {
		if *requeue != "" && *del != "" {
			return c.usageError("give --requeue or --delete, not both")
		}
		api := localapi.NewClient(socket(c.getenv))
		defer api.Close()
		switch {
		case *requeue != "":
			q, err := idQuery(*requeue, *broker)
			if err != nil {
				return c.usageError("--requeue: %v", err)
			}
			var out localapi.Requeued
			if err := api.JSON(ctx, http.MethodPost, "/v1/deadletters/requeue?"+q, &out); err != nil {
				return c.errorf("%v", err)
			}
			fmt.Fprintf(c.stdout, "requeued %d message(s)\n", out.Requeued)
			return 0
		case *del != "":
			q, err := idQuery(*del, *broker)
			if err != nil {
				return c.usageError("--delete: %v", err)
			}
			var out localapi.Deleted
			if err := api.JSON(ctx, http.MethodDelete, "/v1/deadletters?"+q, &out); err != nil {
				return c.errorf("%v", err)
			}
			fmt.Fprintf(c.stdout, "deleted %d dead letter(s)\n", out.Deleted)
			return 0
		}
		// List every page. With several brokers (and none chosen) the table names each entry's.
		brokerColumn := false
		if !*asJSON && *broker == "" {
			st, err := api.Status(ctx)
			if err != nil {
				return c.errorf("%v", err)
			}
			brokerColumn = len(st.Brokers) > 1
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		if brokerColumn {
			fmt.Fprint(tw, "BROKER\t")
		}
		if !*asJSON {
			fmt.Fprintln(tw, "ID\tTOPIC\tQOS\tREFUSED AT\tREASON\tPAYLOAD")
		}
		list := "/v1/deadletters?limit=1000"
		if *broker != "" {
			list += "&" + url.Values{"broker": {*broker}}.Encode()
		}
		var after uint64
		n := 0
		for {
			var page struct { // localapi.DeadLetterPage, each entry kept as sent for --json
				DeadLetters []json.RawMessage `json:"dead_letters"`
				NextAfter   *uint64           `json:"next_after"` // absent on the last page
			}
			if err := api.JSON(ctx, http.MethodGet, fmt.Sprintf("%s&after=%d", list, after), &page); err != nil {
				return c.errorf("%v", err)
			}
			for _, raw := range page.DeadLetters {
				var d localapi.DeadLetter
				if err := json.Unmarshal(raw, &d); err != nil {
					return c.errorf("edge-agent sent a bad dead letter: %v", err)
				}
				after = d.ID
				n++
				if *asJSON {
					c.stdout.Write(append(bytes.TrimSpace(raw), '\n'))
					continue
				}
				if brokerColumn {
					fmt.Fprintf(tw, "%s\t", d.Broker)
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Topic, d.QoS, d.At.Format(time.RFC3339Nano), d.Reason, preview(d))
			}
			// Pages are bounded by bytes too: a short page is not the last one, a missing
			// next_after is.
			if page.NextAfter == nil || len(page.DeadLetters) == 0 {
				break
			}
			after = *page.NextAfter
		}
		if !*asJSON {
			tw.Flush()
			how := "--requeue ID[,ID…] or --requeue all"
			if brokerColumn {
				how = "--broker NAME --requeue ID[,ID…] or --broker NAME --requeue all"
			}
			fmt.Fprintf(c.stdout, "%d dead letter(s); requeue with %s\n", n, how)
		}
		return 0
	}
}

// idQuery turns "1,2,3" into id=1&id=2&id=3 and "all" into all=1, with broker=… unless broker is "".
func idQuery(list, broker string) (string, error) {
	v := url.Values{}
	if broker != "" {
		v.Set("broker", broker)
	}
	if list == "all" {
		v.Set("all", "1")
		return v.Encode(), nil
	}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if _, err := strconv.ParseUint(f, 10, 64); err != nil {
			return "", fmt.Errorf("%q is not an id (use the ids that edge-agent deadletters lists, or all)", f)
		}
		v.Add("id", f)
	}
	return v.Encode(), nil
}

// preview is a short printable form of the payload.
func preview(d localapi.DeadLetter) string {
	var s string
	switch {
	case d.Payload != nil:
		s = strconv.Quote(*d.Payload)
	case d.PayloadBase64 != nil:
		b, _ := base64.StdEncoding.DecodeString(*d.PayloadBase64)
		s = fmt.Sprintf("%d bytes (binary)", len(b))
	}
	if len(s) > 60 {
		s = s[:57] + "…"
	}
	return s
}
