package localapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/topic"
)

var testLimits = Limits{MaxPayload: 1024, MaxTopicBytes: 256, MaxBatchBytes: 1 << 20, MaxBatchLines: 100}

// checkTestTopic is MQTT's topic rules without a provider's limits, for any broker.
func checkTestTopic(t, _ string) error { return topic.Validate(t) }

func TestParseBatchLine(t *testing.T) {
	cases := []struct {
		name, line string
		status     int // 0: accepted
		want       string
		payload    string
	}{
		{"plain", `{"topic":"a/b","payload":"hi"}`, 0, "", "hi"},
		{"escapes", `{"topic":"a","payload":"\u00e9\n\"x\"\\"}`, 0, "", "é\n\"x\"\\"},
		{"surrogate pair", `{"topic":"a","payload":"\ud83d\ude00"}`, 0, "", "😀"},
		{"escaped backslash then u", `{"topic":"a","payload":"\\ud800"}`, 0, "", `\ud800`},
		{"base64", `{"topic":"a","payload_base64":"AAEC/w=="}`, 0, "", "\x00\x01\x02\xff"},
		{"invalid utf-8 in payload", "{\"topic\":\"a\",\"payload\":\"x\xffy\"}", 400, "payload_base64", ""},
		{"invalid utf-8 in topic", "{\"topic\":\"a\xc3\",\"payload\":\"x\"}", 400, "UTF-8", ""},
		{"overlong encoding", "{\"topic\":\"a\",\"payload\":\"\xc0\xaf\"}", 400, "UTF-8", ""},
		{"encoded surrogate", "{\"topic\":\"a\",\"payload\":\"\xed\xa0\x80\"}", 400, "UTF-8", ""},
		{"lone high surrogate", `{"topic":"a","payload":"\ud800"}`, 400, "surrogate", ""},
		{"lone low surrogate", `{"topic":"a","payload":"\udc00"}`, 400, "surrogate", ""},
		{"high then not low", `{"topic":"a","payload":"\ud800\u0041"}`, 400, "surrogate", ""},
		{"high at end of string", `{"topic":"a","payload":"x\uDBFF"}`, 400, "surrogate", ""},
		{"two highs", `{"topic":"a","payload":"\ud800\ud800\udc00"}`, 400, "surrogate", ""},
		{"surrogate in topic", `{"topic":"a\udfff","payload":"x"}`, 400, "surrogate", ""},
		{"surrogate in a key", `{"topic":"a","\ud800":1}`, 400, "surrogate", ""},
		{"huge qos", `{"topic":"a","qos":1e400}`, 400, "bad JSON", ""},
		{"qos 2", `{"topic":"a","qos":2}`, 400, "bad qos", ""},
		{"nested payload", `{"topic":"a","payload":{"x":[1,{"y":2}]}}`, 400, "bad JSON", ""},
		{"unknown field", `{"topic":"a","payload":"x","extra":1}`, 400, "bad JSON", ""},
		{"two values", `{"topic":"a"} {"topic":"b"}`, 400, "more than one value", ""},
		{"NUL in topic", `{"topic":"a\u0000b"}`, 400, "bad topic", ""},
		{"wildcard topic", `{"topic":"a/#"}`, 400, "bad topic", ""},
		{"too large", `{"topic":"a","payload":"` + strings.Repeat("x", 1025) + `"}`, 413, "api.max_payload", ""},
		{"both payloads", `{"topic":"a","payload":"x","payload_base64":"eA=="}`, 400, "not both", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := parseBatchLine([]byte(c.line), testLimits, checkTestTopic, "", time.Now())
			if c.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if string(m.Payload) != c.payload {
					t.Fatalf("payload %q, want %q", m.Payload, c.payload)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != c.status || !strings.Contains(ae.msg, c.want) {
				t.Fatalf("got %v, want %d containing %q", err, c.status, c.want)
			}
		})
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("y", 3*lineBufferSize)
	in := "a\n\n" + long + "\nlast"
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
		lr := newLineReader(r, len(long))
		var got []string
		for {
			line, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(line))
		}
		if len(got) != 4 || got[0] != "a" || got[1] != "" || got[2] != long || got[3] != "last" {
			t.Fatalf("lines: %d %q", len(got), got[0])
		}
	}
	lr := newLineReader(strings.NewReader(long+"y\n"), len(long))
	if _, err := lr.next(); !errors.Is(err, errLineTooLong) {
		t.Fatalf("over-long line: %v", err)
	}
	if cap(lr.long) > len(long)+lineBufferSize+1 {
		t.Fatalf("line buffer grew to %d for a limit of %d", cap(lr.long), len(long))
	}
}

// FuzzParseBatchLine: no line makes the parser panic, and none is accepted with text that
// encoding/json would have silently replaced (invalid UTF-8, unpaired surrogates) or with a message
// the limits forbid.
func FuzzParseBatchLine(f *testing.F) {
	for _, s := range []string{
		`{"topic":"a/b","payload":"hi","qos":0,"retain":true,"ttl":"30s"}`,
		`{"topic":"a","payload_base64":"AAEC"}`,
		"{\"topic\":\"a\",\"payload\":\"x\xffy\"}",
		"{\"topic\":\"a\",\"payload\":\"\xed\xa0\x80\"}",
		`{"topic":"a","payload":"\ud800"}`,
		`{"topic":"a","payload":"\udc00"}`,
		`{"topic":"a","payload":"\ud800\u0041"}`,
		`{"topic":"a","payload":"\ud83d\ude00"}`,
		`{"topic":"a","payload":"\\ud800"}`,
		`{"topic":"a","qos":1e400}`,
		`{"topic":"a","qos":99999999999999999999999}`,
		`{"topic":"a","payload":{"x":[[[[{"y":null}]]]]}}`,
		`{"topic":"a\u0001b","payload":"x"}`,
		`{"topic":"a\u007f","payload":"x"}`,
		`{"topic":"a\u0085","payload":"x"}`,
		`{"topic":"a\uffff","payload":"x"}`,
		`{"topic":"a\ufdd0","payload":"x"}`,
		"{\"topic\":\"a\x01b\"}",
		`{"topic":"a","payload":"\ufffd"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := parseBatchLine(line, testLimits, checkTestTopic, "", time.Now())
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || (ae.status != http.StatusBadRequest && ae.status != http.StatusRequestEntityTooLarge) {
				t.Fatalf("error is not a 400/413: %v", err)
			}
			return
		}
		if !utf8.Valid(line) {
			t.Fatalf("accepted a line that is not UTF-8: %q", line)
		}
		if err := checkTestTopic(m.Topic, ""); err != nil {
			t.Fatalf("accepted bad topic %q: %v", m.Topic, err)
		}
		if int64(len(m.Payload)) > testLimits.MaxPayload {
			t.Fatalf("accepted a payload of %d bytes", len(m.Payload))
		}
		// encoding/json turns invalid text into U+FFFD: an accepted line has none it did not write.
		var bl BatchLine
		if err := json.Unmarshal(line, &bl); err != nil {
			t.Fatalf("accepted a line encoding/json refuses: %v", err)
		}
		wrote := bytes.Contains(line, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(line), []byte(`\ufffd`))
		if !wrote && (strings.ContainsRune(m.Topic, utf8.RuneError) || (bl.Payload != nil && strings.ContainsRune(*bl.Payload, utf8.RuneError))) {
			t.Fatalf("accepted a line whose text was replaced by U+FFFD: %q", line)
		}
	})
}
