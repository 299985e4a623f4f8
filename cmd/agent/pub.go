package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
)

// Batching of pub -l: a batch is sent when it holds batchLines lines or
// batchBytes of NDJSON, or when no line arrived for batchIdle (so that an
// interactive producer sees its lines go out).
const (
	batchLines     = 1000
	batchBytes     = 256 << 10
	batchIdle      = 50 * time.Millisecond
	defaultMaxLine = 256 << 10 // the agent's default payload limit (mqtt)
)

type pubOptions struct {
	topic  string
	qos    int
	retain bool
	broker string // "": the brokers whose publish routes take the topic
}

func setupPub(fs *flag.FlagSet) func(context.Context, *cli) int {
	var o pubOptions
	fs.StringVar(&o.topic, "t", "", "`topic` to publish to (required)")
	msg := fs.String("m", "", "publish `message`")
	file := fs.String("f", "", "publish the contents of `file` as one message")
	lines := fs.Bool("l", false, "publish each line of stdin as a message")
	all := fs.Bool("s", false, "publish all of stdin as one message")
	fs.Bool("n", false, "publish an empty message")
	fs.IntVar(&o.qos, "q", 1, "QoS `level`, 0 or 1 (1, at least once, unless you say otherwise)")
	fs.BoolVar(&o.retain, "r", false, "ask the broker to retain the message")
	fs.StringVar(&o.broker, "broker", "", "send to the broker named `name` only, whatever its publish routes (default: every broker whose routes take the topic)")
	maxLine := fs.Int("max-line", defaultMaxLine, "with -l: longest line in `bytes` (the agent's payload limit)")
	socket := socketFlag(fs)
	return func(ctx context.Context, c *cli) int {
		modes := 0
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "m", "f", "l", "s", "n":
				modes++
			}
		})
		switch {
		case o.topic == "":
			return c.usageError("-t TOPIC is required")
		case modes != 1:
			return c.usageError("give exactly one of -m MSG, -f FILE, -l, -s or -n")
		case o.qos != 0 && o.qos != 1:
			return c.usageError("-q %d: QoS must be 0 or 1", o.qos)
		case *maxLine < 1:
			return c.usageError("--max-line must be positive")
		}
		api := localapi.NewClient(socket(c.getenv))
		defer api.Close()
		if *lines {
			return c.pubLines(ctx, api, o, *maxLine)
		}
		var body io.Reader = http.NoBody
		length := int64(0)
		switch {
		case *file != "":
			f, err := os.Open(*file)
			if err != nil {
				return c.errorf("message not sent: %v", err)
			}
			defer f.Close() // read-only
			st, err := f.Stat()
			if err != nil {
				return c.errorf("message not sent: %v", err)
			}
			body, length = f, st.Size()
		case *all:
			body, length = c.stdin, -1
		case *msg != "":
			body, length = bytes.NewReader([]byte(*msg)), int64(len(*msg))
		}
		if err := publishOne(ctx, api, o, body, length); err != nil {
			return c.errorf("message not accepted: %v", err)
		}
		return 0
	}
}

// publishOne sends one raw message: POST /v1/publish?topic=…&qos=…[&retain=1][&broker=…].
func publishOne(ctx context.Context, api *localapi.Client, o pubOptions, body io.Reader, length int64) error {
	q := url.Values{"topic": {o.topic}, "qos": {strconv.Itoa(o.qos)}}
	if o.retain {
		q.Set("retain", "1")
	}
	if o.broker != "" {
		q.Set("broker", o.broker)
	}
	var resp *http.Response
	var err error
	if b, ok := body.(*bytes.Reader); ok && b.Size() == length { // -m and -f: can be sent again when the agent is busy
		data := make([]byte, length)
		_, _ = b.ReadAt(data, 0)
		resp, err = api.DoRetry(ctx, http.MethodPost, "/v1/publish?"+q.Encode(), "application/octet-stream", data)
	} else {
		resp, err = api.Do(ctx, http.MethodPost, "/v1/publish?"+q.Encode(), "application/octet-stream", body, length)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return localapi.ReadError(resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain for keep-alive; the id is not needed
	return nil
}

// lineItem is what the stdin reader hands over: a line, or why it stopped.
type lineItem struct {
	data []byte
	err  error
}

// pubLines publishes stdin line by line in NDJSON batches and reports how
// many messages the agent durably accepted.
func (c *cli) pubLines(ctx context.Context, api *localapi.Client, o pubOptions, maxLine int) int {
	items := make(chan lineItem, 256)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(items)
		readLines(c.stdin, maxLine, items, done)
	})
	defer func() {
		close(done)
		// A Read of a terminal cannot be interrupted; if stdin has no
		// deadline support the reader is waited for (it ends at EOF or on
		// done), otherwise it is cut short with a deadline first. A stdin
		// that refuses a deadline is left to the process exit.
		if d, ok := c.stdin.(interface{ SetReadDeadline(time.Time) error }); ok {
			if d.SetReadDeadline(time.Now()) != nil {
				return
			}
		}
		wg.Wait()
	}()

	b := newPubBatch(ctx, api, o.broker)
	timer := time.NewTimer(batchIdle)
	timer.Stop()
	defer timer.Stop()
	taken := 0 // lines taken from stdin
	fail := func(line int, err error) int {
		return c.errorf("%d of %d messages accepted; stopped at line %d: %v", b.accepted, taken, line, err)
	}
	// flush sends the batch; on failure it returns the batch's first line.
	flush := func() (int, error) {
		timer.Stop()
		return b.flush()
	}
	for {
		select {
		case it, ok := <-items:
			if !ok {
				if line, err := flush(); err != nil {
					return fail(line, err)
				}
				return 0
			}
			if it.err != nil {
				if errors.Is(it.err, errLineTooLong) {
					taken++ // a message that was not accepted
				}
				if line, err := flush(); err != nil {
					return fail(line, err)
				}
				return fail(taken+boolInt(!errors.Is(it.err, errLineTooLong)), it.err)
			}
			taken++
			if err := b.add(batchLine(o, it.data)); err != nil { // cannot fail for these types
				return fail(taken, err)
			}
			if b.lines >= batchLines || b.buf.Len() >= batchBytes {
				if line, err := flush(); err != nil {
					return fail(line, err)
				}
			} else {
				timer.Reset(batchIdle)
			}
		case <-timer.C:
			if line, err := flush(); err != nil {
				return fail(line, err)
			}
		case <-ctx.Done():
			return fail(b.first, ctx.Err())
		}
	}
}

// batchLine is the batch line for one line of stdin: its payload as text when it is UTF-8, else
// as base64.
func batchLine(o pubOptions, data []byte) *localapi.BatchLine {
	m := localapi.BatchLine{Topic: &o.topic, QoS: &o.qos, Retain: &o.retain} // every field, as a reader expects
	m.Payload, m.PayloadBase64 = localapi.EncodePayload(data)
	return &m
}

// pubBatch is the NDJSON batch that pubLines fills from stdin and posts to the agent.
type pubBatch struct {
	ctx      context.Context
	api      *localapi.Client
	path     string // /v1/publish[?broker=…]
	buf      bytes.Buffer
	enc      *json.Encoder
	lines    int // lines in buf
	first    int // line number of the batch's first line
	accepted int // messages the agent answered 202 for, in all batches sent
}

func newPubBatch(ctx context.Context, api *localapi.Client, broker string) *pubBatch {
	b := &pubBatch{ctx: ctx, api: api, path: "/v1/publish", first: 1}
	if broker != "" {
		b.path += "?" + url.Values{"broker": {broker}}.Encode()
	}
	b.enc = json.NewEncoder(&b.buf)
	b.enc.SetEscapeHTML(false)
	return b
}

// add appends one line to the batch.
func (b *pubBatch) add(m *localapi.BatchLine) error {
	if err := b.enc.Encode(m); err != nil {
		return err
	}
	b.lines++
	return nil
}

// flush sends the batch, if it holds any line; on failure it returns the batch's first line.
func (b *pubBatch) flush() (int, error) {
	if b.lines == 0 {
		return 0, nil
	}
	start, n := b.first, b.lines
	b.first += b.lines
	b.lines = 0
	got, err := postBatch(b.ctx, b.api, b.path, b.buf.Bytes())
	b.buf.Reset()
	b.accepted += min(got, n)
	if err == nil && got != n {
		err = fmt.Errorf("the agent accepted %d of the batch's %d messages", got, n)
	}
	return start, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var errLineTooLong = errors.New("line too long")

// readLines sends each line of r (without its "\n") to out until EOF, an
// error, a line longer than maxLine, or done.
func readLines(r io.Reader, maxLine int, out chan<- lineItem, done <-chan struct{}) {
	send := func(it lineItem) bool {
		select {
		case out <- it:
			return true
		case <-done:
			return false
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		var line []byte
		started := false
		for {
			frag, err := br.ReadSlice('\n')
			started = started || len(frag) > 0
			line = append(line, frag...)
			if n := len(bytes.TrimSuffix(line, []byte("\n"))); n > maxLine {
				send(lineItem{err: fmt.Errorf("%w: more than %d bytes (the payload limit; see --max-line)", errLineTooLong, maxLine)})
				return
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					if started {
						send(lineItem{data: line})
					}
				} else {
					send(lineItem{err: fmt.Errorf("reading stdin: %w", err)})
				}
				return
			}
			break
		}
		if !send(lineItem{data: line[:len(line)-1]}) {
			return
		}
	}
}

// postBatch sends NDJSON lines to path (/v1/publish[?broker=…]) and returns how many the agent
// accepted.
func postBatch(ctx context.Context, api *localapi.Client, path string, body []byte) (int, error) {
	resp, err := api.DoRetry(ctx, http.MethodPost, path, "application/x-ndjson", body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, localapi.ReadError(resp)
	}
	var r struct {
		Accepted *int `json:"accepted"` // localapi.Accepted, with a missing count told apart
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&r); err != nil || r.Accepted == nil {
		return 0, fmt.Errorf("the agent answered HTTP %d without an \"accepted\" count", resp.StatusCode)
	}
	return *r.Accepted, nil
}
