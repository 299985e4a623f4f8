package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
)

// deadLetter is one entry of GET /v1/deadletters.
type deadLetter struct {
	ID            uint64  `json:"id"`
	Topic         string  `json:"topic"`
	Payload       *string `json:"payload"`
	PayloadBase64 *string `json:"payload_base64"`
	QoS           int     `json:"qos"`
	Reason        string  `json:"reason"`
	At            string  `json:"at"`
}

func setupDeadLetters(fs *flag.FlagSet) func(context.Context, *cli) int {
	asJSON := fs.Bool("json", false, "list as JSON lines")
	requeue := fs.String("requeue", "", "move these dead letters back to the queue: comma-separated `ids`, or \"all\"")
	del := fs.String("delete", "", "delete these dead letters for good: comma-separated `ids`, or \"all\"")
	socket := socketFlag(fs)
	return func(ctx context.Context, c *cli) int {
		if *requeue != "" && *del != "" {
			return c.usageError("give --requeue or --delete, not both")
		}
		api := newAPIClient(socket(c.getenv))
		defer api.close()
		switch {
		case *requeue != "":
			q, err := idQuery(*requeue)
			if err != nil {
				return c.usageError("--requeue: %v", err)
			}
			var out struct {
				Requeued int      `json:"requeued"`
				IDs      []uint64 `json:"ids"`
			}
			if err := api.call(ctx, http.MethodPost, "/v1/deadletters/requeue?"+q, &out); err != nil {
				return c.errorf("%v", err)
			}
			fmt.Fprintf(c.stdout, "requeued %d message(s)\n", out.Requeued)
			return 0
		case *del != "":
			q, err := idQuery(*del)
			if err != nil {
				return c.usageError("--delete: %v", err)
			}
			var out struct {
				Deleted int `json:"deleted"`
			}
			if err := api.call(ctx, http.MethodDelete, "/v1/deadletters?"+q, &out); err != nil {
				return c.errorf("%v", err)
			}
			fmt.Fprintf(c.stdout, "deleted %d dead letter(s)\n", out.Deleted)
			return 0
		}
		// List every page.
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		if !*asJSON {
			fmt.Fprintln(tw, "ID\tTOPIC\tQOS\tREFUSED AT\tREASON\tPAYLOAD")
		}
		var after uint64
		n := 0
		for {
			var page struct {
				DeadLetters []json.RawMessage `json:"dead_letters"`
				NextAfter   *uint64           `json:"next_after"` // absent on the last page
			}
			if err := api.call(ctx, http.MethodGet, fmt.Sprintf("/v1/deadletters?after=%d&limit=1000", after), &page); err != nil {
				return c.errorf("%v", err)
			}
			for _, raw := range page.DeadLetters {
				var d deadLetter
				if err := json.Unmarshal(raw, &d); err != nil {
					return c.errorf("edge-agent sent a bad dead letter: %v", err)
				}
				after = d.ID
				n++
				if *asJSON {
					c.stdout.Write(append(bytes.TrimSpace(raw), '\n'))
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Topic, d.QoS, d.At, d.Reason, preview(d))
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
			fmt.Fprintf(c.stdout, "%d dead letter(s); requeue with --requeue ID[,ID…] or --requeue all\n", n)
		}
		return 0
	}
}

// idQuery turns "1,2,3" into id=1&id=2&id=3 and "all" into all=1.
func idQuery(list string) (string, error) {
	if list == "all" {
		return "all=1", nil
	}
	v := url.Values{}
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
func preview(d deadLetter) string {
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

// call sends a request without a body and decodes a 200 answer into out.
func (a *apiClient) call(ctx context.Context, method, pathQuery string, out any) error {
	resp, err := a.do(ctx, method, pathQuery, "", nil, -1)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("reading the answer of edge-agent: %w", err)
	}
	return nil
}
