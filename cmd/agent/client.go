package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const defaultSocket = "/run/edge-agent/agent.sock"

// socketFlag adds --socket to fs; the returned func resolves it:
// --socket, else $EDGE_AGENT_SOCKET, else defaultSocket.
func socketFlag(fs *flag.FlagSet) func(getenv func(string) string) string {
	s := fs.String("socket", "", "local API `socket` (default $EDGE_AGENT_SOCKET, else "+defaultSocket+")")
	return func(getenv func(string) string) string {
		if *s != "" {
			return *s
		}
		if e := getenv("EDGE_AGENT_SOCKET"); e != "" {
			return e
		}
		return defaultSocket
	}
}

// apiClient talks HTTP/1.1 to the agent over its Unix socket.
type apiClient struct {
	socket string
	tr     *http.Transport
	hc     *http.Client
}

func newAPIClient(socket string) *apiClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 1,
	}
	return &apiClient{socket: socket, tr: tr, hc: &http.Client{Transport: tr}}
}

// close drops idle keep-alive connections (and their reader goroutines).
func (a *apiClient) close() { a.tr.CloseIdleConnections() }

// do sends req to the agent; a failure to connect becomes an error that
// names the socket and the likely cause.
// length is the body size, or -1 to keep what http.NewRequest found (it
// knows the size of strings.Reader and bytes.Buffer bodies; others are sent
// chunked).
func (a *apiClient) do(ctx context.Context, method, pathQuery, contentType string, body io.Reader, length int64) (*http.Response, error) {
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

// busyRetryFor bounds how long doWithRetry keeps retrying answers of "503 Service Unavailable" with
// Retry-After (the agent's memory budget or connection limit is momentarily exhausted).
const busyRetryFor = 30 * time.Second

// doWithRetry is do for a body that can be sent again: a 503 with Retry-After (the agent is busy,
// nothing was stored) is retried after the time it asks for (at most 5 s at a time) for up to
// busyRetryFor; any other answer is returned as it is.
func (a *apiClient) doWithRetry(ctx context.Context, method, pathQuery, contentType string, body []byte) (*http.Response, error) {
	deadline := time.Now().Add(busyRetryFor)
	for {
		resp, err := a.do(ctx, method, pathQuery, contentType, bytes.NewReader(body), int64(len(body)))
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

func (a *apiClient) connError(err error) error {
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

// serverError reads a non-success answer: the API sends {"error":"…"}.
func serverError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // best effort: the status alone still says something
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &apiError{Status: resp.StatusCode, Msg: msg}
}

// apiError is an error answer of the local API.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status) }
