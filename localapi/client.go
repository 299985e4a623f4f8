package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client talks HTTP/1.1 to the agent over its Unix socket: the one client of the local API, used by
// the CLI, the agent's health check and the bench client. Safe for concurrent use.
type Client struct {
	socket string
	tr     *http.Transport
	hc     *http.Client
}

// NewClient returns a Client for the agent listening at socket. It keeps one idle connection.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 1,
	}
	return &Client{socket: socket, tr: tr, hc: &http.Client{Transport: tr}}
}

// Close drops idle keep-alive connections (and their reader goroutines).
func (a *Client) Close() { a.tr.CloseIdleConnections() }

// Do sends a request to the agent; a failure to connect becomes an error that
// names the socket and the likely cause.
// length is the body size, or -1 to keep what http.NewRequest found (it
// knows the size of strings.Reader and bytes.Buffer bodies; others are sent
// chunked).
func (a *Client) Do(ctx context.Context, method, pathQuery, contentType string, body io.Reader, length int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://edge-agent"+pathQuery, body)
	if err != nil {
		return nil, err
	}
	if length >= 0 {
		req.ContentLength = length
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, a.connError(err)
	}
	return resp, nil
}

// busyRetryFor bounds how long DoRetry keeps retrying answers of "503 Service Unavailable" with
// Retry-After (the agent's memory budget or connection limit is momentarily exhausted).
const busyRetryFor = 30 * time.Second

// DoRetry is Do for a body that can be sent again: a 503 with Retry-After (the agent is busy,
// nothing was stored) is retried after the time it asks for (at most 5 s at a time) for up to
// busyRetryFor; any other answer is returned as it is.
func (a *Client) DoRetry(ctx context.Context, method, pathQuery, contentType string, body []byte) (*http.Response, error) {
	deadline := time.Now().Add(busyRetryFor)
	for {
		resp, err := a.Do(ctx, method, pathQuery, contentType, bytes.NewReader(body), int64(len(body)))
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			return resp, err
		}
		secs, perr := strconv.Atoi(resp.Header.Get("Retry-After"))
		if perr != nil || secs < 0 || time.Now().After(deadline) {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		t := time.NewTimer(min(time.Duration(max(secs, 1))*time.Second, 5*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (a *Client) connError(err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return fmt.Errorf("talking to edge-agent at %s: %w", a.socket, err)
	}
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("cannot connect to %s: no such socket (is edge-agent running? use --socket or EDGE_AGENT_SOCKET if it listens elsewhere): %w", a.socket, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to %s: connection refused (is edge-agent running?): %w", a.socket, err)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("cannot connect to %s: permission denied (run as root or as a member of the socket's group): %w", a.socket, err)
	}
	return fmt.Errorf("cannot connect to %s (is edge-agent running?): %w", a.socket, err)
}

// ReadError reads a non-success answer (the API sends ErrorAnswer) into an *Error.
func ReadError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // best effort: the status alone still says something
	var e ErrorAnswer
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Msg: msg}
}

// Error is an error answer of the local API.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status) }

// Status asks GET /v1/status.
func (a *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := a.GetJSON(ctx, "/v1/status", &st)
	return st, err
}

// GetJSON asks GET pathQuery and decodes a 200 answer into v; any other answer is an *Error.
func (a *Client) GetJSON(ctx context.Context, pathQuery string, v any) error {
	return a.JSON(ctx, http.MethodGet, pathQuery, v)
}

// JSON sends a request without a body and decodes a 200 answer into v; any other answer is an
// *Error.
func (a *Client) JSON(ctx context.Context, method, pathQuery string, v any) error {
	resp, err := a.Do(ctx, method, pathQuery, "", nil, -1)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ReadError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading the answer to %s %s: %w", method, pathQuery, err)
	}
	return nil
}
