package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/edge-agent/edge-agent/localapi"
)

// maxStreamLine bounds one NDJSON line of the subscribe stream: a 256 MiB
// payload in base64 plus the envelope.
const maxStreamLine = 360 << 20

// filters is a repeatable -t flag.
type filters []string

func (f *filters) String() string     { return strings.Join(*f, ",") }
func (f *filters) Set(s string) error { *f = append(*f, s); return nil }

func setupSub(fs *flag.FlagSet) func(context.Context, *cli) int {
	var topics filters
	fs.Var(&topics, "t", "topic `filter` to subscribe to (repeatable, required)")
	verbose := fs.Bool("v", false, "print \"topic payload\" instead of the payload alone")
	count := fs.Int("C", 0, "exit after `count` messages (0: run until the stream ends)")
	broker := fs.String("broker", "", "subscribe with the broker named `name` only (default: every broker)")
	socket := socketFlag(fs)
	return func(ctx context.Context, c *cli) int {
		switch {
		case len(topics) == 0:
			return c.usageError("at least one -t FILTER is required")
		case *count < 0:
			return c.usageError("-C must not be negative")
		}
		api := localapi.NewClient(socket(c.getenv))
		defer api.Close()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // ends the stream when -C is reached
		got, err := subscribe(ctx, api, topics, *broker, *count, *verbose, c.stdout)
		if err != nil {
			return c.errorf("%v", err)
		}
		if *count > 0 && got < *count {
			return c.errorf("the stream ended after %d of %d messages (did edge-agent stop?)", got, *count)
		}
		if *count == 0 {
			return c.errorf("the stream ended after %d messages (did edge-agent stop?)", got)
		}
		return 0
	}
}

// subscribe prints messages of topics from broker ("": every broker) until count (0: no limit)
// or the end of the stream and returns how many it printed.
func subscribe(ctx context.Context, api *localapi.Client, topics []string, broker string, count int, verbose bool, out io.Writer) (int, error) {
	q := url.Values{"topic": topics}
	if broker != "" {
		q.Set("broker", broker)
	}
	resp, err := api.Do(ctx, http.MethodGet, "/v1/subscribe?"+q.Encode(), "", nil, -1)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, localapi.ReadError(resp)
	}
	w := bufio.NewWriter(out)
	defer w.Flush()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	got := 0
	for count == 0 || got < count {
		line, err := readStreamLine(br)
		if len(bytes.TrimSpace(line)) > 0 {
			var m localapi.Message
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				return got, fmt.Errorf("bad line from edge-agent: %v", jerr)
			}
			payload := []byte(nil)
			switch {
			case m.Payload != nil:
				payload = []byte(*m.Payload)
			case m.PayloadBase64 != nil:
				if payload, err = base64.StdEncoding.DecodeString(*m.PayloadBase64); err != nil {
					return got, fmt.Errorf("bad payload_base64 from edge-agent on topic %q: %v", m.Topic, err)
				}
			}
			if verbose {
				w.WriteString(m.Topic)
				w.WriteByte(' ')
			}
			w.Write(payload)
			if err := w.WriteByte('\n'); err != nil {
				return got, err
			}
			got++
			if err := w.Flush(); err != nil { // a pipe reader sees each message at once
				return got, fmt.Errorf("writing output: %w", err)
			}
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return got, nil
			}
			return got, fmt.Errorf("reading the stream from edge-agent: %w", err)
		}
	}
	return got, nil
}

// readStreamLine reads one line (any length up to maxStreamLine).
func readStreamLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxStreamLine {
			return nil, fmt.Errorf("a line of the stream is longer than %d bytes", maxStreamLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}
