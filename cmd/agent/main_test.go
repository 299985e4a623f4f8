package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/edge-agent/edge-agent/awsiot"
	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// request is what the fake agent saw.
type request struct {
	Method, Path, ContentType string
	Query                     map[string][]string
	Body                      []byte
	Lines                     []localapi.BatchLine // NDJSON batches, decoded
}

// fakeAPI implements just enough of SPEC "Local API" on a real Unix socket.
type fakeAPI struct {
	socket string

	mu          sync.Mutex
	reqs        []request
	batches     int
	rejectBatch int           // this NDJSON batch (1-based) gets 507
	status      string        // body of GET /v1/status
	stream      []string      // lines of GET /v1/subscribe
	endStream   bool          // close the stream after the lines instead of holding it open
	busy        int           // answer this many publishes to topic "busy" with 503 + Retry-After
	deadLetters string        // body of GET /v1/deadletters
	got         chan struct{} // signalled after each recorded request
}

func startFake(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{socket: filepath.Join(t.TempDir(), "agent.sock"), got: make(chan struct{}, 100)}
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return f
}

func (f *fakeAPI) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := request{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Query: r.URL.Query(), Body: body}
	f.mu.Lock()
	defer func() {
		select {
		case f.got <- struct{}{}:
		default:
		}
	}()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	idx := len(f.reqs) - 1
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/publish" && req.ContentType == "application/x-ndjson":
		f.batches++
		if f.batches == f.rejectBatch {
			jsonError(w, 507, "queue full")
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var lines []localapi.BatchLine
		for n := 1; dec.More(); n++ {
			var l localapi.BatchLine
			if err := dec.Decode(&l); err != nil || l.Topic == nil || *l.Topic == "" || (l.Payload == nil) == (l.PayloadBase64 == nil) {
				jsonError(w, 400, fmt.Sprintf("line %d: bad message (%v)", n, err))
				return
			}
			lines = append(lines, l)
		}
		f.reqs[idx].Lines = lines
		w.WriteHeader(202)
		fmt.Fprintf(w, `{"accepted":%d}`, len(lines))
	case r.Method == "POST" && r.URL.Path == "/v1/publish":
		switch t := r.URL.Query().Get("topic"); {
		case strings.ContainsAny(t, "+#"):
			jsonError(w, 400, fmt.Sprintf("topic %q: wildcards are not allowed in a publish topic", t))
		case t == "big":
			jsonError(w, 413, "payload over the limit of 262144 bytes")
		case t == "busy" && f.busy > 0:
			f.busy--
			w.Header().Set("Retry-After", "1")
			jsonError(w, 503, "the local API's memory budget (api.body_budget) is in use; retry")
		default:
			w.WriteHeader(202)
			fmt.Fprintf(w, `{"id":%d}`, idx+1)
		}
	case r.Method == "GET" && r.URL.Path == "/v1/status":
		io.WriteString(w, f.status)
	case r.Method == "GET" && r.URL.Path == "/v1/deadletters":
		io.WriteString(w, f.deadLetters)
	case r.Method == "POST" && r.URL.Path == "/v1/deadletters/requeue":
		io.WriteString(w, `{"requeued":1,"ids":[9]}`)
	case r.Method == "DELETE" && r.URL.Path == "/v1/deadletters":
		io.WriteString(w, `{"deleted":1}`)
	case r.Method == "GET" && r.URL.Path == "/v1/identity":
		io.WriteString(w, `{"identity_id":"eu-west-1:11111111-2222-3333-4444-555555555555"}`)
	case r.Method == "GET" && r.URL.Path == "/v1/subscribe":
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, l := range f.stream {
			io.WriteString(w, l+"\n")
		}
		w.(http.Flusher).Flush()
		if f.endStream {
			return
		}
		f.mu.Unlock()
		<-r.Context().Done() // hold the stream open until the client goes
		f.mu.Lock()
	default:
		jsonError(w, 404, "no such endpoint")
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errOut bytes.Buffer
	code := run(args, stdin, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func (r result) want(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
}

func TestPubSingle(t *testing.T) {
	f := startFake(t)
	file := filepath.Join(t.TempDir(), "payload.bin")
	binary := []byte{0, 1, 2, 0xff, 0xfe, '\n', 'x'}
	if err := os.WriteFile(file, binary, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		body  []byte
		query string
	}{
		{"-m", []string{"-t", "a/b", "-m", "hello", "-q", "1", "-r"}, "", []byte("hello"), "qos=1&retain=1&topic=a%2Fb"},
		{"-f", []string{"-t", "files", "-f", file}, "", binary, "qos=1&topic=files"},
		{"-s", []string{"-t", "s", "-s", "-q", "0"}, "line 1\nline 2\n\x00", []byte("line 1\nline 2\n\x00"), "qos=0&topic=s"},
		{"-n", []string{"-t", "empty", "-n", "-r"}, "ignored", []byte{}, "qos=1&retain=1&topic=empty"},
		{"-m empty", []string{"-t", "e", "-m", ""}, "", []byte{}, "qos=1&topic=e"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, strings.NewReader(tt.stdin), append([]string{"pub", "--socket", f.socket}, tt.args...)...)
			r.want(t, 0)
			if r.stdout != "" || r.stderr != "" {
				t.Fatalf("unexpected output %q %q", r.stdout, r.stderr)
			}
			reqs := f.requests()
			if len(reqs) != i+1 {
				t.Fatalf("%d requests, want %d", len(reqs), i+1)
			}
			got := reqs[i]
			q := url.Values(got.Query).Encode()
			if got.Method != "POST" || got.Path != "/v1/publish" || q != tt.query || !bytes.Equal(got.Body, tt.body) ||
				got.ContentType != "application/octet-stream" {
				t.Fatalf("request %+v (query %s), want body %q query %s", got, q, tt.body, tt.query)
			}
		})
	}
}

func TestPubServerErrors(t *testing.T) {
	f := startFake(t)
	r := runCLI(t, nil, "pub", "--socket", f.socket, "-t", "bad/#", "-m", "x")
	r.want(t, 1)
	if want := "edge-agent pub: message not accepted: topic \"bad/#\": wildcards are not allowed in a publish topic (HTTP 400)\n"; r.stderr != want {
		t.Fatalf("stderr %q, want %q", r.stderr, want)
	}
	r = runCLI(t, nil, "pub", "--socket", f.socket, "-t", "big", "-s")
	r.want(t, 1)
	if !strings.Contains(r.stderr, "payload over the limit of 262144 bytes (HTTP 413)") {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = runCLI(t, nil, "pub", "--socket", f.socket, "-t", "x", "-f", filepath.Join(t.TempDir(), "nope"))
	r.want(t, 1)
	if !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

// A publish the agent answers "503, Retry-After" (its memory budget is momentarily in use, nothing
// was stored) is sent again after the time it asks for; the exit code reports the final answer.
func TestPubRetriesWhenBusy(t *testing.T) {
	f := startFake(t)
	f.mu.Lock()
	f.busy = 2
	f.mu.Unlock()
	r := runCLI(t, nil, "pub", "--socket", f.socket, "-t", "busy", "-m", "reading")
	r.want(t, 0)
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (two 503s, then 202)", len(reqs))
	}
	for _, q := range reqs {
		if string(q.Body) != "reading" {
			t.Fatalf("resent body %q, want the whole message each time", q.Body)
		}
	}
}

func numbered(n int) (string, []string) {
	var b strings.Builder
	lines := make([]string, n)
	for i := range n {
		lines[i] = fmt.Sprintf("message %d <&> ü", i+1)
		b.WriteString(lines[i] + "\n")
	}
	return b.String(), lines
}

func TestPubLinesBatches(t *testing.T) {
	f := startFake(t)
	in, lines := numbered(2500)
	r := runCLI(t, strings.NewReader(in), "pub", "--socket", f.socket, "-t", "t/l", "-l", "-q", "1")
	r.want(t, 0)
	var got []string
	reqs := f.requests()
	for _, q := range reqs {
		if q.ContentType != "application/x-ndjson" || q.Path != "/v1/publish" || len(q.Query) != 0 {
			t.Fatalf("request %+v", q)
		}
		if len(q.Lines) > batchLines {
			t.Fatalf("a batch of %d lines", len(q.Lines))
		}
		for _, l := range q.Lines {
			if *l.Topic != "t/l" || *l.QoS != 1 || *l.Retain || l.PayloadBase64 != nil {
				t.Fatalf("line %+v", l)
			}
			got = append(got, *l.Payload)
		}
	}
	if len(reqs) < 3 {
		t.Fatalf("%d batches for 2500 lines, want at least 3", len(reqs))
	}
	if strings.Join(got, "\n") != strings.Join(lines, "\n") {
		t.Fatalf("the agent got %d messages, not the 2500 lines in order", len(got))
	}
	// The raw JSON keeps <&> as they are.
	if !bytes.Contains(reqs[0].Body, []byte(`"payload":"message 1 <&> ü"`)) {
		t.Fatalf("first batch starts %q", reqs[0].Body[:80])
	}
}

func TestPubLinesRejected(t *testing.T) {
	f := startFake(t)
	f.rejectBatch = 2
	in, _ := numbered(2500)
	r := runCLI(t, strings.NewReader(in), "pub", "--socket", f.socket, "-t", "t", "-l")
	r.want(t, 1)
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests after a rejected batch, want 2", len(reqs))
	}
	first := len(reqs[0].Lines)
	second := bytes.Count(reqs[1].Body, []byte("\n"))
	want := fmt.Sprintf("edge-agent pub: %d of %d messages accepted; stopped at line %d: queue full (HTTP 507)\n", first, first+second, first+1)
	if r.stderr != want {
		t.Fatalf("stderr %q\nwant   %q", r.stderr, want)
	}
}

func TestPubLinesInvalidUTF8(t *testing.T) {
	f := startFake(t)
	in := "plain\n\xff\xfebinary\x00\n\nlast without newline"
	runCLI(t, strings.NewReader(in), "pub", "--socket", f.socket, "-t", "u", "-l", "-r").want(t, 0)
	var lines []localapi.BatchLine
	for _, q := range f.requests() {
		lines = append(lines, q.Lines...)
	}
	if len(lines) != 4 {
		t.Fatalf("%d messages, want 4: %+v", len(lines), lines)
	}
	if lines[0].Payload == nil || *lines[0].Payload != "plain" || !*lines[0].Retain {
		t.Fatalf("line 1: %+v", lines[0])
	}
	if lines[1].Payload != nil || lines[1].PayloadBase64 == nil {
		t.Fatalf("line 2 not sent as payload_base64: %+v", lines[1])
	}
	if b, err := base64.StdEncoding.DecodeString(*lines[1].PayloadBase64); err != nil || string(b) != "\xff\xfebinary\x00" {
		t.Fatalf("line 2 decodes to %q, %v", b, err)
	}
	if lines[2].Payload == nil || *lines[2].Payload != "" || *lines[3].Payload != "last without newline" {
		t.Fatalf("lines 3-4: %+v %+v", lines[2], lines[3])
	}
}

func TestPubLinesTooLong(t *testing.T) {
	f := startFake(t)
	in := "short\n" + strings.Repeat("x", 11) + "\nnever sent\n"
	r := runCLI(t, strings.NewReader(in), "pub", "--socket", f.socket, "-t", "t", "-l", "--max-line", "10")
	r.want(t, 1)
	want := "edge-agent pub: 1 of 2 messages accepted; stopped at line 2: line too long: more than 10 bytes (the payload limit; see --max-line)\n"
	if r.stderr != want {
		t.Fatalf("stderr %q\nwant   %q", r.stderr, want)
	}
	if reqs := f.requests(); len(reqs) != 1 || len(reqs[0].Lines) != 1 {
		t.Fatalf("requests %+v", reqs)
	}
	// Exactly at the limit is fine.
	runCLI(t, strings.NewReader(strings.Repeat("y", 10)+"\n"), "pub", "--socket", f.socket, "-t", "t", "-l", "--max-line", "10").want(t, 0)
}

// An interactive producer: a line is sent after a short pause, while stdin
// is still open.
func TestPubLinesIdleFlush(t *testing.T) {
	f := startFake(t)
	pr, pw := io.Pipe()
	res := make(chan result, 1)
	go func() { res <- runCLI(t, pr, "pub", "--socket", f.socket, "-t", "i", "-l") }()
	if _, err := io.WriteString(pw, "first\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the line was not sent while stdin stayed open")
	}
	if reqs := f.requests(); len(reqs) != 1 || len(reqs[0].Lines) != 1 || *reqs[0].Lines[0].Payload != "first" {
		t.Fatalf("requests %+v", reqs)
	}
	io.WriteString(pw, "second\n")
	pw.Close()
	r := <-res
	r.want(t, 0)
	if n := len(f.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestPubMissingSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	r := runCLI(t, nil, "pub", "--socket", sock, "-t", "a", "-m", "x")
	r.want(t, 1)
	if !strings.Contains(r.stderr, sock) || !strings.Contains(r.stderr, "is edge-agent running?") || !strings.Contains(r.stderr, "no such socket") {
		t.Fatalf("stderr %q", r.stderr)
	}
	// A socket file nobody listens on.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "dead.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	r = runCLI(t, strings.NewReader("a\n"), "pub", "--socket", l.Addr().String(), "-t", "a", "-l")
	r.want(t, 1)
	if !strings.Contains(r.stderr, "0 of 1 messages accepted; stopped at line 1: cannot connect to "+l.Addr().String()+": connection refused (is edge-agent running?)") {
		t.Fatalf("stderr %q", r.stderr)
	}
	for _, args := range [][]string{{"status"}, {"sub", "-t", "#"}} {
		r = runCLI(t, nil, append(args, "--socket", sock)...)
		r.want(t, 1)
		if !strings.Contains(r.stderr, sock) || !strings.Contains(r.stderr, "is edge-agent running?") {
			t.Fatalf("%v: stderr %q", args, r.stderr)
		}
	}
}

func TestSocketFromEnvironment(t *testing.T) {
	f := startFake(t)
	f.status = `{"state":"connected"}`
	t.Setenv("EDGE_AGENT_SOCKET", f.socket)
	r := runCLI(t, nil, "status", "--json")
	r.want(t, 0)
	// --socket wins over the environment.
	r = runCLI(t, nil, "status", "--socket", filepath.Join(t.TempDir(), "other.sock"))
	r.want(t, 1)
	if !strings.Contains(r.stderr, "other.sock") {
		t.Fatalf("stderr %q", r.stderr)
	}
	t.Setenv("EDGE_AGENT_SOCKET", "")
	r = runCLI(t, nil, "status")
	if r.code != 1 || !strings.Contains(r.stderr, defaultSocket) {
		t.Fatalf("default socket not used: %+v", r)
	}
}

func TestSub(t *testing.T) {
	f := startFake(t)
	f.stream = []string{
		`{"topic":"a/b","payload":"hello","qos":1,"retain":false}`,
		``,
		`{"topic":"c/d","payload_base64":"AP8=","qos":0,"retain":true}`,
		`{"topic":"a/b","payload":"","qos":0,"retain":false}`,
		`{"topic":"x","payload":"not printed: -C 3","qos":0,"retain":false}`,
	}
	r := runCLI(t, nil, "sub", "--socket", f.socket, "-t", "a/#", "-t", "c/+", "-v", "-C", "3")
	r.want(t, 0)
	if want := "a/b hello\nc/d \x00\xff\na/b \n"; r.stdout != want {
		t.Fatalf("stdout %q, want %q", r.stdout, want)
	}
	q := f.requests()[0]
	if q.Method != "GET" || q.Path != "/v1/subscribe" || strings.Join(q.Query["topic"], " ") != "a/# c/+" {
		t.Fatalf("request %+v", q)
	}
	// Without -v: payloads only.
	r = runCLI(t, nil, "sub", "--socket", f.socket, "-t", "#", "-C", "2")
	r.want(t, 0)
	if r.stdout != "hello\n\x00\xff\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
}

func TestSubStreamEnds(t *testing.T) {
	f := startFake(t)
	f.stream = []string{`{"topic":"a","payload":"1","qos":0,"retain":false}`}
	f.endStream = true
	r := runCLI(t, nil, "sub", "--socket", f.socket, "-t", "a", "-C", "3")
	r.want(t, 1)
	if r.stdout != "1\n" || r.stderr != "edge-agent sub: the stream ended after 1 of 3 messages (did edge-agent stop?)\n" {
		t.Fatalf("%+v", r)
	}
	r = runCLI(t, nil, "sub", "--socket", f.socket, "-t", "a")
	r.want(t, 1)
	if !strings.Contains(r.stderr, "the stream ended after 1 messages") {
		t.Fatalf("%+v", r)
	}
	f.stream = []string{`{"topic":`}
	r = runCLI(t, nil, "sub", "--socket", f.socket, "-t", "a")
	r.want(t, 1)
	if !strings.Contains(r.stderr, "bad line from edge-agent") {
		t.Fatalf("%+v", r)
	}
}

const statusJSON = `{"state":"connected","provider":"mqtt","endpoint":"ws://127.0.0.1:1883/mqtt","client_id":"gw",` +
	`"since":"2025-03-01T10:00:00Z","last_error":"","queue":{"depth":12,"bytes":3145728,"oldest_age_seconds":90,"dropped":3,` +
	`"max_bytes":268435456,"overflow":"drop-oldest"},"delivered":1234,"version":"1.2.3","future_field":{"x":1}}`

func TestStatus(t *testing.T) {
	f := startFake(t)
	f.status = statusJSON
	r := runCLI(t, nil, "status", "--socket", f.socket, "--json")
	r.want(t, 0)
	if r.stdout != statusJSON+"\n" {
		t.Fatalf("--json printed %q", r.stdout)
	}
	r = runCLI(t, nil, "status", "--socket", f.socket)
	r.want(t, 0)
	t.Logf("status:\n%s", r.stdout)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^State: +connected since \S+ \(\d+h\d+m\d+s ago\)$`),
		regexp.MustCompile(`(?m)^Provider: +mqtt$`),
		regexp.MustCompile(`(?m)^Endpoint: +ws://127\.0\.0\.1:1883/mqtt$`),
		regexp.MustCompile(`(?m)^Client ID: +gw$`),
		regexp.MustCompile(`(?m)^Last error: +none$`),
		regexp.MustCompile(`(?m)^Queue: +12 messages, 3 MiB of 256 MiB, oldest 1m30s old, 3 dropped, overflow drop-oldest$`),
		regexp.MustCompile(`(?m)^Delivered: +1234$`),
		regexp.MustCompile(`(?m)^Agent version: +1\.2\.3$`),
		regexp.MustCompile(`(?m)^future_field: +\{"x":1\}$`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("status output lacks %s:\n%s", want, r.stdout)
		}
	}
	// Missing fields are left out, a null is tolerated.
	f.status = `{"state":"connecting","last_error":"dial tcp: refused","queue":null}`
	r = runCLI(t, nil, "status", "--socket", f.socket)
	r.want(t, 0)
	if r.stdout != "State:       connecting\nLast error:  dial tcp: refused\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	f.status = `[1,2]`
	runCLI(t, nil, "status", "--socket", f.socket).want(t, 1)
}

func TestUsage(t *testing.T) {
	r := runCLI(t, nil)
	r.want(t, 2)
	if !strings.Contains(r.stderr, "Usage:") {
		t.Fatalf("%+v", r)
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r = runCLI(t, nil, args...)
		r.want(t, 0)
		if !strings.Contains(r.stdout, "edge-agent pub -t TOPIC") {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	r = runCLI(t, nil, "frobnicate")
	r.want(t, 2)
	if r.stderr != "edge-agent: unknown command \"frobnicate\" (try edge-agent help)\n" {
		t.Fatalf("%q", r.stderr)
	}
	for name, flagName := range map[string]string{"run": "-config", "pub": "-max-line", "sub": "-C", "status": "-json", "identity": "", "version": ""} {
		r = runCLI(t, nil, name, "-h")
		r.want(t, 0)
		if !strings.Contains(r.stdout, "Usage of edge-agent "+name) || !strings.Contains(r.stdout, flagName) {
			t.Fatalf("%s -h: %+v", name, r)
		}
		r2 := runCLI(t, nil, "help", name)
		r2.want(t, 0)
		if r2.stdout != r.stdout {
			t.Fatalf("help %s differs from %s -h", name, name)
		}
	}
	for _, args := range [][]string{
		{"pub", "-m", "x"},                  // no topic
		{"pub", "-t", "a"},                  // no mode
		{"pub", "-t", "a", "-m", "x", "-l"}, // two modes
		{"pub", "-t", "a", "-n", "-q", "2"}, // bad qos
		{"pub", "-t", "a", "-l", "--max-line", "0"},
		{"pub", "--bogus"}, // unknown flag
		{"sub"},            // no filter
		{"sub", "-t", "a", "-C", "-1"},
		{"status", "extra"}, // positional argument
		{"version", "extra"},
	} {
		r = runCLI(t, nil, args...)
		r.want(t, 2)
		if r.stderr == "" || r.stdout != "" {
			t.Fatalf("%v: %+v", args, r)
		}
	}
}

func TestIdentityFromAgent(t *testing.T) {
	f := startFake(t)
	r := runCLI(t, nil, "identity", "--socket", f.socket)
	r.want(t, 0)
	if r.stdout != "eu-west-1:11111111-2222-3333-4444-555555555555\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
}

func TestIdentityFromConfig(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state_dir = %q
[broker]
provider = "aws-iot"
url = "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt"
[cognito]
identity_pool_id = %q
endpoint = %q
`, dir, cog.PoolID(), cog.URL())), 0o600)
	r := runCLI(t, nil, "identity", "--config", cfg)
	r.want(t, 0)
	id := strings.TrimSpace(r.stdout)
	if !awsiot.ValidIdentityID(id) {
		t.Fatalf("stdout %q", r.stdout)
	}
	// The second call reads state_dir: same id, no second GetId.
	r = runCLI(t, nil, "identity", "--config", cfg)
	r.want(t, 0)
	if strings.TrimSpace(r.stdout) != id || cog.GetIdCalls() != 1 {
		t.Fatalf("second call: %q, GetId calls %d", r.stdout, cog.GetIdCalls())
	}
	// Not an AWS config: a clear error.
	mq := filepath.Join(dir, "mqtt.toml")
	os.WriteFile(mq, []byte("[broker]\nurl = \"ws://b.test/mqtt\"\n"), 0o600)
	r = runCLI(t, nil, "identity", "--config", mq)
	r.want(t, 1)
	if !strings.Contains(r.stderr, `provider = "aws-iot"`) {
		t.Fatalf("stderr %q", r.stderr)
	}
}
