// Package redact keeps the secret values the agent knows (the broker password, AWS secret access
// keys and session tokens, Cognito login tokens) and scrubs them from any text the agent logs or
// reports: text a server sends back (a 403 body, a Cognito error message) may echo the request that
// carried a secret.
//
// A Set learns secrets as they become known (credentials are refreshed, so values arrive over
// time) and replaces each occurrence, in several encodings, with Placeholder. Handler wraps a
// slog.Handler so that every log record is scrubbed before it is written.
//
// It imports only the standard library. A Set is safe for concurrent use; a nil *Set scrubs
// nothing and ignores Add.
package redact

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Placeholder replaces every secret found.
const Placeholder = "[redacted]"

// MinLen is the shortest secret a Set keeps: shorter values would mangle ordinary text.
const MinLen = 8

// partialMin is the shortest prefix of a secret that is scrubbed on its own: text is often cut to
// a bound (an HTTP error body is read up to 512 bytes), which can cut a secret in two. A random
// credential's first 16 bytes do not occur in ordinary text; an 8-byte password is only ever
// scrubbed whole.
const partialMin = 16

// keepPerKind is how many values of one kind a Set remembers: the current one and a few before it,
// which may still appear in an error reported after a refresh. Older ones are forgotten, so a Set
// stays small however long the agent runs.
const keepPerKind = 4

// Set is the collection of known secrets. Create it with NewSet.
type Set struct {
	mu    sync.Mutex
	kinds map[string][]string // kind → its last keepPerKind distinct values, oldest first
	forms []string            // every encoding of every value; replaced, never modified
}

// NewSet returns an empty Set.
func NewSet() *Set { return &Set{kinds: map[string][]string{}} }

// Add remembers secret as a value of kind (a fixed name such as "broker password" or "aws session
// token"; only the last few values of each kind are kept). Values shorter than MinLen bytes are
// ignored. Adding a known value again is cheap.
func (s *Set) Add(kind, secret string) {
	if s == nil || len(secret) < MinLen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := s.kinds[kind]
	if i := slices.Index(vals, secret); i >= 0 {
		if i == len(vals)-1 {
			return
		}
		vals = slices.Delete(vals, i, i+1) // moves to newest below
	}
	vals = append(vals, secret)
	if len(vals) > keepPerKind {
		vals = slices.Delete(vals, 0, len(vals)-keepPerKind)
	}
	s.kinds[kind] = vals

	seen := map[string]bool{}
	var forms []string
	for _, vs := range s.kinds {
		for _, v := range vs {
			for _, f := range encodings(v) {
				if len(f) >= MinLen && !seen[f] {
					seen[f] = true
					forms = append(forms, f)
				}
			}
		}
	}
	s.forms = forms
}

// encodings are the forms a secret takes in text: as is, URL-query and path escaped (an echoed
// request URL), base64 (an echoed header), JSON and Go-quoted (an echoed JSON body, a %q).
func encodings(v string) []string {
	jv, _ := json.Marshal(v)
	return []string{
		v,
		url.QueryEscape(v),
		url.PathEscape(v),
		strings.ToLower(url.QueryEscape(v)), // lower-case percent escapes
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte(v)),
		strings.Trim(string(jv), `"`),
		strings.ReplaceAll(strings.Trim(string(jv), `"`), "/", `\/`), // JSON encoders that escape '/'
		strings.Trim(strconv.Quote(v), `"`),
	}
}

// Len reports how many secret values the Set holds.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, vs := range s.kinds {
		n += len(vs)
	}
	return n
}

// String returns str with every known secret, in each of its encodings, replaced by Placeholder.
// A run of at least 16 bytes that begins a secret is replaced too (text cut to a bound may end
// inside a secret). Where matches overlap in str, the whole overlapping run becomes one Placeholder.
func (s *Set) String(str string) string {
	if s == nil || len(str) < MinLen {
		return str
	}
	s.mu.Lock()
	forms := s.forms
	s.mu.Unlock()
	var spans [][2]int // [start, end) of each match
	for _, f := range forms {
		head := f[:min(len(f), partialMin)]
		for off := 0; off < len(str); {
			i := strings.Index(str[off:], head)
			if i < 0 {
				break
			}
			i += off
			n := len(head)
			for n < len(f) && i+n < len(str) && str[i+n] == f[n] {
				n++
			}
			spans = append(spans, [2]int{i, i + n})
			off = i + n
		}
	}
	if len(spans) == 0 {
		return str
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	var b strings.Builder
	b.Grow(len(str))
	last := 0 // end of what has been written or replaced
	for i := 0; i < len(spans); {
		start, end := spans[i][0], spans[i][1]
		for i++; i < len(spans) && spans[i][0] < end; i++ {
			end = max(end, spans[i][1])
		}
		b.WriteString(str[last:start])
		b.WriteString(Placeholder)
		last = end
	}
	b.WriteString(str[last:])
	return b.String()
}
