package awsiot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// doerFunc answers requests without a network.
type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

func cannedDoer(status int, header http.Header, body []byte, calls *atomic.Int32) doerFunc {
	return func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return &http.Response{StatusCode: status, Header: header.Clone(), Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
	}
}

func TestCognitoAnswerBounded(t *testing.T) {
	for _, status := range []int{200, 400, 503} {
		var calls atomic.Int32
		big := append([]byte(`{"IdentityId":"`), bytes.Repeat([]byte("a"), cognitoMaxBody)...)
		c := newCognitoClient("eu-west-1", "", cannedDoer(status, http.Header{}, big, &calls))
		c.backoff = func(int) time.Duration { return 0 }
		_, err := c.GetId(context.Background(), oraclePool, nil)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprint(cognitoMaxBody)) {
			t.Fatalf("HTTP %d with a %d-byte answer: err = %v, want one naming the bound", status, len(big), err)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("HTTP %d with an oversized answer: %d attempts, want 1 (not retried)", status, n)
		}
	}
}

func TestCognitoRetryStopsWhenCancelled(t *testing.T) {
	var calls atomic.Int32
	c := newCognitoClient("eu-west-1", "", cannedDoer(503, http.Header{"X-Amzn-Errortype": {"ServiceUnavailableException:"}}, nil, &calls))
	c.backoff = func(int) time.Duration { return time.Hour }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.GetId(ctx, oraclePool, nil)
		done <- err
	}()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-done
	var ae *APIError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ae) || ae.Code != "ServiceUnavailableException" || ae.Status != 503 {
		t.Fatalf("cancelled during backoff: err = %v, want context.Canceled and the 503", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestCognitoRequestTimesOut(t *testing.T) {
	// The attempt's own deadline bounds a server that never answers, even
	// with an HTTP client without a timeout.
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	c := newCognitoClient("eu-west-1", srv.URL, hc)
	c.attempts = 1
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.GetId(ctx, oraclePool, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetId against a silent server: %v, want a deadline error", err)
	}
}

func TestSanitizeErrorCode(t *testing.T) {
	for in, want := range map[string]string{
		"NotAuthorizedException":  "NotAuthorizedException",
		"NotAuthorizedException:": "NotAuthorizedException",
		"com.amazonaws.cognito.identity.model#ResourceNotFoundException":                          "ResourceNotFoundException",
		"aws.cognito#TooManyRequestsException:http://internal.amazon.com/coral/com.amazon.coral/": "TooManyRequestsException",
		"a#b#c": "b#c",
		"":      "",
	} {
		if got := sanitizeErrorCode(in); got != want {
			t.Errorf("sanitizeErrorCode(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCognitoAnswer: whatever comes back, the client returns a result or an
// error (never panics), an *APIError names a bare code, and a secret in a
// success answer is never echoed in an error.
func FuzzCognitoAnswer(f *testing.F) {
	f.Add(200, "", `{"IdentityId":"x","Credentials":{"AccessKeyId":"A","SecretKey":"SEKRIT","SessionToken":"TOKEN","Expiration":1.7e9}}`)
	f.Add(200, "", `{"Credentials":{"SecretKey":"SEKRIT","Expiration":"soon"}}`)
	f.Add(200, "", `{"Credentials":{"SecretKey":"SEKRIT","Expiration":1e400}}`)
	f.Add(400, "NotAuthorizedException:", `{"__type":"x#NotAuthorizedException","message":"no"}`)
	f.Add(400, "", `{"code":7}`)
	f.Add(503, "", `<html>`)
	f.Add(302, "", ``)
	f.Fuzz(func(t *testing.T, status int, errType, body string) {
		if status < 100 || status > 999 {
			return
		}
		h := http.Header{}
		if errType != "" {
			h.Set("X-Amzn-ErrorType", errType)
		}
		var calls atomic.Int32
		c := newCognitoClient("eu-west-1", "", cannedDoer(status, h, []byte(body), &calls))
		c.backoff = func(int) time.Duration { return 0 }
		cr, err := c.GetCredentialsForIdentity(context.Background(), oracleID, nil)
		if n := calls.Load(); n < 1 || n > cognitoMaxAttempts {
			t.Fatalf("%d attempts", n)
		}
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("HTTP %d accepted as success: %+v", status, cr)
			}
			return
		}
		var ae *APIError
		if errors.As(err, &ae) && (ae.Code == "" || strings.Contains(ae.Code, ":")) {
			t.Fatalf("APIError code %q", ae.Code)
		}
		if status >= 200 && status <= 299 && (strings.Contains(err.Error(), "SEKRIT") || strings.Contains(err.Error(), "TOKEN")) {
			t.Fatalf("error repeats a secret of the answer: %v", err)
		}
	})
}
